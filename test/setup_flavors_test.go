package test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

// declaredCalls is DESIGN §4's list of the only calls retropub makes, per
// flavour, written out here independently of the client's allowlist and
// of the fake's own marking, as the fake names its routes.
var declaredCalls = map[string][]string{
	credstore.FlavorCloud: {
		"GET /oauth/token/accessible-resources", "POST /oauth/token",
		"GET /wiki/api/v2/spaces", "GET /wiki/api/v2/pages", "POST /wiki/api/v2/pages",
		"PUT /wiki/api/v2/pages/{id}", "DELETE /wiki/api/v2/pages/{id}",
		"GET /wiki/rest/api/user/current",
		"GET /wiki/rest/api/content/{id}/child/attachment", "POST /wiki/rest/api/content/{id}/child/attachment",
		"POST /wiki/rest/api/content/{id}/child/attachment/{attachmentId}/data",
		"GET /wiki/rest/api/content/search",
	},
	credstore.FlavorServer: {
		"GET /rest/api/user/current", "GET /rest/api/space",
		"GET /rest/api/content", "POST /rest/api/content",
		"PUT /rest/api/content/{id}", "DELETE /rest/api/content/{id}",
		"GET /rest/api/content/{id}/child/attachment", "POST /rest/api/content/{id}/child/attachment",
		"POST /rest/api/content/{id}/child/attachment/{attachmentId}/data",
		"GET /rest/api/content/search",
	},
}

// Issue 14 must-show 1: `enqueue check`, `enqueue search`, `enqueue test`
// with and without --delete complete through the built binaries on every
// backend of the end-to-end table (Cloud OAuth, Data Center PAT, Basic
// and Application Link, Data Center at a context path), and every call
// each made is one DESIGN §4 declares for its flavour.
func TestSetupTasksOnEveryBackend(t *testing.T) {
	e := newParallelEnv(t, 4) // database testDB+4: slots 1, 2, 3, 5 and 6 are other tests' own
	e.start("worker", "")
	for _, b := range backends {
		id, fake := e.attach(b)
		site := "https://example.atlassian.net/wiki"
		if b.flavor == credstore.FlavorServer {
			site = e.dataCenter().BaseURL() // context path included
		}
		// The set-up pages once per fake (the Data Center one is shared).
		if len(e.titled(fake, "Retrospectives")) == 0 {
			parent := fake.AddPage("ENG", "", "Retrospectives", "<p>parent</p>")
			fake.AddPage("ENG", parent, "Retro Sprint 41", "<p>x</p>")
		}
		from := len(fake.Requests())
		t.Run(b.name, func(t *testing.T) {
			var tr jobs.TestResult
			e.setupOK(t, &tr, "test", "--integration", id, "--space", "ENG", "--delete", "--wait")
			if !tr.Deleted || !tr.ParentFound || !strings.HasPrefix(tr.URL, site+"/") {
				t.Errorf("test --delete: %+v (want deleted, under the parent, a URL below %s)", tr, site)
			}
			tr = jobs.TestResult{}
			e.setupOK(t, &tr, "test", "--integration", id, "--space", "ENG", "--wait")
			if tr.Deleted || !strings.HasPrefix(tr.URL, site+"/") {
				t.Errorf("test without --delete: %+v", tr)
			}
			var sr jobs.SearchResult
			e.setupOK(t, &sr, "search", "--integration", id, "--space", "ENG", "--query", "Retro", "--wait")
			var titles []string
			for _, h := range sr.Pages {
				titles = append(titles, h.Title)
				if !strings.HasPrefix(h.URL, site+"/") {
					t.Errorf("search hit %+v: URL not absolute below %s", h, site)
				}
			}
			if !slices.Contains(titles, "Retrospectives") || !slices.Contains(titles, "Retro Sprint 41") {
				t.Errorf("search hits %q", titles)
			}
			var cr jobs.CheckResult
			e.setupOK(t, &cr, "check", "--integration", id, "--wait")
			if cr.User == nil || len(cr.Spaces) == 0 || cr.Spaces[0].Key != "ENG" {
				t.Errorf("check: %+v", cr)
			}

			var calls []string
			for _, r := range fake.Requests()[from:] {
				call := r.Route
				if !slices.Contains(declaredCalls[b.flavor], call) || !r.Allowed {
					t.Errorf("%s: %s %s is not a call DESIGN §4 declares for %s", b.name, r.Method, r.Path, b.flavor)
				}
				if !slices.Contains(calls, call) {
					calls = append(calls, call)
				}
			}
			t.Logf("%s made %d calls, all declared: %s", b.name, len(fake.Requests())-from, strings.Join(calls, ", "))
		})
	}
}

// setupOK runs one set-up command through the enqueue binary and wants it
// completed, its result decoded into res.
func (e *env) setupOK(t *testing.T, res any, args ...string) {
	t.Helper()
	l, code := e.setupCmd(args...)
	if code != 0 || l.State != "completed" || json.Unmarshal(l.Result, res) != nil {
		t.Fatalf("enqueue %s: exit %d, %+v", strings.Join(args, " "), code, l)
	}
}

func (e *env) titled(fake *confluencetest.Server, title string) []confluencetest.Page {
	var out []confluencetest.Page
	for _, p := range fake.Pages("ENG") {
		if p.Title == title {
			out = append(out, p)
		}
	}
	return out
}
