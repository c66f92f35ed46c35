package jobs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// payloadDesignExample is the DESIGN §2 payload, with real hashes and data.
const payloadDesignExample = `{
  "schema": 1,
  "event_id": "evt-2f9c",
  "integration_id": "acme-cloud",
  "report": {
    "id": "retro-8f2c", "revision": 3, "kind": "retrospective",
    "title": "Sprint 42 Retrospective", "team": "Platform", "held_at": "2026-11-27T15:00:00Z",
    "facilitator": "Dana", "participants": ["Dana", "Lee"], "link": "https://app.example.com/r/8f2c",
    "summary": "free text",
    "sections": [{"name": "Went well", "items": [{"text": "CI is faster", "votes": 4, "group": "Tooling"}]}],
    "actions": [{"text": "Pin Go version", "assignee": "Lee", "due": "2026-12-05", "done": false}]
  },
  "target": {"space_key": "ENG", "root_page_id": "", "parent_title": "Retrospectives"},
  "attachments": [
    {"filename": "sprint-42.pdf", "content_type": "application/pdf", "url": "https://files.example.com/x.pdf", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size": 48213},
    {"filename": "votes.png", "content_type": "image/png", "data_base64": "iVBORw0KGgo="}
  ]
}`

const payloadHealthExample = `{"schema":1,"integration_id":"acme","report":{"id":"hc-1","revision":1,"kind":"health_check","title":"Q4 health",
 "health":{"dimensions":[{"name":"Speed","score":3.4,"scale":5,"previous":3.1,"rating":"green","comments":["ok"]}]}},
 "target":{"space_key":"ENG"}}`

func TestPayloadDecodeDesignExample(t *testing.T) {
	p, err := DecodePublishPayload([]byte(payloadDesignExample))
	if err != nil {
		t.Fatal(err)
	}
	if p.EventID != "evt-2f9c" || p.Report.Revision != 3 || len(p.Report.Sections[0].Items) != 1 || len(p.Attachments) != 2 {
		t.Fatalf("decoded wrongly: %+v", p)
	}
	if got, want := p.TaskID(), "report:publish:acme-cloud:retro-8f2c:3"; got != want {
		t.Errorf("TaskID = %q, want %q", got, want)
	}
	if got := p.ParentTitle(); got != "Retrospectives" {
		t.Errorf("ParentTitle = %q", got)
	}

	h, err := DecodePublishPayload([]byte(payloadHealthExample))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.ParentTitle(); got != "Health Checks" {
		t.Errorf("health ParentTitle = %q", got)
	}
	if h.Report.Health.Dimensions[0].Previous == nil || *h.Report.Health.Dimensions[0].Previous != 3.1 {
		t.Errorf("previous lost: %+v", h.Report.Health.Dimensions[0])
	}
}

// mutate decodes the example into a generic map, applies f and re-encodes.
func payloadMutate(t *testing.T, base string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payloadObj(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

func payloadAtt(m map[string]any, i int) map[string]any {
	return m["attachments"].([]any)[i].(map[string]any)
}

func TestPayloadValidationRules(t *testing.T) {
	retro := func(f func(m map[string]any)) []byte { return payloadMutate(t, payloadDesignExample, f) }
	health := func(f func(m map[string]any)) []byte { return payloadMutate(t, payloadHealthExample, f) }
	rep := func(m map[string]any) map[string]any { return payloadObj(m, "report") }
	dim := func(m map[string]any) map[string]any {
		return payloadObj(m, "report", "health")["dimensions"].([]any)[0].(map[string]any)
	}
	cases := []struct {
		name  string
		data  []byte
		field string // PayloadError.Field
		want  string // substring of the message
	}{
		{"schema missing", retro(func(m map[string]any) { delete(m, "schema") }), "schema", "required"},
		{"schema 2", retro(func(m map[string]any) { m["schema"] = 2 }), "schema", "unsupported schema 2 (this worker understands 1)"},
		{"schema 7 with unknown field", retro(func(m map[string]any) { m["schema"] = 7; m["colour"] = "red" }), "schema", "unsupported schema 7"},
		{"schema missing with unknown field", retro(func(m map[string]any) { delete(m, "schema"); m["colour"] = "red" }), "schema", "required"},
		{"schema wrong type", retro(func(m map[string]any) { m["schema"] = "1" }), "schema", "must be a whole number, not string"},
		{"integration missing", retro(func(m map[string]any) { delete(m, "integration_id") }), "integration_id", "required"},
		{"integration bad chars", retro(func(m map[string]any) { m["integration_id"] = "acme:cloud" }), "integration_id", `"acme:cloud"`},
		{"integration too long", retro(func(m map[string]any) { m["integration_id"] = strings.Repeat("a", 129) }), "integration_id", "1 to 128"},
		{"report id missing", retro(func(m map[string]any) { delete(rep(m), "id") }), "report.id", "required"},
		{"report id space", retro(func(m map[string]any) { rep(m)["id"] = "a b" }), "report.id", "letters, digits"},
		{"revision missing", retro(func(m map[string]any) { delete(rep(m), "revision") }), "report.revision", "required"},
		{"revision negative", retro(func(m map[string]any) { rep(m)["revision"] = -1 }), "report.revision", "at least 1"},
		{"revision fraction", retro(func(m map[string]any) { rep(m)["revision"] = 1.5 }), "report.revision", "whole number"},
		{"revision string", retro(func(m map[string]any) { rep(m)["revision"] = "3" }), "report.revision", "must be a whole number, not string"},
		{"kind missing", retro(func(m map[string]any) { delete(rep(m), "kind") }), "report.kind", "required"},
		{"kind memo", retro(func(m map[string]any) { rep(m)["kind"] = "memo" }), "report.kind", `"memo" is not one of retrospective, health_check`},
		{"title missing", retro(func(m map[string]any) { delete(rep(m), "title") }), "report.title", "required"},
		{"title blank", retro(func(m map[string]any) { rep(m)["title"] = " \t " }), "report.title", "blank"},
		{"title too long", retro(func(m map[string]any) { rep(m)["title"] = strings.Repeat("é", 1001) }), "report.title", "1001 characters"},
		{"held_at bad", retro(func(m map[string]any) { rep(m)["held_at"] = "2026-11-27 15:00" }), "report.held_at", "RFC 3339"},
		{"link not http", retro(func(m map[string]any) { rep(m)["link"] = "javascript:alert(1)" }), "report.link", "http or https"},
		{"link relative", retro(func(m map[string]any) { rep(m)["link"] = "/r/8f2c" }), "report.link", "absolute"},
		{"due bad", retro(func(m map[string]any) {
			rep(m)["actions"].([]any)[0].(map[string]any)["due"] = "05/12/2026"
		}), "report.actions[0].due", "YYYY-MM-DD"},
		{"retro with health", retro(func(m map[string]any) {
			rep(m)["health"] = map[string]any{"dimensions": []any{map[string]any{"name": "x", "score": 1}}}
		}), "report.health", "only health_check"},
		{"health without health", health(func(m map[string]any) { delete(rep(m), "health") }), "report.health", "required"},
		{"health no dimensions", health(func(m map[string]any) { rep(m)["health"] = map[string]any{"dimensions": []any{}} }), "report.health.dimensions", "at least one"},
		{"health with sections", health(func(m map[string]any) { rep(m)["sections"] = []any{map[string]any{"name": "x"}} }), "report.sections", "no sections"},
		{"scale negative", health(func(m map[string]any) { dim(m)["scale"] = -5 }), "report.health.dimensions[0].scale", "greater than 0"},
		{"score above scale", health(func(m map[string]any) { dim(m)["score"] = 6 }), "report.health.dimensions[0].score", "above the scale of 5"},
		{"score negative", health(func(m map[string]any) { dim(m)["score"] = -1 }), "report.health.dimensions[0].score", "negative"},
		{"previous above scale", health(func(m map[string]any) { dim(m)["previous"] = 9 }), "report.health.dimensions[0].previous", "above the scale"},
		{"rating unknown", health(func(m map[string]any) { dim(m)["rating"] = "purple" }), "report.health.dimensions[0].rating", `"purple" is not one of green`},
		{"space key missing", retro(func(m map[string]any) { delete(payloadObj(m, "target"), "space_key") }), "target.space_key", "required"},
		{"space key bad", retro(func(m map[string]any) { payloadObj(m, "target")["space_key"] = "EN G" }), "target.space_key", "space key"},
		{"root page not numeric", retro(func(m map[string]any) { payloadObj(m, "target")["root_page_id"] = "12a" }), "target.root_page_id", "numeric"},
		{"filename missing", retro(func(m map[string]any) { delete(payloadAtt(m, 1), "filename") }), "attachments[1].filename", "required"},
		{"filename slash", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "a/b.png" }), "attachments[1].filename", `must not contain / or \`},
		{"filename backslash", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = `a\b.png` }), "attachments[1].filename", "must not contain"},
		{"filename newline", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "a\nb.png" }), "attachments[1].filename", "control characters"},
		{"filename NUL", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "a\x00b" }), "attachments[1].filename", "NUL"},
		{"filename dotdot", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = ".." }), "attachments[1].filename", "not a file name"},
		{"filename long", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = strings.Repeat("a", 256) }), "attachments[1].filename", "at most 255"},
		{"filename duplicate", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "SPRINT-42.pdf" }), "attachments[1].filename", "already used by attachments[0]"},
		{"neither url nor data", retro(func(m map[string]any) { delete(payloadAtt(m, 1), "data_base64") }), "attachments[1]", "needs url or data_base64"},
		{"both url and data", retro(func(m map[string]any) { payloadAtt(m, 1)["url"] = "https://x.example/y" }), "attachments[1]", "exactly one"},
		{"bad base64", retro(func(m map[string]any) { payloadAtt(m, 1)["data_base64"] = "not base64!" }), "attachments[1].data_base64", "base64"},
		{"url ftp", retro(func(m map[string]any) { payloadAtt(m, 0)["url"] = "ftp://files.example.com/x.pdf" }), "attachments[0].url", "http or https"},
		{"sha256 short", retro(func(m map[string]any) { payloadAtt(m, 0)["sha256"] = "abc" }), "attachments[0].sha256", "64 hexadecimal"},
		{"size negative", retro(func(m map[string]any) { payloadAtt(m, 0)["size"] = -1 }), "attachments[0].size", "negative"},
		{"content type bad", retro(func(m map[string]any) { payloadAtt(m, 0)["content_type"] = "pdf" }), "attachments[0].content_type", "media type"},
		{"unknown field", retro(func(m map[string]any) { m["colour"] = "red" }), "colour", "unknown field"},
		{"unknown nested field", retro(func(m map[string]any) { rep(m)["mood"] = "ok" }), "report.mood", "unknown field"},
		{"unknown deep field", retro(func(m map[string]any) {
			rep(m)["sections"].([]any)[0].(map[string]any)["items"].([]any)[0].(map[string]any)["colour"] = "red"
		}), "report.sections[0].items[0].colour", "unknown field"},
		{"unknown attachment field", retro(func(m map[string]any) { payloadAtt(m, 1)["md5"] = "x" }), "attachments[1].md5", "unknown field"},
		{"wrong type nested", retro(func(m map[string]any) { payloadObj(m, "target")["space_key"] = 5 }), "target.space_key", "must be a string, not number"},
		{"sections not array", retro(func(m map[string]any) { rep(m)["sections"] = "x" }), "report.sections", "must be an array"},
		{"bad json", []byte(`{"schema": 1,`), "json", "unexpected end"},
		{"syntax error", []byte(`{"schema": 1 "x"}`), "json", "at byte"},
		{"trailing data", []byte(payloadDesignExample + ` {}`), "json", "after the JSON object"},
		{"array", []byte(`[1]`), "json", "want one JSON object, got an array"},
		{"empty", []byte("  "), "json", "empty"},
		{"too big", []byte(`{"schema":1,"x":"` + strings.Repeat("a", MaxPayloadBytes) + `"}`), "json", "4 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodePublishPayload(tc.data)
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (%T), want *PayloadError", err, err)
			}
			if pe.Field != tc.field || !strings.Contains(pe.Problem, tc.want) {
				t.Errorf("err = %q, want field %q and problem containing %q", err, tc.field, tc.want)
			}
		})
	}
}

func TestPayloadErrorFormat(t *testing.T) {
	_, err := DecodePublishPayload(payloadMutate(t, payloadDesignExample, func(m map[string]any) { delete(payloadObj(m, "report"), "id") }))
	if err == nil || err.Error() != "report.id: required" {
		t.Fatalf("err = %v, want report.id: required", err)
	}
	_, err = DecodePublishPayload(payloadMutate(t, payloadDesignExample, func(m map[string]any) { m["schema"] = 7 }))
	if want := "schema: unsupported schema 7 (this worker understands 1)"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestPayloadOptionalsAccepted(t *testing.T) {
	minimal := `{"schema":1,"integration_id":"a","report":{"id":"r","revision":1,"kind":"retrospective","title":"T"},"target":{"space_key":"~dana"}}`
	p, err := DecodePublishPayload([]byte(" \n" + minimal + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ParentTitle() != "Retrospectives" || p.TaskID() != "report:publish:a:r:1" {
		t.Errorf("got %q %q", p.ParentTitle(), p.TaskID())
	}
	// Content type with parameters, digits-only root page, http link.
	data := payloadMutate(t, payloadDesignExample, func(m map[string]any) {
		payloadAtt(m, 0)["content_type"] = "text/plain; charset=utf-8"
		payloadObj(m, "target")["root_page_id"] = "123456"
		payloadObj(m, "report")["link"] = "http://localhost:8080/r/1"
	})
	if _, err := DecodePublishPayload(data); err != nil {
		t.Fatal(err)
	}
}

func TestPayloadNewPublishTaskValidates(t *testing.T) {
	if _, err := NewPublishTask(&PublishPayload{Schema: 1}); err == nil || !strings.HasPrefix(err.Error(), "integration_id:") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzPayloadDecode(f *testing.F) {
	f.Add([]byte(payloadDesignExample))
	f.Add([]byte(payloadHealthExample))
	f.Add([]byte(`{"schema":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePublishPayload(data)
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("not a PayloadError: %T %v", err, err)
			}
			return
		}
		// Whatever is accepted must survive a round trip unchanged.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodePublishPayload(b); err != nil {
			t.Fatalf("re-encoded payload rejected: %v", err)
		}
	})
}
