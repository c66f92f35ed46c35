package test

import (
	"context"
	"testing"

	"retropub/internal/rediskeys"
)

// A cached space or parent id that Confluence no longer knows is dropped
// and resolved again within the same attempt: a space recreated under a
// new id, or a deleted parent page, costs look-ups, not a failed task.
func TestStaleSpaceAndParentCachesResolvedAgain(t *testing.T) {
	eachBackend(t, testStaleCaches)
}

func testStaleCaches(t *testing.T, e *env) {
	ctx := context.Background()
	e.startWorker(2)
	e.publish(e.retro("cache-a", 1, 0))

	spaceKey := rediskeys.Space(e.integration, "ENG")
	if err := e.rdb.HSet(ctx, spaceKey, "id", "999999").Err(); err != nil {
		t.Fatal(err)
	}
	info := e.publish(e.retro("cache-b", 1, 0))
	res := result(t, info)
	if info.Retried != 0 || res.Steps["resolve_space"] != "resolved_again" {
		t.Fatalf("stale space id: retried %d, steps %v", info.Retried, res.Steps)
	}
	if id, _ := e.rdb.HGet(ctx, spaceKey, "id").Result(); id == "999999" {
		t.Fatal("the stale space id is still cached")
	}

	parent := e.onePage("Retrospectives")
	e.fake.DeletePage(parent.ID)
	info = e.publish(e.retro("cache-c", 1, 0))
	res = result(t, info)
	if info.Retried != 0 || res.Steps["ensure_parent"] != "resolved_again" {
		t.Fatalf("deleted parent: retried %d, steps %v", info.Retried, res.Steps)
	}
	if p := e.onePage("Retrospectives"); p.ID == parent.ID {
		t.Fatal("the deleted parent was not created again")
	}
}
