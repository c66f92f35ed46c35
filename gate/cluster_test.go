package gate

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"retropub/internal/testproc"
)

// On a real Redis Cluster the per-request scripts run split by slot (the
// {cloud} budget apart from the instance's keys): the breaker and the
// points budget behave as on one Redis. Without the split every admit
// fails with CROSSSLOT.
func TestPerRequestScriptsOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	t.Parallel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testproc.RedisCluster(t, 0)})
	t.Cleanup(func() { rdb.Close() })
	if slotOf(t, rdb, pointsKey) == slotOf(t, rdb, cooldownKey(inst)) {
		t.Fatal("the budget and the instance share a slot: the test proves nothing")
	}
	t.Run("breaker", func(t *testing.T) { testBreakerOpensFleetWideProbesAndCloses(t, rdb) })
	t.Run("points budget", func(t *testing.T) { testPointsBudgetReserveAndHeaders(t, rdb) })
}

func slotOf(t *testing.T, rdb *redis.ClusterClient, key string) int64 {
	t.Helper()
	n, err := rdb.ClusterKeySlot(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
