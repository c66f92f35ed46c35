package test

import (
	"regexp"
	"strings"
	"testing"

	"retropub/confluence/confluencetest"
	"retropub/jobs"
)

// editedPage publishes revision 1 of a report for integration, then edits
// the page in the fake as a person would, and returns the page id and the
// version the person's edit made.
func (e *env) editedPage(integration, reportID string) (*jobs.PublishPayload, string, int) {
	e.t.Helper()
	p := retro(reportID, 1, 1)
	p.IntegrationID = integration
	r := result(e.t, e.publish(p))
	if !e.fake.EditPage(r.PageID, "<p>fixed a typo by hand</p>") {
		e.t.Fatalf("edit page %s", r.PageID)
	}
	pg := e.onePage(p.Report.Title)
	return p, r.PageID, pg.Version
}

// edit_policy keep: a page edited in Confluence since our last publish is
// left as it is; the task result and the log say why.
func TestManualEditKept(t *testing.T) {
	e := newEnv(t)
	e.putIntegration("keep-cloud", "keep")
	e.startWorker(2)
	p, pageID, edited := e.editedPage("keep-cloud", "keep-1")

	for rev := int64(2); rev <= 3; rev++ {
		p.Report.Revision = rev
		p.Report.Summary = "our revision " + string(rune('0'+rev))
		r := result(t, e.publish(p))
		if r.Outcome != "kept_manual_edit" || r.PageID != pageID || r.Version != edited ||
			!strings.Contains(r.Note, "edited in Confluence") || !strings.Contains(r.Note, "edit_policy is keep") {
			t.Fatalf("revision %d: result %+v", rev, r)
		}
		pg := e.onePage(p.Report.Title)
		if pg.Version != edited || pg.Body != "<p>fixed a typo by hand</p>" {
			t.Fatalf("revision %d changed the edited page: v%d %q", rev, pg.Version, pg.Body)
		}
	}
	if logs := e.logs.String(); !strings.Contains(logs, `"manual edit kept"`) || !strings.Contains(logs, `"edit_policy":"keep"`) {
		t.Fatalf("log does not record the kept edit:\n%s", tail(logs, 3000))
	}
}

// edit_policy overwrite: the edited page is replaced by ours as version
// current+1.
func TestManualEditOverwritten(t *testing.T) {
	e := newEnv(t)
	e.putIntegration("overwrite-cloud", "overwrite")
	e.startWorker(2)
	p, pageID, edited := e.editedPage("overwrite-cloud", "over-1")

	p.Report.Revision = 2
	p.Report.Summary = "our second revision"
	r := result(t, e.publish(p))
	pg := e.onePage(p.Report.Title)
	if r.Outcome != "published" || r.PageID != pageID || pg.Version != edited+1 || r.Version != edited+1 ||
		!strings.Contains(pg.Body, "our second revision") || strings.Contains(pg.Body, "typo by hand") {
		t.Fatalf("result %+v, page v%d %q", r, pg.Version, pg.Body)
	}
}

// A page update whose answer was lost is our own write, not a person's
// edit: with edit_policy keep the retry recognises it and records it.
func TestLostUpdateAnswerIsNotAManualEdit(t *testing.T) {
	e := newEnv(t)
	e.putIntegration("keep-cloud", "keep")
	e.startWorker(2)
	p := retro("keep-lost", 1, 0)
	p.IntegrationID = "keep-cloud"
	r1 := result(t, e.publish(p))
	e.fake.AddFault(confluencetest.Fault{Method: "PUT", Path: regexp.MustCompile(`^/wiki/api/v2/pages/`), Status: 502, Times: 1, AfterEffect: true})
	p.Report.Revision, p.Report.Summary = 2, "second revision"
	info := e.publish(p)
	r := result(t, info)
	if info.Retried < 1 || r.Outcome != "published" || r.Version != r1.Version+1 {
		t.Fatalf("retried %d, result %+v", info.Retried, r)
	}
	// The mapping knows the version now: the next revision is written.
	p.Report.Revision, p.Report.Summary = 3, "third revision"
	if r := result(t, e.publish(p)); r.Outcome != "published" || r.Version != r1.Version+2 {
		t.Fatalf("revision 3: %+v", r)
	}
}
