package test

import (
	"encoding/json"
	neturl "net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"retropub/confluence/confluencetest"
	"retropub/jobs"
)

// setupLine is one output line of `enqueue test|check|search`.
type setupLine struct {
	TaskID string          `json:"task_id"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

func (e *env) setupCmd(args ...string) (setupLine, int) {
	e.t.Helper()
	out, code := e.runCmd("enqueue", "", args...)
	var l setupLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &l); err != nil {
		e.t.Fatalf("enqueue %v: output %q: %v", args, out, err)
	}
	return l, code
}

func currentTitled(pages []confluencetest.Page, prefix string) []confluencetest.Page {
	var out []confluencetest.Page
	for _, p := range pages {
		if p.Status == "current" && strings.HasPrefix(p.Title, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// Must-show 3: the set-up tasks through the real binaries. test --delete
// prints ok with the page URL and leaves no page behind; search lists the
// matching pages; check lists the spaces.
func TestSetupTasksThroughBinaries(t *testing.T) {
	e := newEnv(t)
	e.fake.AddSpace("OPS", "Operations")
	parent := e.fake.AddPage("ENG", "", "Retrospectives", "<p>parent</p>")
	e.fake.AddPage("ENG", parent, "Retro Sprint 41", "<p>x</p>")
	e.fake.AddPage("ENG", parent, "Sprint 40 retrospective", "<p>x</p>")
	e.fake.AddPage("ENG", parent, "Planning", "<p>x</p>")
	e.fake.AddPage("OPS", "", "Retro in another space", "<p>x</p>")
	e.start("worker", "")

	l, code := e.setupCmd("test", "--integration", "acme-cloud", "--space", "ENG", "--delete", "--wait")
	var tr jobs.TestResult
	if err := json.Unmarshal(l.Result, &tr); err != nil || code != 0 || l.State != "completed" {
		t.Fatalf("test: exit %d %+v (%v)", code, l, err)
	}
	if !tr.OK || !tr.Deleted || !tr.ParentFound || tr.ParentID != parent || !strings.HasPrefix(tr.URL, "https://example.atlassian.net/wiki/spaces/ENG/pages/"+tr.PageID) {
		t.Fatalf("test result %s", l.Result)
	}
	if !strings.HasPrefix(l.TaskID, jobs.TypeIntegrationTest+":acme-cloud:") {
		t.Errorf("task id %q", l.TaskID)
	}
	if left := currentTitled(e.fake.Pages("ENG"), "retropub connection test"); len(left) != 0 {
		t.Fatalf("test pages left behind: %+v", left)
	}

	l, code = e.setupCmd("search", "--integration", "acme-cloud", "--space", "ENG", "--query", "Retro", "--wait")
	var sr jobs.SearchResult
	if err := json.Unmarshal(l.Result, &sr); err != nil || code != 0 || !sr.OK {
		t.Fatalf("search: exit %d %+v", code, l)
	}
	var titles []string
	for _, p := range sr.Pages {
		titles = append(titles, p.Title)
		if p.ID == "" || !strings.HasPrefix(p.URL, "https://example.atlassian.net/wiki/spaces/ENG/") {
			t.Errorf("hit %+v", p)
		}
	}
	if strings.Join(titles, "|") != "Retrospectives|Retro Sprint 41|Sprint 40 retrospective" {
		t.Fatalf("search hits %q", titles)
	}
	assertCQL(t, e, `type = page AND space = "ENG" AND title ~ "Retro*"`)

	// Without --delete the page stays, under the parent, and says so.
	l, code = e.setupCmd("test", "--integration", "acme-cloud", "--space", "ENG", "--wait=30s")
	tr = jobs.TestResult{}
	if code != 0 || json.Unmarshal(l.Result, &tr) != nil || tr.Deleted {
		t.Fatalf("test without --delete: exit %d %s", code, l.Result)
	}
	if kept := currentTitled(e.fake.Pages("ENG"), "retropub connection test"); len(kept) != 1 || kept[0].ParentID != parent {
		t.Fatalf("kept test page: %+v", kept)
	}

	l, code = e.setupCmd("check", "--integration", "acme-cloud", "--wait")
	var cr jobs.CheckResult
	if err := json.Unmarshal(l.Result, &cr); err != nil || code != 0 || !cr.OK || cr.User == nil || cr.User.DisplayName != "Fake Publisher" {
		t.Fatalf("check: exit %d %+v", code, l)
	}
	if len(cr.Spaces) != 2 || cr.Spaces[0].Key != "ENG" || cr.Spaces[1].Key != "OPS" || cr.Spaces[1].Name != "Operations" {
		t.Fatalf("check spaces %+v", cr.Spaces)
	}
	info, err := e.insp.GetTaskInfo(jobs.SetupQueue, l.TaskID)
	if err != nil || info.Retention != jobs.SetupRetention || info.Timeout != jobs.SetupTimeout || info.Deadline.IsZero() {
		t.Fatalf("check task options: %+v %v", info, err)
	}
}

// A set-up task that cannot succeed is archived at once with its result
// saying why, so the set-up screen can show it; the CLI exits 1.
func TestSetupTaskFailuresCarryTheirReason(t *testing.T) {
	e := newEnv(t)
	e.start("worker", "")
	l, code := e.setupCmd("test", "--integration", "acme-cloud", "--space", "NOPE", "--wait")
	var tr jobs.TestResult
	if code != 1 || l.State != "archived" || json.Unmarshal(l.Result, &tr) != nil || tr.OK || !strings.Contains(tr.Error, `space "NOPE" not found`) {
		t.Fatalf("missing space: exit %d %+v", code, l)
	}
	info, err := e.insp.GetTaskInfo(jobs.SetupQueue, l.TaskID)
	if err != nil || info.State != asynq.TaskStateArchived || info.Retried != 0 {
		t.Fatalf("archived task: %+v %v", info, err)
	}

	e.fake.AddFault(confluencetest.Fault{Path: regexp.MustCompile(`/user/current$`), Status: 401, Body: `{"code":401,"message":"Unauthorized"}`})
	l, code = e.setupCmd("check", "--integration", "acme-cloud", "--wait")
	if code != 1 || l.State != "archived" || !strings.Contains(l.Error, "re-authorised") {
		t.Fatalf("401: exit %d %+v", code, l)
	}
	rec, err := e.store.Get(t.Context(), "acme-cloud")
	if err != nil || !rec.Status.NeedsReauth {
		t.Fatalf("integration not marked needs_reauth: %+v %v", rec, err)
	}

	// Usage errors name the flag and enqueue nothing.
	out, code := e.runCmd("enqueue", "", "search", "--integration", "acme-cloud", "--space", "ENG", "--wait")
	if code != 2 || !strings.Contains(out, "--query: required") {
		t.Fatalf("missing --query: exit %d %s", code, out)
	}
}

func assertCQL(t *testing.T, e *env, want string) {
	t.Helper()
	for _, r := range e.fake.Requests() {
		if strings.HasSuffix(r.Path, "/wiki/rest/api/content/search") {
			v, _ := neturl.ParseQuery(r.RawQuery)
			if q := v.Get("cql"); q == want {
				return
			}
			t.Fatalf("cql %q, want %q", v.Get("cql"), want)
		}
	}
	t.Fatal("no search request")
}
