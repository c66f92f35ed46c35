package test

import (
	"fmt"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/credstore"
)

// Must-show 7: a test-owned redis-server with appendonly on, restarted
// mid-run, and separately down for 5 s at the moment tasks finish. The
// worker processes reconnect; every task completes; no report has two
// pages or two attachments of one name.
//
// A task whose handler ended while Redis was away comes back only through
// asynq's lease recovery, 60–120 s later: asynq v0.26 hands the failed
// "move to retry/completed" write to its syncer with a context it has
// already cancelled, so the syncer never succeeds, and the recoverer
// (every minute, for leases expired 30 s ago) runs the task again. Both
// tests therefore wait minutes, run in parallel with each other, and are
// skipped under -short.

// aofRedisEnv starts a test-owned redis-server that persists every write before
// answering it (appendfsync always): a SIGKILL then loses nothing Redis
// acknowledged, so whatever goes missing is ours to explain.
//
// The test's world then lives on it (see useRedis).
func aofRedisEnv(t *testing.T, port int) (*redisServer, *env) {
	rs := startRedisServer(t, port, "--appendonly", "yes", "--appendfsync", "always")
	e := newEnv(t)
	e.useRedis(rs)
	return rs, e
}

func (rs *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", rs.port) }

// terminate stops redis-server the polite way (SIGTERM: it flushes and
// exits), unlike stop's SIGKILL.
func (rs *redisServer) terminate(t *testing.T) {
	t.Helper()
	if err := rs.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = rs.cmd.Wait()
}

// useRedis points the test's clients, credential store and the binaries at
// rs instead of the suite's Redis, and stores the acme-cloud integration there.
func (e *env) useRedis(rs *redisServer) {
	e.t.Helper()
	e.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	e.redisURL = rs.url()
	keys, err := credstore.ParseKeys(e.keys)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = credstore.New(e.rdb, keys)
	e.client = asynq.NewClientFromRedisClient(e.rdb)
	e.insp = asynq.NewInspectorFromRedisClient(e.rdb)
	rdb := e.rdb
	e.t.Cleanup(func() { rdb.Close() })
	e.putIntegration("acme-cloud", "")
}

// enqueueAttached enqueues n reports with files attachments each.
func (e *env) enqueueAttached(prefix string, n, files int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.enqueue(retro(fmt.Sprintf("%s-%d", prefix, i), 1, files)).TaskID
	}
	return ids
}

// startReadyWorkers starts n worker binaries, each with its own /readyz
// address, and returns the addresses.
func (e *env) startReadyWorkers(t *testing.T, n int, extra ...string) []string {
	e.t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		e.startEnv(append([]string{"HTTP_ADDR=" + addrs[i]}, extra...), "worker", "")
	}
	return addrs
}

// completed counts the tasks that completed; errors (Redis down) count none.
func (e *env) completed(queue string, ids []string) int {
	n := 0
	for _, id := range ids {
		if info, err := e.insp.GetTaskInfo(queue, id); err == nil && info.State == asynq.TaskStateCompleted {
			n++
		}
	}
	return n
}

// reran counts the tasks asynq ran more than once.
func (e *env) reran(queue string, ids []string) int {
	n := 0
	for _, id := range ids {
		if info, err := e.insp.GetTaskInfo(queue, id); err == nil && info.Retried > 0 {
			n++
		}
	}
	return n
}

// intact fails unless every report prefix-0 … prefix-(n-1) has one page
// with exactly files attachments, one of each name.
func (e *env) intact(prefix string, n, files int) {
	e.t.Helper()
	for i := range n {
		page := e.onePage(fmt.Sprintf("Retro %s-%d", prefix, i))
		names := map[string]int{}
		for _, a := range e.fake.Attachments(page.ID) {
			names[a.Title]++
		}
		if len(names) != files {
			e.t.Fatalf("report %s-%d: attachments %v, want %d distinct", prefix, i, names, files)
		}
		for name, c := range names {
			if c != 1 {
				e.t.Fatalf("report %s-%d: %d attachments named %s", prefix, i, c, name)
			}
		}
	}
}

func TestRedisRestartMidRunLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a redis-server under two worker processes; recovery waits for asynq's lease recovery")
	}
	t.Parallel()
	rs, e := aofRedisEnv(t, freePort(t))
	const reports, files = 30, 2
	ids := e.enqueueAttached("restart", reports, files)
	// A slow fleet-wide rate stretches the run so the kill lands mid-way.
	addrs := e.startReadyWorkers(t, 2, "CONFLUENCE_RATE=10", "CONFLUENCE_BURST=5", "INTEGRATION_MAX_ACTIVE=0")
	deadline := time.Now().Add(2 * time.Minute)
	for e.completed("default", ids) < 5 {
		if time.Now().After(deadline) {
			t.Fatal("five tasks did not complete before the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := e.completed("default", ids)
	rs.stop() // SIGKILL
	time.Sleep(2 * time.Second)
	rs.start(t)
	t.Logf("redis-server killed with %d of %d tasks completed, restarted from its AOF after 2 s", done, reports)
	if done == reports {
		t.Fatal("every task had completed before the kill: the test did not test")
	}
	for _, a := range addrs {
		waitReady(t, a, 200, 90*time.Second)
	}
	after := e.enqueueAttached("after-restart", 5, 1) // new work reaches reconnected workers
	restarted := time.Now()
	e.waitCompleted("default", ids, 4*time.Minute)
	e.waitCompleted("default", after, 2*time.Minute)
	t.Logf("all tasks completed %.0f s after the restart; %d ran more than once", time.Since(restarted).Seconds(), e.reran("default", ids))
	e.intact("restart", reports, files)
	e.intact("after-restart", 5, 1)
}

func TestRedisOutageWhileTasksFinishLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps Redis down 5 s and waits for asynq's lease recovery to run the interrupted tasks again")
	}
	t.Parallel()
	rs, e := aofRedisEnv(t, freePort(t))
	const reports, files = 8, 2
	hold := e.fake.HoldNext("POST", regexp.MustCompile(`/child/attachment$`))
	ids := e.enqueueAttached("outage", reports, files)
	addrs := e.startReadyWorkers(t, 2, "INTEGRATION_MAX_ACTIVE=0")
	select {
	case <-hold.Arrived:
	case <-time.After(2 * time.Minute):
		t.Fatal("no attachment upload arrived")
	}
	rs.terminate(t)
	hold.Release(true) // the upload goes through; its task finishes with Redis gone
	time.Sleep(5 * time.Second)
	rs.start(t)
	for _, a := range addrs {
		waitReady(t, a, 200, 90*time.Second)
	}
	e.waitCompleted("default", ids, 4*time.Minute)
	e.intact("outage", reports, files)
	t.Logf("%d of %d tasks ran again after the outage", e.reran("default", ids), reports)
}
