package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// Must-show 6 (issue 14): Atlassian's quota headers lie — every reset
// they announce is 12 minutes late and the policy vanishes once nothing
// remains — and the app has a 300-point hourly budget. Two worker
// binaries publish 200 reports (about 400 points): Atlassian never answers
// a quota 429, and no task waits past the top of the next UTC hour (plus
// the at most one minute of jitter that spreads the fleet's return).
func TestLyingQuotaHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 200 reports through two worker binaries")
	}
	e := newEnv(t)
	e.fake.SetHourlyQuota(300, nil)
	e.fake.SetQuotaLies(12*time.Minute, true)
	e.startWorkers(2, "ATLASSIAN_POINTS_PER_HOUR=300", "CONFLUENCE_RATE=0")
	start := time.Now()
	var ids []string
	for i := range 200 {
		ids = append(ids, e.enqueue(retro(fmt.Sprintf("lies-%d", i), 1, 1)).TaskID)
	}

	// Settled: every task either completed or waiting for the hour.
	var completed, waiting int
	var latest time.Time
	for deadline := time.Now().Add(2 * time.Minute); ; {
		completed, waiting, latest = 0, 0, time.Time{}
		for _, id := range ids {
			info, err := e.insp.GetTaskInfo("default", id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case info.State == asynq.TaskStateCompleted:
				completed++
			case info.State == asynq.TaskStateArchived:
				t.Fatalf("task %s archived: %s", id, info.LastErr)
			case (info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled) && time.Until(info.NextProcessAt) > 20*time.Second:
				waiting++
				if info.NextProcessAt.After(latest) {
					latest = info.NextProcessAt
				}
			}
		}
		if completed+waiting == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %d completed, %d waiting for the hour, of %d", completed, waiting, len(ids))
		}
		time.Sleep(500 * time.Millisecond)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	t.Logf("%d completed, %d waiting; latest return %s, the hour turns %s; Atlassian counted %d points, answered %d quota 429s",
		completed, waiting, latest.UTC().Format(time.TimeOnly), hour.Format(time.TimeOnly), e.fake.QuotaUsed(), e.fake.Quota429s())
	if n := e.fake.Quota429s(); n != 0 {
		t.Errorf("Atlassian's quota refused %d requests at a 300-point budget", n)
	}
	if latest.After(hour.Add(63 * time.Second)) { // 61 s of jitter, 2 s for clocks
		t.Errorf("a task waits until %s, past the top of the hour (%s) and its jitter", latest.UTC(), hour)
	}
	if waiting == 0 && start.UTC().Truncate(time.Hour).Equal(hour.Add(-time.Hour)) {
		t.Error("nothing waited for the hour: the budget never ran out, the test proves nothing")
	}
}
