package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPayloadSummary(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, c := range []struct{ typ, payload, want string }{
		{"report:publish",
			`{"schema":1,"event_id":"e1","integration_id":"acme-cloud","report":{"id":"retro-8f2c","revision":3,"kind":"retrospective","title":"Sprint 42\nRetrospective","summary":"` + long + `"},"target":{"space_key":"ENG"},` +
				`"attachments":[{"filename":"a.pdf","url":"https://files.example.com/a.pdf?X-Amz-Signature=SECRET"},{"filename":"b.png","data_base64":"` + long + `"}]}`,
			`acme-cloud · retro-8f2c rev 3 · "Sprint 42\nRetrospective" · 2 attachments`},
		{"report:publish",
			`{"integration_id":"acme","report":{"id":"r","revision":1,"title":"` + strings.Repeat("é", 80) + `"}}`,
			`acme · r rev 1 · "` + strings.Repeat("é", 49) + `…" · 0 attachments`},
		{"integration:test", `{"schema":1,"integration_id":"acme","space_key":"ENG","parent_title":"Retros","delete":true}`,
			`acme · space ENG · under "Retros" · then delete`},
		{"integration:search", `{"schema":1,"integration_id":"acme","space_key":"ENG","query":"Retro"}`,
			`acme · space ENG · query "Retro"`},
		{"integration:check", `{"schema":1,"integration_id":"acme"}`, `acme`},
		{"other:type", `{"url":"https://x.example.com/f?sig=SECRET","n":1}`, `{"n":1,"url":"https://x.example.com/f?…"}`},
		{"report:publish", `not json`, `not json`},
	} {
		got := payloadSummary(c.typ, []byte(c.payload))
		if got != c.want {
			t.Errorf("%s %.60s:\n got %s\nwant %s", c.typ, c.payload, got, c.want)
		}
		if strings.ContainsAny(got, "\n\r") || len([]rune(got)) > summaryLimit || strings.Contains(got, "SECRET") {
			t.Errorf("%s: not one short, clean line: %q", c.typ, got)
		}
	}
}

func TestResultSummary(t *testing.T) {
	for _, c := range []struct{ result, want string }{
		{`{"outcome":"published","page_id":"65542","url":"https://acme.atlassian.net/wiki/x","title":"T","version":2,"revision":3,"steps":{"write_page":"created"},"http_calls":2}`,
			`published · page 65542 v2 · 2 calls`},
		{`{"outcome":"unchanged","page_id":"65542","version":2,"revision":3,"steps":{},"http_calls":0}`, `unchanged · page 65542 v2 · 0 calls`},
		{`{"ok":false,"error":"401 Unauthorized: re-authorise","latency_ms":30}`, `failed · 401 Unauthorized: re-authorise`},
		{`{"ok":true,"page_id":"7","deleted":true}`, `ok · page 7`},
		{``, ``},
	} {
		if got := resultSummary("", []byte(c.result)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.result, got, c.want)
		}
	}
}

// A task's page (its API request) goes to the full formatter; lists and
// everything else to the summaries.
func TestSplitTaskPage(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(name)) })
	}
	h := splitTaskPage("/dashboard", named("lists"), named("full"))
	for path, want := range map[string]string{
		"/dashboard/api/queues/default/tasks/report:publish:acme:r1:3": "full",
		"/dashboard/api/queues/default/completed_tasks":                "lists",
		"/dashboard/api/queues/default/tasks/x/cancel":                 "lists",
		"/dashboard/api/queues/default/archived_tasks":                 "lists",
		"/dashboard/queues/default/tasks/report:publish:acme:r1:3":     "lists", // the UI's page itself
		"/dashboard/api/queues":                                        "lists",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := rec.Body.String(); got != want {
			t.Errorf("%s went to %s, want %s", path, got, want)
		}
	}
}
