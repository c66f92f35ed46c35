package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/test/fakeconfluence"
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

// waitAll waits for every task and fails unless all completed.
func (e *env) waitAll(queue string, ids []string, within time.Duration) {
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
	e.waitAll("default", ids, 90*time.Second)

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
	e.waitAll("default", e.enqueueMany("acme-cloud", "warm", 1), 60*time.Second) // parent exists now
	e.fake.AddDrop(fakeconfluence.Drop{Method: "POST", Path: regexp.MustCompile(`^/wiki/api/v2/pages$`), AfterEffect: true, Times: 1})
	e.fake.ResetRequests()
	e.waitAll("default", e.enqueueMany("acme-cloud", "dropped", 1), 60*time.Second)

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
