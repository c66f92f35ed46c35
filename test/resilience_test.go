package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence/confluencetest"
)

// Resilience: real worker processes against Redis (real when REDIS_URL is
// set) and the fake Confluence's limit switches (DESIGN §4, §6).

// startWorkers runs n worker binaries with extra environment.
func (e *env) startWorkers(n int, extra ...string) []*proc {
	e.t.Helper()
	e.procEnv = extra
	defer func() { e.procEnv = nil }()
	ps := make([]*proc, n)
	for i := range ps {
		ps[i] = e.start("worker", "")
	}
	return ps
}

// waitCompleted waits for every task and fails unless all completed.
func (e *env) waitCompleted(queue string, ids []string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			info, err := e.insp.GetTaskInfo(queue, id)
			if err == nil && info.State == asynq.TaskStateCompleted {
				break
			}
			if err == nil && info.State == asynq.TaskStateArchived {
				e.t.Fatalf("task %s archived: %s", id, info.LastErr)
			}
			if time.Now().After(deadline) {
				state := "unknown"
				if info != nil {
					state = string(info.State.String()) + ": " + info.LastErr
				}
				e.t.Fatalf("task %s not completed in %s (%s)", id, within, state)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// enqueueMany enqueues n reports of integration and returns their task ids.
func (e *env) enqueueMany(integration, prefix string, n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		p := retro(fmt.Sprintf("%s-%d", prefix, i), 1, 0)
		p.IntegrationID = integration
		ids[i] = e.enqueue(p).TaskID
	}
	return ids
}

// Must-show 1: a 429 storm (Retry-After 3 s) on the instance, four worker
// processes: no request reaches it inside an announced window, and every
// task is published once afterwards.
func TestRateLimitStormQuietsEveryWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 7 s storm through four worker processes")
	}
	e := newEnv(t)
	e.fake.Storm(time.Now().Add(7*time.Second), 3*time.Second)
	e.startWorkers(4)
	ids := e.enqueueMany("acme-cloud", "storm", 40)
	e.waitCompleted("default", ids, 90*time.Second)

	if n := e.fake.EarlyRequests(); n != 0 {
		t.Errorf("%d requests arrived inside a Retry-After window: %+v", n, e.fake.Early())
	}
	refused := 0
	for _, r := range e.fake.Requests() {
		if r.Status == 429 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the storm refused nothing: the test did not test")
	}
	for i := range ids {
		e.onePage(fmt.Sprintf("Retro storm-%d", i))
	}
	t.Logf("storm: %d requests refused with 429 across 4 workers, 0 early", refused)
}

// Must-show 3: the connection drops after the fake created the page; the
// retry finds that page instead of creating a second one, and the POST is
// never repeated blindly.
func TestDroppedConnectionAfterCreateMakesNoDuplicate(t *testing.T) {
	e := newEnv(t)
	e.startWorkers(1)
	e.waitCompleted("default", e.enqueueMany("acme-cloud", "warm", 1), 60*time.Second) // parent exists now
	e.fake.AddDrop(confluencetest.Drop{Method: "POST", Path: regexp.MustCompile(`^/wiki/api/v2/pages$`), AfterEffect: true, Times: 1})
	e.fake.ResetRequests()
	e.waitCompleted("default", e.enqueueMany("acme-cloud", "dropped", 1), 60*time.Second)

	e.onePage("Retro dropped-0")
	posts := 0
	for _, r := range e.fake.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/wiki/api/v2/pages") {
			posts++
		}
	}
	if posts != 1 {
		t.Fatalf("the page POST was sent %d times; after a lost answer the retry must look, not post again", posts)
	}
}

// Must-show 2 (correctness; the throughput figures come from
// BenchmarkBreakerIsolation): one site answers 503 while nine are healthy.
// Its breaker opens and the fleet stops sending to it; after it recovers
// every task is published once, and the healthy sites never waited.
func TestBreakerIsolatesADeadInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out an 8 s outage")
	}
	e := newEnv(t)
	f := e.newFleet(4)
	bad := f.sites[0]
	bad.Outage(time.Now().Add(8*time.Second), 503)
	ws := e.startWorkers(2, f.env("BREAKER_FAILURES=3", "BREAKER_OPEN=2s")...)
	var badIDs, goodIDs []string
	badIDs = e.enqueueMany(f.integration(0), "bad", 10)
	for i := 1; i < len(f.sites); i++ {
		goodIDs = append(goodIDs, e.enqueueMany(f.integration(i), "good", 10)...)
	}
	e.waitCompleted("default", goodIDs, 60*time.Second)
	e.waitCompleted("default", badIDs, 120*time.Second)

	for i := 1; i < len(f.sites); i++ {
		e.onePageEach(f, i, "good", 10)
	}
	e.onePageEach(f, 0, "bad", 10)
	logs := ws[0].stderr.String() + ws[1].stderr.String()
	for _, want := range []string{`"circuit breaker open"`, `"circuit breaker closed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("worker logs lack %s", want)
		}
	}
	// While open, the fleet sent the dead site only probes: far fewer
	// requests than its tasks' attempts.
	failed := 0
	for _, r := range bad.Requests() {
		if r.Status == 503 {
			failed++
		}
	}
	t.Logf("dead site answered %d requests with 503 during the outage", failed)
	if failed > 20 {
		t.Errorf("%d requests reached the dead site; the breaker should have stopped most", failed)
	}
}

// Must-show 6 (ordering; the timing figures come from BenchmarkFairness):
// one integration's backfill is enqueued first, then nine others enqueue a
// few reports each. With the per-integration cap the nine finish while the
// backfill is still running; asynq's FIFO queue alone would make them wait
// for all of it.
func TestBackfillDoesNotStarveOtherIntegrations(t *testing.T) {
	e := newEnv(t)
	f := e.newFleet(10)
	for _, s := range f.sites {
		s.SetLatency(20 * time.Millisecond)
	}
	e.startWorkers(2, f.env("INTEGRATION_MAX_ACTIVE=2", "CONFLUENCE_RATE=0")...)
	backfill := e.enqueueMany(f.integration(0), "backfill", 150)
	var others []string
	for i := 1; i < 10; i++ {
		others = append(others, e.enqueueMany(f.integration(i), "small", 3)...)
	}
	e.waitCompleted("default", others, 90*time.Second)
	left := 0
	for _, id := range backfill {
		if info, err := e.insp.GetTaskInfo("default", id); err == nil && info.State != asynq.TaskStateCompleted {
			left++
		}
	}
	t.Logf("backfill tasks still queued when the nine integrations were done: %d of %d", left, len(backfill))
	if left == 0 {
		t.Fatal("the other integrations waited for the whole backfill")
	}
	e.waitCompleted("default", backfill, 120*time.Second)
	e.onePageEach(f, 0, "backfill", 150)
}

// Must-show 5: an hourly budget of 300 points and about 400 points of
// work (200 reports with one attachment: a page and an upload each). The
// fleet stops short of the quota, so Atlassian never refuses it, and the
// rest goes out once the hour turns. The fake's quota clock is set 15 s
// before the top of an hour; the workers learn the reset from its
// RateLimit headers.
func TestHourlyBudgetWaitsForTheHourToTurn(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the fake's hour to turn (15 s)")
	}
	e := newEnv(t)
	realStart := time.Now()
	fakeStart := time.Date(2026, 11, 27, 14, 59, 45, 0, time.UTC)
	e.fake.SetHourlyQuota(300, func() time.Time { return fakeStart.Add(time.Since(realStart)) })
	turn := realStart.Add(15 * time.Second)
	e.startWorkers(2, "ATLASSIAN_POINTS_PER_HOUR=300", "CONFLUENCE_RATE=0")
	var ids []string
	for i := range 200 {
		ids = append(ids, e.enqueue(retro(fmt.Sprintf("budget-%d", i), 1, 1)).TaskID)
	}
	e.waitCompleted("default", ids, 2*time.Minute)

	if n := e.fake.Quota429s(); n != 0 {
		t.Fatalf("Atlassian's quota refused %d requests; the budget should have stopped short", n)
	}
	before, after := 0, 0
	for _, r := range e.fake.Requests() {
		if r.Time.Before(turn) {
			before++
		} else {
			after++
		}
	}
	t.Logf("requests before the hour turned: %d, after: %d", before, after)
	if after == 0 || before > 300 {
		t.Fatalf("want the budget spent before the turn and the rest after it: %d before, %d after", before, after)
	}
	for i := range 200 {
		e.onePage(fmt.Sprintf("Retro budget-%d", i))
	}
}
