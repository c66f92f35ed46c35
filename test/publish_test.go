package test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

func result(t testing.TB, info *asynq.TaskInfo) jobs.PublishResult {
	t.Helper()
	var r jobs.PublishResult
	if err := json.Unmarshal(info.Result, &r); err != nil {
		t.Fatalf("task result %q: %v", info.Result, err)
	}
	return r
}

// Must-show 2: one event twice → one page; a higher revision updates that
// page; an older revision afterwards changes nothing.
func TestSameEventTwiceRevisionsUpdateOlderIgnored(t *testing.T) {
	eachBackend(t, testSameEventTwiceRevisionsUpdateOlderIgnored)
}

func testSameEventTwiceRevisionsUpdateOlderIgnored(t *testing.T, e *env) {
	e.startWorker(4)
	p := e.retro("retro-1", 1, 1)
	first := e.enqueue(p)
	second := e.enqueue(p)
	if !second.Duplicate || second.TaskID != first.TaskID {
		t.Fatalf("second enqueue: %+v, want duplicate of %s", second, first.TaskID)
	}
	e.wait("default", first.TaskID)
	page := e.onePage("Retro retro-1")
	if page.Version != 1 {
		t.Fatalf("version %d, want 1", page.Version)
	}

	p2 := e.retro("retro-1", 2, 1)
	p2.Report.Summary = "now with a summary"
	res := result(t, e.publish(p2))
	page2 := e.onePage("Retro retro-1")
	if page2.ID != page.ID || page2.Version != 2 || !strings.Contains(page2.Body, "now with a summary") {
		t.Fatalf("after revision 2: %+v (result %+v)", page2, res)
	}

	// Revision 1 again (its TaskID is retained, so run it under a fresh id).
	before := len(e.fake.Requests())
	task, err := jobs.NewPublishTask(e.retro("retro-1", 1, 1), asynq.TaskID("replay-rev1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info := e.wait("default", "replay-rev1")
	if r := result(t, info); r.Outcome != "skipped_older_revision" {
		t.Fatalf("older revision outcome %q", r.Outcome)
	}
	if n := len(e.fake.Requests()) - before; n != 0 {
		t.Fatalf("older revision made %d requests", n)
	}
	if got := e.onePage("Retro retro-1"); got.Version != 2 || !strings.Contains(got.Body, "now with a summary") {
		t.Fatalf("older revision changed the page: %+v", got)
	}
}

// Must-show 3: an unchanged republish makes no call at all; a first
// publish under an existing parent with k attachments makes 1 page write
// and at most k attachment writes (here: one multipart POST).
func TestCallCounts(t *testing.T) { eachBackend(t, testCallCounts) }

func testCallCounts(t *testing.T, e *env) {
	e.startWorker(2)
	e.publish(e.retro("warm-up", 1, 0)) // creates the parent

	const k = 3
	e.fake.ResetRequests()
	res := result(t, e.publish(e.retro("counted", 1, k)))
	w := e.writes()
	if w < 1 || w > 1+k {
		t.Fatalf("first publish made %d writes, want 1 page + ≤%d attachment writes", w, k)
	}
	if w != 2 {
		t.Errorf("first publish made %d writes, want 2 (page + one multipart upload)", w)
	}
	if got := len(e.fake.Attachments(res.PageID)); got != k {
		t.Fatalf("page has %d attachments, want %d", got, k)
	}

	e.fake.ResetRequests()
	again := e.retro("counted", 2, k) // same content, higher revision
	r2 := result(t, e.publish(again))
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("unchanged republish made %d requests: %+v", n, e.fake.Requests())
	}
	if r2.Outcome != "unchanged" || r2.HTTPCalls != 0 {
		t.Fatalf("unchanged republish result %+v", r2)
	}

	// A changed body is one call; a changed attachment one more.
	e.fake.ResetRequests()
	changed := e.retro("counted", 3, k)
	changed.Report.Summary = "edited"
	changed.Attachments[1].DataBase64 = "Y2hhbmdlZA=="
	e.publish(changed)
	if w := e.writes(); w != 2 {
		t.Fatalf("changed body + one changed attachment made %d writes, want 2: %+v", w, e.fake.Requests())
	}
	if n := len(e.fake.Requests()); n != 2 {
		t.Errorf("changed publish made %d calls, want 2", n)
	}
}

// Must-show 5: two reports at the same moment into a space with no parent
// yet make one parent page.
func TestRacingParentsMakeOne(t *testing.T) { eachBackend(t, testRacingParentsMakeOne) }

func testRacingParentsMakeOne(t *testing.T, e *env) {
	e.startWorker(8)
	for round := 0; round < 3; round++ {
		var ids []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		space := []string{"R0", "R1", "R2"}[round]
		e.fake.AddSpace(space, "Race "+space)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				p := e.retro("race-"+space+"-"+string(rune('a'+i)), 1, 1)
				p.Target.SpaceKey = space
				res := e.enqueue(p)
				mu.Lock()
				ids = append(ids, res.TaskID)
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		for _, id := range ids {
			if info := e.wait("default", id); info.State != asynq.TaskStateCompleted {
				t.Fatalf("%s: %s %s", id, info.State, info.LastErr)
			}
		}
		parents := 0
		for _, p := range e.fake.Pages(space) {
			if p.Title == "Retrospectives" {
				parents++
			}
		}
		if parents != 1 {
			t.Fatalf("space %s has %d parent pages\n%s", space, parents, e.fake.Tree(space))
		}
	}
}

// Must-show 6: invalid payloads are archived at once with a message naming
// the problem, and the worker keeps serving.
func TestInvalidPayloadsArchived(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	cases := map[string]struct{ payload, want string }{
		"bad-json":      {`{"schema":1,`, "json"},
		"unknown-field": {`{"schema":1,"integration_id":"acme-cloud","report":{"id":"r","revision":1,"kind":"retrospective","title":"T"},"target":{"space_key":"ENG"},"colour":"red"}`, "colour"},
		"missing-id":    {`{"schema":1,"integration_id":"acme-cloud","report":{"revision":1,"kind":"retrospective","title":"T"},"target":{"space_key":"ENG"}}`, "report.id"},
		"schema-7":      {`{"schema":7,"integration_id":"acme-cloud"}`, "schema"},
		"bad-kind":      {`{"schema":1,"integration_id":"acme-cloud","report":{"id":"r","revision":1,"kind":"memo","title":"T"},"target":{"space_key":"ENG"}}`, "report.kind"},
	}
	for name, c := range cases {
		if _, err := e.client.Enqueue(asynq.NewTask(jobs.TypePublishReport, []byte(c.payload)), asynq.TaskID(name), asynq.MaxRetry(20)); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range cases {
		info := e.wait("default", name)
		if info.State != asynq.TaskStateArchived || info.Retried != 0 {
			t.Errorf("%s: state %s retried %d, want archived at once", name, info.State, info.Retried)
		}
		if !strings.Contains(info.LastErr, c.want) || !strings.Contains(info.LastErr, "invalid payload") {
			t.Errorf("%s: error %q does not name %q", name, info.LastErr, c.want)
		}
	}
	e.publish(retro("after-bad", 1, 0)) // still serving
}

// A write that went through but whose answer was lost is not repeated
// blindly: the retry finds the page it made.
func TestLostCreateAnswerMakesNoDuplicate(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	e.publish(retro("warm", 1, 0))
	e.fake.AddFault(confluencetest.Fault{Method: "POST", Path: regexp.MustCompile(`^/wiki/api/v2/pages$`), Status: 502, Times: 1, AfterEffect: true})
	e.fake.AddFault(confluencetest.Fault{Method: "POST", Path: regexp.MustCompile(`/child/attachment$`), Status: 504, Times: 1, AfterEffect: true})
	info := e.publish(retro("lost-answer", 1, 2))
	page := e.onePage("Retro lost-answer")
	if n := len(e.fake.Attachments(page.ID)); n != 2 {
		t.Fatalf("%d attachments, want 2", n)
	}
	if info.Retried < 1 {
		t.Fatalf("expected retries, got %d", info.Retried)
	}
}

// A page deleted in Confluence is created anew and remapped; a page
// edited in Confluence is overwritten with version current+1 by default.
func TestDeletedAndEditedPages(t *testing.T) { eachBackend(t, testDeletedAndEditedPages) }

func testDeletedAndEditedPages(t *testing.T, e *env) {
	e.startWorker(2)
	r := result(t, e.publish(e.retro("del", 1, 0)))
	e.fake.DeletePage(r.PageID)
	p := e.retro("del", 2, 0)
	p.Report.Summary = "v2"
	r2 := result(t, e.publish(p))
	if r2.PageID == r.PageID {
		t.Fatal("deleted page was not recreated")
	}
	e.onePage("Retro del")

	e.fake.EditPage(r2.PageID, "<p>edited by a person</p>")
	p3 := e.retro("del", 3, 0)
	p3.Report.Summary = "v3"
	e.publish(p3)
	pg := e.onePage("Retro del")
	if pg.Version != 3 || !strings.Contains(pg.Body, "v3") {
		t.Fatalf("after manual edit: version %d body %q", pg.Version, pg.Body)
	}
}

// A title held by a page that is not ours gets a disambiguated title.
func TestTitleTakenByAnotherPage(t *testing.T) { eachBackend(t, testTitleTakenByAnotherPage) }

func testTitleTakenByAnotherPage(t *testing.T, e *env) {
	e.startWorker(2)
	e.publish(e.retro("first", 1, 0))
	parent := e.onePage("Retrospectives")
	e.fake.AddPage("ENG", parent.ID, "retro TAKEN", "<p>someone else's</p>")
	p := e.retro("taken", 1, 0)
	p.Report.Title = "Retro taken"
	r := result(t, e.publish(p))
	if r.Title != "Retro taken (2026-11-27)" {
		t.Fatalf("title %q", r.Title)
	}
}

// A 401 marks the integration needs_reauth and archives the task at once;
// other integrations keep publishing.
func TestUnauthorizedMarksNeedsReauth(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	err := e.store.Put(context.Background(), &credstore.Record{
		ID: "revoked", Flavor: "cloud", CloudID: e.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: "not-a-valid-token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := retro("r401", 1, 0)
	p.IntegrationID = "revoked"
	info := e.wait("default", e.enqueue(p).TaskID)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "re-authorise") {
		t.Fatalf("state %s retried %d err %q", info.State, info.Retried, info.LastErr)
	}
	rec, err := e.store.Get(context.Background(), "revoked")
	if err != nil || !rec.Status.NeedsReauth {
		t.Fatalf("status %+v err %v", rec.Status, err)
	}
	e.publish(retro("still-fine", 1, 0))
	_ = time.Second
}
