package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"retropub/credstore"
	"retropub/jobs"
	"retropub/outcomes"
)

// Must-show 3: 12,000 publishes for an integration that needs
// re-authorisation are all parked and listed (asynq's archive keeps
// 10,000); `worker integrations put` replays them and every one is
// published exactly once. A newer revision parked over an older one keeps
// only the newer.
func TestTwelveThousandParkedThenPublishedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("12,000 publishes")
	}
	const n = 12000
	e := newParallelEnv(t, 4)
	ctx := context.Background()
	e.putIntegration("reauth", "")
	if err := e.store.SetStatus(ctx, "reauth", credstore.Status{NeedsReauth: true, Reason: "refresh token revoked", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Fleet limits off: the point is parking, not pacing.
	fast := []string{"WORKER_CONCURRENCY=30", "INTEGRATION_MAX_ACTIVE=0", "CONFLUENCE_RATE=0", "CONFLUENCE_MAX_INFLIGHT=0", "LOG_LEVEL=warn"}
	e.startWorkers(2, fast...)

	var in strings.Builder
	payload := func(id string, rev int64, summary string) {
		p := retro(id, rev, 0)
		p.IntegrationID, p.Report.Summary = "reauth", summary
		b, _ := json.Marshal(p)
		in.Write(b)
		in.WriteByte('\n')
	}
	payload("park-0", 1, "revision one")
	for i := range n {
		payload(fmt.Sprintf("park-%d", i), 2, "revision two")
	}
	start := time.Now()
	if out, code := e.runCmd("enqueue", in.String(), "publish", "--file", "-"); code != 0 {
		t.Fatalf("enqueue: exit %d: %s", code, tail(out, 2000))
	}
	store := &outcomes.Store{Redis: e.rdb}
	waitParked := func(want int, within time.Duration) {
		deadline := time.Now().Add(within)
		for {
			is, err := store.IntegrationStatus(ctx, "reauth")
			if err == nil && is.Parked == int64(want) && is.ParkedByReason[outcomes.ClassNeedsReauth] == int64(want) {
				if q, err := e.insp.GetQueueInfo(jobs.PublishQueue); err == nil && q.Pending+q.Active+q.Retry+q.Scheduled == 0 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("parked %+v (%v), want %d", is, err, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitParked(n, 10*time.Minute)
	t.Logf("%d publishes parked in %s", n+1, time.Since(start).Round(time.Millisecond))
	if q, _ := e.insp.GetQueueInfo(jobs.PublishQueue); q.Archived > 10000 {
		t.Fatalf("asynq kept %d archived tasks: its cap is 10,000", q.Archived)
	}

	// Sealed in Redis: a payload may carry signed attachment URLs.
	if raw := e.rdb.HGet(ctx, "retropub:parked:{reauth}:park-0", "payload").Val(); raw == "" || strings.Contains(raw, "park-0") {
		t.Fatalf("parked payload stored as %.80q: want it sealed", raw)
	}
	out, code := e.runCmd("worker", "", "parked", "list", "--integration", "reauth")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != n {
		t.Fatalf("parked list: exit %d, %d lines, want %d", code, len(lines), n)
	}
	for _, l := range lines {
		var p outcomes.Parked
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Revision != 2 || p.Reason != outcomes.ClassNeedsReauth ||
			!strings.Contains(p.Message, "re-authorised") {
			t.Fatalf("parked line %s (%v)", l, err)
		}
	}

	rec := fmt.Sprintf(`{"id":"reauth","flavor":"cloud","cloud_id":%q,"auth":{"kind":"oauth2","access_token":%q,"expires_at":%q}}`,
		e.fake.CloudID(), e.token, time.Now().Add(24*time.Hour).Format(time.RFC3339))
	start = time.Now()
	out, code = e.runCmd("worker", rec, "integrations", "put", "--file", "-")
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"replayed_parked":%d`, n)) {
		t.Fatalf("put: exit %d: %s", code, tail(out, 2000))
	}
	waitParked(0, 10*time.Minute)
	t.Logf("%d parked publishes replayed and published in %s", n, time.Since(start).Round(time.Millisecond))

	// Exactly once: one page per report, one published event per report.
	titles := map[string]int{}
	for _, pg := range e.fake.Pages("ENG") {
		titles[pg.Title]++
	}
	published := map[string]int{}
	for _, ev := range streamEvents(t, e.rdb) {
		if ev.Type == outcomes.TypePublished {
			published[ev.ReportID]++
		}
	}
	for i := range n {
		id := fmt.Sprintf("park-%d", i)
		if titles["Retro "+id] != 1 || published[id] != 1 {
			t.Fatalf("report %s: %d pages, %d published events; want 1 and 1", id, titles["Retro "+id], published[id])
		}
	}
	if pg := e.onePage("Retro park-0"); !strings.Contains(pg.Body, "revision two") {
		t.Fatalf("park-0 published the older revision: %s", pg.Body)
	}
	out, code = e.runCmd("enqueue", "", "status", "--integration", "reauth", "--report", "park-7")
	var st outcomes.ReportStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.State != outcomes.TypePublished || st.Revision != 2 ||
		st.Page == nil || !strings.HasPrefix(st.Page.URL, "http") || st.Parked != nil {
		t.Fatalf("enqueue status: exit %d: %s", code, out)
	}
	if is, _ := store.IntegrationStatus(ctx, "reauth"); is.NeedsReauth || is.LastSuccess == nil {
		t.Fatalf("integration status after put: %+v", is)
	}
}
