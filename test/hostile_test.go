package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/hibiken/asynq"

	"retropub/jobs"
)

// noBadRequests fails when Confluence answered any request with 400 or 413:
// the renderer must never hand it a body it refuses.
func (e *env) noBadRequests() {
	e.t.Helper()
	for _, r := range e.fake.Requests() {
		if r.Status == 400 || r.Status == 413 {
			e.t.Fatalf("Confluence answered %d to %s %s", r.Status, r.Method, r.Path)
		}
	}
}

func hostilePayload(t *testing.T) *jobs.PublishPayload {
	data, err := os.ReadFile("../jobs/testdata/hostile.input.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := jobs.DecodePublishPayload(data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Hostile content (<script>, ]]>, &nbsp;, U+0000, U+FFFE, emoji,
// right-to-left text, 10,000 items, a title over 255 characters) gives a
// valid page, never a 400.
func TestHostileContentPublishes(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	p := hostilePayload(t)
	items := make([]jobs.Item, 10000)
	for i := range items {
		items[i] = jobs.Item{Text: fmt.Sprintf("<b>%d</b> ]]> &nbsp; \x00 \ufffe 🎉 مرحبا", i), Votes: i % 5, Group: fmt.Sprint("g", i%9)}
	}
	p.Report.Sections = append(p.Report.Sections, jobs.Section{Name: "Ten thousand", Items: items})
	if n := len([]rune(p.Report.Title)); n <= 255 {
		t.Fatalf("title has only %d characters", n)
	}
	r := result(t, e.publish(p))
	pg := e.onePage(r.Title)
	if n := len(utf16.Encode([]rune(pg.Title))); n > 255 || pg.Title != jobs.PageTitle(p.Report.Title) {
		t.Fatalf("title %q (%d units)", pg.Title, n)
	}
	if strings.Count(pg.Body, "<li>") < 10000 || strings.Contains(pg.Body, "<script>") || strings.Contains(pg.Body, "\x00") {
		t.Fatal("body does not carry the items escaped")
	}
	if n := len(e.fake.Attachments(pg.ID)); n != 3 {
		t.Fatalf("%d attachments", n)
	}
	e.noBadRequests()
}

// A report too big for one Confluence page is archived with a message
// saying so, without sending the page.
func TestOversizedReportArchivedClearly(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	p := retro("too-big", 1, 0)
	p.Report.Summary = strings.Repeat("<&>", 200_000)
	info := e.wait("default", e.enqueue(p).TaskID)
	if info.State != asynq.TaskStateArchived || !strings.Contains(info.LastErr, "5 MB page limit") {
		t.Fatalf("state %s: %s", info.State, info.LastErr)
	}
	e.noBadRequests()
}

// A title held by pages that are not ours: first the date is added, then
// the report id; a title over 255 characters keeps its suffix.
func TestTitleDisambiguation(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	e.publish(retro("warm", 1, 0))
	parent := e.onePage("Retrospectives")
	long := strings.Repeat("Quarterly retro ", 20) // 320 characters
	taken := []string{"Sprint 9", "Sprint 9 (2026-11-27)", jobs.PageTitle(long)}
	for _, title := range taken {
		e.fake.AddPage("ENG", parent.ID, title, "<p>someone else's</p>")
	}
	for _, tc := range []struct{ id, title, want string }{
		{"sprint-9", "Sprint 9", "Sprint 9 (sprint-9)"},
		{"long-1", long, strings.TrimSpace(jobs.PageTitle(long)[:255-len(" (2026-11-27)")]) + " (2026-11-27)"},
	} {
		p := retro(tc.id, 1, 0)
		p.Report.Title = tc.title
		r := result(t, e.publish(p))
		if r.Title != tc.want {
			t.Errorf("title %q, want %q", r.Title, tc.want)
		}
		// Republishing recognises our page by its footer: no third title.
		p.Report.Revision, p.Report.Summary = 2, "changed"
		if r2 := result(t, e.publish(p)); r2.PageID != r.PageID || r2.Title != r.Title {
			t.Errorf("republish moved to %q (%s)", r2.Title, r2.PageID)
		}
	}
	if n := len(e.fake.Pages("ENG")); n != 3+len(taken)+2 {
		t.Fatalf("%d pages:\n%s", n, e.fake.Tree("ENG"))
	}
}
