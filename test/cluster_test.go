package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/confluence/confluencetest"
)

// Redis Cluster and Sentinel, started by the tests as real redis-server
// processes on loopback (DESIGN §12). Each test owns its servers, so they
// run in parallel with each other and with the rest of the suite.

// clusterPort is a free port whose cluster bus port (+10000) is free too.
func clusterPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := freePort(t)
		if p >= 55536 {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

type redisCluster struct {
	nodes []*redisServer
}

func (c *redisCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = fmt.Sprintf("127.0.0.1:%d", n.port)
	}
	return out
}

// startRedisCluster starts three masters with one replica each and waits
// until every slot is served and every replica is in sync.
func startRedisCluster(t *testing.T, args ...string) *redisCluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli not installed")
	}
	c := &redisCluster{}
	for range 6 {
		c.nodes = append(c.nodes, startRedisServer(t, clusterPort(t), append([]string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--appendonly", "no"}, args...)...))
	}
	create := append([]string{"--cluster", "create"}, c.addrs()...)
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitHealthy(t, c.nodes, 30*time.Second)
	return c
}

// waitHealthy waits until each live node says cluster_state:ok, sees three
// masters, and each replica's link to its master is up.
func (c *redisCluster) waitHealthy(t *testing.T, live []*redisServer, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, n := range live {
			cl := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", n.port)})
			info, err := cl.ClusterInfo(ctx).Result()
			repl, _ := cl.Info(ctx, "replication").Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				(strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up")) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not healthy within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nodeFor is the node that is master for key now.
func (c *redisCluster) nodeFor(t *testing.T, rdb *redis.ClusterClient, key string) *redisServer {
	t.Helper()
	m, err := rdb.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if m.Options().Addr == fmt.Sprintf("127.0.0.1:%d", n.port) {
			return n
		}
	}
	t.Fatalf("no node serves %s", key)
	return nil
}

// clusterEnv is a test world whose Redis is c: the test's clients, the
// credential store and the binaries (REDIS_CLUSTER_ADDRS) all use it.
func clusterEnv(t *testing.T, c *redisCluster) (*env, *redis.ClusterClient) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs()})
	e := newEnvOn(t, rdb, "redis://"+c.addrs()[0]+"/0", "REDIS_CLUSTER_ADDRS="+strings.Join(c.addrs(), ","))
	return e, rdb
}

// Must-show 1: the publish scenarios through the real binaries on a
// 3-master, 3-replica cluster: first publish, a revision, an unchanged
// republish, and a worker SIGKILLed between the page and its attachments.
func TestClusterPublishScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and waits for asynq's lease recovery")
	}
	t.Parallel()
	c := startRedisCluster(t)
	e, rdb := clusterEnv(t, c)
	w := e.start("worker", "")

	first := result(t, e.publish(e.retro("cl-1", 1, 2)))
	page := e.onePage("Retro cl-1")
	if first.Outcome != "published" || len(e.fake.Attachments(page.ID)) != 2 {
		t.Fatalf("first publish: %+v, %d attachments", first, len(e.fake.Attachments(page.ID)))
	}
	p := e.retro("cl-1", 2, 2)
	p.Report.Summary = "revised"
	if res := result(t, e.publish(p)); res.Outcome != "published" || e.onePage("Retro cl-1").Version != 2 {
		t.Fatalf("revision: %+v", res)
	}
	p = e.retro("cl-1", 3, 2)
	p.Report.Summary = "revised"
	if res := result(t, e.publish(p)); res.Outcome != "unchanged" || e.onePage("Retro cl-1").Version != 2 {
		t.Fatalf("unchanged republish: %+v", res)
	}
	// The mapping lives on the node of the integration's slot, as tagged.
	if n, err := rdb.Exists(context.Background(), "retropub:map:{acme-cloud}:cl-1").Result(); err != nil || n != 1 {
		t.Fatalf("tagged mapping: %d %v", n, err)
	}
	// Each outcome reached the fleet-wide stream through the integration's
	// outbox, which is left empty.
	want := []string{"report.published", "report.published", "report.unchanged"}
	if got := streamTypes(t, rdb, "cl-1", len(want)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outcome events of cl-1: %v, want %v", got, want)
	}
	if n := rdb.XLen(context.Background(), "retropub:outbox:{acme-cloud}").Val(); n != 0 {
		t.Fatalf("%d events left in the outbox", n)
	}

	// The enqueue binary on the cluster (REDIS_CLUSTER_ADDRS), waiting for
	// the worker's result.
	out, code := e.runCmd("enqueue", jsonl(t, e.retro("cl-cli", 1, 1)), "publish", "--file", "-", "--wait=60s")
	if rows := jsonLines(t, out); code != 0 || len(rows) != 1 || rows[0]["state"] != "completed" {
		t.Fatalf("enqueue on the cluster: exit %d\n%s", code, out)
	}
	e.onePage("Retro cl-cli")

	hold := e.fake.HoldNext("POST", regexp.MustCompile(`/child/attachment$`))
	task := e.enqueue(e.retro("cl-killed", 1, 3)).TaskID
	select {
	case <-hold.Arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("attachment upload never started")
	}
	e.onePage("Retro cl-killed")
	if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.done
	hold.Release(false)
	e.start("worker", "")
	e.waitCompleted("default", []string{task}, 4*time.Minute)
	killed := e.onePage("Retro cl-killed")
	names := map[string]int{}
	for _, a := range e.fake.Attachments(killed.ID) {
		names[a.Title]++
	}
	if len(names) != 3 || len(e.fake.Attachments(killed.ID)) != 3 {
		t.Fatalf("attachments after the kill: %v", names)
	}
}

// failoverLoad publishes n reports over four integrations (two
// attachments each) through two worker processes, calls kill once a
// quarter has completed, and checks the promises: every report completed,
// one page each, published once (version 1), no attachment twice. It
// returns how long after the kill the first publish completed again.
func failoverLoad(t *testing.T, e *env, n int, kill func()) time.Duration {
	t.Helper()
	e.fake.SetLatency(20 * time.Millisecond)
	for i := range 4 {
		e.putIntegration(fmt.Sprintf("fo-%d", i), "")
	}
	ids := make([]string, n)
	for i := range ids {
		p := e.retro(fmt.Sprintf("fo-%03d", i), 1, 2)
		p.IntegrationID = fmt.Sprintf("fo-%d", i%4)
		ids[i] = e.enqueue(p).TaskID
	}
	for range 2 {
		e.startEnv([]string{"WORKER_CONCURRENCY=8", "LOG_LEVEL=info"}, "worker", "")
	}
	completed := func() int {
		done := 0
		for _, id := range ids {
			if info, err := e.insp.GetTaskInfo("default", id); err == nil && info.State == asynq.TaskStateCompleted {
				done++
			}
		}
		return done
	}
	deadline := time.Now().Add(2 * time.Minute)
	for completed() < n/4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d publishes completed before the kill", completed(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := completed()
	if before == n {
		t.Fatal("every publish completed before the kill; nothing was in flight")
	}
	kill()
	killedAt := time.Now()
	var resumed time.Duration
	for resumed == 0 {
		if c := completed(); c > before {
			resumed = time.Since(killedAt)
		}
		if time.Since(killedAt) > 2*time.Minute {
			t.Fatal("no publish completed within 2 minutes of the kill")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failover: %d of %d completed at the kill; first completion %s after it", before, n, resumed.Round(time.Millisecond))
	e.waitCompleted("default", ids, 4*time.Minute)
	t.Logf("failover: all %d completed %s after the kill", n, time.Since(killedAt).Round(time.Second))

	pages := map[string][]confluencetest.Page{}
	for _, p := range e.fake.Pages("ENG") {
		pages[p.Title] = append(pages[p.Title], p)
	}
	for i := range n {
		title := fmt.Sprintf("Retro fo-%03d", i)
		ps := pages[title]
		if len(ps) != 1 {
			t.Errorf("%s: %d pages", title, len(ps))
			continue
		}
		if ps[0].Version != 1 {
			t.Errorf("%s: published more than once (version %d)", title, ps[0].Version)
		}
		atts := e.fake.Attachments(ps[0].ID)
		seen := map[string]bool{}
		for _, a := range atts {
			if seen[a.Title] {
				t.Errorf("%s: attachment %s twice", title, a.Title)
			}
			seen[a.Title] = true
		}
		if len(atts) != 2 {
			t.Errorf("%s: %d attachments", title, len(atts))
		}
	}
	// Every publish's outcome event reached the stream (at least once:
	// a relayer or a writer cut off by the failover may copy it again).
	published := map[string]int{}
	for deadline := time.Now().Add(15 * time.Second); len(published) < n && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		msgs, err := e.rdb.XRange(context.Background(), "retropub:outcomes", "-", "+").Result()
		if err != nil {
			continue
		}
		clear(published)
		for _, m := range msgs {
			var ev struct {
				Type     string `json:"type"`
				ReportID string `json:"report_id"`
			}
			if s, _ := m.Values["event"].(string); json.Unmarshal([]byte(s), &ev) == nil && ev.Type == "report.published" {
				published[ev.ReportID]++
			}
		}
	}
	if len(published) != n {
		t.Errorf("published events for %d of %d reports", len(published), n)
	}
	return resumed
}

// Must-show 2: the master that holds the publish queue's slot is
// SIGKILLed with 200 publishes in flight; its replica takes over.
func TestClusterMasterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and waits for a failover and lease recovery")
	}
	t.Parallel()
	c := startRedisCluster(t)
	e, rdb := clusterEnv(t, c)
	queueKey := "asynq:{default}:pending"
	victim := c.nodeFor(t, rdb, queueKey)
	resumed := failoverLoad(t, e, 200, func() {
		waitReplicasSynced(t, victim)
		victim.kill(t)
	})
	if now := c.nodeFor(t, rdb, queueKey); now == victim {
		t.Fatal("the killed master still serves the queue's slot")
	}
	t.Logf("cluster master SIGKILL: publishing resumed after %s", resumed.Round(time.Millisecond))
}

// kill SIGKILLs redis-server (no shutdown, no save).
func (rs *redisServer) kill(t *testing.T) {
	t.Helper()
	if err := rs.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = rs.cmd.Wait()
	rs.cmd = nil
}

// waitReplicasSynced waits until the replicas of master rs have every
// write it acknowledged (replication is asynchronous: a kill before that
// would lose the tail, a promise Redis does not make).
func waitReplicasSynced(t *testing.T, rs *redisServer) {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	defer cl.Close()
	// WAIT on this connection covers every write before it on the master.
	if err := cl.Do(context.Background(), "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
}

// sentinelGroup is a master, a replica and three sentinels.
type sentinelGroup struct {
	master, replica *redisServer
	sentinels       []string
}

func startSentinelGroup(t *testing.T) *sentinelGroup {
	t.Helper()
	g := &sentinelGroup{master: startRedisServer(t, freePort(t), "--appendonly", "no")}
	g.replica = startRedisServer(t, freePort(t), "--appendonly", "no", "--replicaof", "127.0.0.1", strconv.Itoa(g.master.port))
	for range 3 {
		port := freePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 5000\n", port, dir, g.master.port)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		bin, args := "redis-server", []string{conf, "--sentinel"}
		if p, err := exec.LookPath("redis-sentinel"); err == nil {
			bin, args = p, []string{conf}
		}
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		g.sentinels = append(g.sentinels, fmt.Sprintf("127.0.0.1:%d", port))
	}
	// Ready when every sentinel knows the replica and its two peers.
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range g.sentinels {
		s := redis.NewSentinelClient(&redis.Options{Addr: addr})
		for {
			m, err := s.Master(context.Background(), "m").Result()
			if err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s not ready: %v %v", addr, m, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.Close()
	}
	return g
}

// Must-show 3: Sentinel's master SIGKILLed with 200 publishes in flight.
func TestSentinelMasterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Sentinel and waits for a failover and lease recovery")
	}
	t.Parallel()
	g := startSentinelGroup(t)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: g.sentinels})
	e := newEnvOn(t, rdb, "redis://127.0.0.1:1/0", "REDIS_SENTINEL_ADDRS="+strings.Join(g.sentinels, ","), "REDIS_SENTINEL_MASTER=m")
	resumed := failoverLoad(t, e, 200, func() {
		waitReplicasSynced(t, g.master)
		g.master.kill(t)
	})
	t.Logf("sentinel master SIGKILL: publishing resumed after %s", resumed.Round(time.Millisecond))
}

// A cluster that loses quorum (two of three masters SIGKILLed: their
// replicas cannot be elected without a majority) answers CLUSTERDOWN:
// /readyz says not ready and the worker waits without spinning; it serves
// again once the masters are back (appendonly, so they keep their data).
func TestClusterQuorumLossNotReady(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and measures CPU over seconds")
	}
	t.Parallel()
	c := startRedisCluster(t, "--appendonly", "yes", "--appendfsync", "always")
	e, rdb := clusterEnv(t, c)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := e.startEnv([]string{"HTTP_ADDR=" + addr}, "worker", "")
	waitReady(t, addr, 200, 30*time.Second)
	e.publish(e.retro("q-1", 1, 0))

	var masters []*redisServer
	var mu sync.Mutex
	err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range c.nodes {
			if m.Options().Addr == fmt.Sprintf("127.0.0.1:%d", n.port) {
				masters = append(masters, n)
			}
		}
		return nil
	})
	if err != nil || len(masters) != 3 {
		t.Fatalf("masters: %d %v", len(masters), err)
	}
	for _, m := range masters[:2] {
		m.kill(t)
	}
	waitReady(t, addr, 503, 30*time.Second)
	time.Sleep(3 * time.Second) // past cluster-node-timeout: the survivors say CLUSTERDOWN
	cpu0, at := cpuSeconds(t, w.cmd.Process.Pid), time.Now()
	time.Sleep(5 * time.Second)
	share := (cpuSeconds(t, w.cmd.Process.Pid) - cpu0) / time.Since(at).Seconds()
	t.Logf("worker CPU while the cluster is down: %.1f%% of a core", share*100)
	if share > 0.25 {
		t.Errorf("worker spins while the cluster is down: %.0f%% of a core", share*100)
	}
	if readyz(addr) != 503 {
		t.Error("/readyz says ready while the cluster is down")
	}
	for _, m := range masters[:2] {
		m.start(t)
	}
	c.waitHealthy(t, c.nodes, 60*time.Second)
	waitReady(t, addr, 200, 60*time.Second)
	e.publish(e.retro("q-2", 1, 0))
	if !w.alive() {
		t.Fatal("worker exited")
	}
}

// streamTypes waits until the outcome stream holds want events of report
// and returns their types in stream order.
func streamTypes(t *testing.T, rdb redis.UniversalClient, report string, want int) []string {
	t.Helper()
	var types []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		msgs, err := rdb.XRange(context.Background(), "retropub:outcomes", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		types = types[:0]
		for _, m := range msgs {
			var ev struct {
				Type     string `json:"type"`
				ReportID string `json:"report_id"`
			}
			if s, _ := m.Values["event"].(string); json.Unmarshal([]byte(s), &ev) == nil && ev.ReportID == report {
				types = append(types, ev.Type)
			}
		}
		if len(types) >= want {
			break
		}
	}
	return types
}
