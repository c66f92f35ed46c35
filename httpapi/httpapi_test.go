package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/credstore"
	"retropub/jobs"
	"retropub/outcomes"
)

const (
	goodToken = "tok-meeting-service-0123456789abcdef"
	otherTok  = "tok-operator-fedcba9876543210"
)

type noIntegrations struct{}

func (noIntegrations) Get(context.Context, string) (*credstore.Record, error) {
	return nil, credstore.ErrNotFound
}

func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = 12
		rdb := redis.NewClient(opt)
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func payload(report string, rev int) string {
	return fmt.Sprintf(`{"schema":1,"event_id":"evt-%s","integration_id":"acme","report":{"id":%q,"revision":%d,"kind":"retrospective","title":"Retro %s"},"target":{"space_key":"ENG"}}`,
		report, report, rev, report)
}

// doc is the OpenAPI document, read for the checks.
type doc struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema *schema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

type schema struct {
	Ref        string             `json:"$ref"`
	Type       string             `json:"type"`
	Required   []string           `json:"required"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	Enum       []string           `json:"enum"`
	AddProps   *schema            `json:"additionalProperties"`
}

func loadDoc(t *testing.T) *doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return &d
}

func (d *doc) resolve(s *schema) *schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// conform checks v against s: types, required fields, no field the
// document does not name, enums.
func (d *doc) conform(at string, s *schema, v any) error {
	s = d.resolve(s)
	if s == nil {
		return fmt.Errorf("%s: no schema", at)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required field %q missing", at, r)
			}
		}
		if s.Properties == nil {
			return nil
		}
		for k, x := range m {
			ps, ok := s.Properties[k]
			if !ok {
				if s.AddProps != nil {
					continue
				}
				return fmt.Errorf("%s: field %q is not in the document", at, k)
			}
			if err := d.conform(at+"."+k, ps, x); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		for i, x := range a {
			if err := d.conform(fmt.Sprintf("%s[%d]", at, i), s.Items, x); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want a string", at, v)
		}
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			return fmt.Errorf("%s: %q is not one of %v", at, str, s.Enum)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: %v, want an integer", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want a boolean", at, v)
		}
	}
	return nil
}

// template finds the document's path template and operation of a request.
func (d *doc) template(method, path string) (string, *operation) {
	for tmpl, ops := range d.Paths {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$")
		if op, ok := ops[strings.ToLower(method)]; ok && re.MatchString(path) {
			return tmpl, &op
		}
	}
	return "", nil
}

// The document and the handlers name the same routes.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	d := loadDoc(t)
	n := 0
	for tmpl, ops := range d.Paths {
		for m := range ops {
			n++
			if !slices.ContainsFunc(routes, func(r route) bool { return r.pattern == tmpl && strings.EqualFold(r.method, m) }) {
				t.Errorf("document has %s %s, the handlers do not", m, tmpl)
			}
		}
	}
	if n != len(routes) {
		t.Errorf("document has %d operations, handlers %d", n, len(routes))
	}
}

type call struct {
	method, path, token, ctype, body string
	want                             int
	check                            func(t *testing.T, body map[string]any)
}

// Must-show 5: every endpoint answers as the document says, including
// 401, 400 with every invalid field, duplicates, 413 and 415; no answer
// holds a token.
func TestAPIAnswersAsDocumented(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	store := &outcomes.Store{Redis: rdb}
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	api := &API{Tokens: []Token{{"meeting", goodToken}, {"ops", otherTok}}, MaxBody: 64 << 10, Client: client, Inspector: insp,
		Status: store, Replayer: &jobs.Replayer{Client: client, Inspector: insp, Parked: store}, Integrations: noIntegrations{}}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	rec := &outcomes.Recorder{Redis: rdb}
	if _, err := rec.RecordReport(ctx, &outcomes.Report{TaskID: "report:publish:acme:r1:1", Type: outcomes.TypeParked, IntegrationID: "acme", ReportID: "r1",
		Revision: 1, Error: &outcomes.Error{Class: outcomes.ClassNeedsReauth, Message: "put new credentials"}, Payload: []byte(payload("r1", 1))}); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.RecordReport(ctx, &outcomes.Report{TaskID: "report:publish:acme:r2:1", Type: outcomes.TypePublished, IntegrationID: "acme", ReportID: "r2",
		Revision: 1, Page: &outcomes.Page{ID: "65542", URL: "https://acme.atlassian.net/wiki/spaces/ENG/pages/65542", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	bad := `{"schema":1,"integration_id":"bad id!","report":{"id":"","revision":0,"kind":"retro","title":" "},"target":{"space_key":"E NG"},"attachments":[{"filename":"a/b"}]}`
	wantFields := []string{"integration_id", "report.id", "report.revision", "report.kind", "report.title", "target.space_key", "attachments[0].filename", "attachments[0]"}
	calls := []call{
		{"POST", "/v1/publish", "", "application/json", payload("r9", 1), 401, nil},
		{"POST", "/v1/publish", "wrong-token-wrong-token", "application/json", payload("r9", 1), 401, nil},
		{"GET", "/v1/parked", goodToken[:len(goodToken)-1], "", "", 401, nil},
		{"POST", "/v1/publish", goodToken, "text/plain", payload("r9", 1), 415, nil},
		{"POST", "/v1/publish", goodToken, "application/json", `{"schema":1,"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, nil},
		{"POST", "/v1/publish", goodToken, "application/json", bad, 400, func(t *testing.T, b map[string]any) {
			var got []string
			for _, f := range b["fields"].([]any) {
				got = append(got, f.(map[string]any)["path"].(string))
			}
			if !slices.Equal(got, wantFields) {
				t.Errorf("fields %v, want every one of %v", got, wantFields)
			}
		}},
		{"POST", "/v1/publish", goodToken, "application/json", `{"schema":1,"integration_id":"acme","surprise":1}`, 400, nil},
		{"POST", "/v1/publish", goodToken, "application/json; charset=utf-8", payload("r9", 1), 202, func(t *testing.T, b map[string]any) {
			if b["task_id"] != "report:publish:acme:r9:1" || b["state"] != "pending" || b["duplicate"] != false {
				t.Errorf("answer %v", b)
			}
		}},
		{"POST", "/v1/publish", otherTok, "application/json", payload("r9", 1), 200, func(t *testing.T, b map[string]any) {
			if b["task_id"] != "report:publish:acme:r9:1" || b["duplicate"] != true {
				t.Errorf("duplicate answer %v", b)
			}
		}},
		{"GET", "/v1/reports/acme/r2", goodToken, "", "", 200, func(t *testing.T, b map[string]any) {
			if b["state"] != outcomes.TypePublished || b["page"].(map[string]any)["id"] != "65542" {
				t.Errorf("status %v", b)
			}
		}},
		{"GET", "/v1/reports/acme/r1", goodToken, "", "", 200, func(t *testing.T, b map[string]any) {
			if b["state"] != outcomes.TypeParked || b["parked"] == nil || b["error"].(map[string]any)["class"] != "needs_reauth" {
				t.Errorf("status %v", b)
			}
		}},
		{"GET", "/v1/reports/acme/nope", goodToken, "", "", 404, nil},
		{"GET", "/v1/integrations/acme", goodToken, "", "", 200, func(t *testing.T, b map[string]any) {
			if b["parked"] != float64(1) || b["last_success"] == nil {
				t.Errorf("integration %v", b)
			}
		}},
		{"GET", "/v1/integrations/nope", goodToken, "", "", 404, nil},
		{"GET", "/v1/parked", goodToken, "", "", 200, func(t *testing.T, b map[string]any) {
			if b["count"] != float64(1) {
				t.Errorf("parked %v", b)
			}
		}},
		{"GET", "/v1/parked?integration=other", goodToken, "", "", 200, func(t *testing.T, b map[string]any) {
			if b["count"] != float64(0) {
				t.Errorf("parked %v", b)
			}
		}},
		{"POST", "/v1/parked/replay", goodToken, "application/json", `{}`, 400, nil},
		{"POST", "/v1/parked/replay", goodToken, "application/json", `{"integration":"acme","all":true}`, 400, nil},
		{"POST", "/v1/parked/replay", goodToken, "text/plain", `{"all":true}`, 415, nil},
		{"POST", "/v1/parked/replay", goodToken, "application/json", `{"all":true,"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, nil},
		{"POST", "/v1/parked/replay", goodToken, "application/json", `{"integration":"acme"}`, 200, func(t *testing.T, b map[string]any) {
			if b["replayed"] != float64(1) {
				t.Errorf("replay %v", b)
			}
		}},
		{"DELETE", "/v1/parked/acme/r1", goodToken, "", "", 200, nil},
		{"DELETE", "/v1/parked/acme/r1", goodToken, "", "", 404, nil},
		{"GET", "/v1/openapi.json", goodToken, "", "", 200, nil},
	}
	// Every route refuses a call without a token, before anything else.
	for _, r := range routes {
		path := strings.NewReplacer("{integration}", "acme", "{report}", "r1", "{id}", "acme").Replace(r.pattern)
		calls = append([]call{{r.method, path, "", "application/json", "{}", 401, nil}}, calls...)
	}
	d := loadDoc(t)
	covered := map[string]bool{}
	for _, c := range calls {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		name := c.method + " " + c.path
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", name, resp.StatusCode, raw, c.want)
			continue
		}
		for _, secret := range []string{goodToken, otherTok} {
			if strings.Contains(string(raw), secret) || strings.Contains(fmt.Sprint(resp.Header), secret) {
				t.Errorf("%s: the answer holds a token", name)
			}
		}
		tmpl, op := d.template(c.method, strings.Split(c.path, "?")[0])
		if op == nil {
			t.Errorf("%s: not in the document", name)
			continue
		}
		code := fmt.Sprint(resp.StatusCode)
		covered[strings.ToLower(c.method)+" "+tmpl+" "+code] = true
		r, ok := op.Responses[code]
		if !ok {
			t.Errorf("%s: status %s is not documented", name, code)
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("%s: answer is not a JSON object: %s", name, raw)
			continue
		}
		if err := d.conform("answer", r.Content["application/json"].Schema, body); err != nil {
			t.Errorf("%s %d: %v\n%s", name, resp.StatusCode, err, raw)
		}
		if c.check != nil {
			c.check(t, body)
		}
	}
	// Every documented answer but 503 (Redis down) was seen.
	for tmpl, ops := range d.Paths {
		for m, op := range ops {
			for code := range op.Responses {
				if code != "503" && !covered[m+" "+tmpl+" "+code] {
					t.Errorf("documented %s %s → %s never exercised", m, tmpl, code)
				}
			}
		}
	}
}
