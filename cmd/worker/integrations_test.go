package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/credstore"
)

const (
	cloudRecord = `{"id":"acme-cloud","flavor":"cloud","cloud_id":"c-1","site_url":"https://acme.atlassian.net",
	  "auth":{"kind":"oauth2","access_token":"SECRET-access","refresh_token":"SECRET-refresh","scopes":["write:confluence-content"]}}`
	patRecord = `{"id":"dc-pat","flavor":"server","base_url":"https://wiki.example.com","edit_policy":"keep",
	  "auth":{"kind":"pat","token":"SECRET-pat"}}`
)

func newIntegrationsStore(t *testing.T) *credstore.Store {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	keys, err := credstore.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return credstore.New(rdb, keys)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, store *credstore.Store, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runIntegrations(context.Background(), integrationsDeps{store: store}, args, strings.NewReader(stdin), &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), "SECRET") {
		t.Errorf("integrations %q printed a secret:\n%s%s", args, out.String(), errOut.String())
	}
	return cliResult{code, out.String(), errOut.String()}
}

func TestIntegrationsCLI(t *testing.T) {
	store := newIntegrationsStore(t)
	file := filepath.Join(t.TempDir(), "cloud.json")
	if err := os.WriteFile(file, []byte(cloudRecord), 0o600); err != nil {
		t.Fatal(err)
	}

	// put from a file and from stdin
	for _, tc := range []struct{ stdin, file, id string }{{"", file, "acme-cloud"}, {patRecord, "-", "dc-pat"}} {
		r := runCLI(t, store, tc.stdin, "put", "--file", tc.file)
		if r.code != 0 {
			t.Fatalf("put %s: exit %d, stderr %s", tc.file, r.code, r.stderr)
		}
		var got struct {
			OK          bool           `json:"ok"`
			Integration credstore.View `json:"integration"`
		}
		if strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &got) != nil ||
			!got.OK || got.Integration.ID != tc.id || got.Integration.UpdatedAt.IsZero() {
			t.Errorf("put output = %q", r.stdout)
		}
	}

	r := runCLI(t, store, "", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[0], `"id":"acme-cloud"`) ||
		!strings.Contains(lines[1], `"id":"dc-pat"`) {
		t.Errorf("list: exit %d, output %q", r.code, r.stdout)
	}

	r = runCLI(t, store, "", "show", "acme-cloud")
	var v credstore.View
	if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil {
		t.Fatalf("show: exit %d, %v, output %q", r.code, err, r.stdout)
	}
	if v.AuthKind != "oauth2" || !v.HasRefreshToken || v.EditPolicy != "overwrite" || !strings.Contains(r.stdout, "\n  ") {
		t.Errorf("show output = %s", r.stdout)
	}

	if r = runCLI(t, store, "", "delete", "dc-pat"); r.code != 0 {
		t.Errorf("delete: exit %d, stderr %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"delete", "dc-pat"}, {"show", "dc-pat"}} {
		if r = runCLI(t, store, "", args...); r.code != 1 || !strings.Contains(r.stderr, "integration dc-pat not found") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestIntegrationsCLIBadInput(t *testing.T) {
	store := newIntegrationsStore(t)
	tests := []struct {
		name, stdin string
		args        []string
		stderr      string
	}{
		{"no subcommand", "", nil, "usage: worker integrations"},
		{"unknown subcommand", "", []string{"frob"}, "usage: worker integrations"},
		{"put without file", "", []string{"put"}, "usage: worker integrations"},
		{"show without id", "", []string{"show"}, "usage: worker integrations"},
		{"list with args", "", []string{"list", "x"}, "usage: worker integrations"},
		{"unknown flag", "", []string{"put", "--fil", "x"}, "flag provided but not defined"},
		{"missing file", "", []string{"put", "--file", filepath.Join(t.TempDir(), "nope.json")}, "no such file"},
		{"not JSON", "{", []string{"put", "--file", "-"}, "integration record"},
		{"unknown field", strings.Replace(patRecord, `"token"`, `"tokn"`, 1), []string{"put", "--file", "-"}, `unknown field "tokn"`},
		{"invalid record", strings.Replace(patRecord, `"https://wiki.example.com"`, `"wiki"`, 1),
			[]string{"put", "--file", "-"}, "base_url: must be an absolute http(s) URL"},
		{"two problems", `{"id":"a b","flavor":"server","auth":{"kind":"pat","token":"SECRET-x"}}`,
			[]string{"put", "--file", "-"}, "integrations put: base_url: required for flavor server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, store, tt.stdin, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.stderr)
			}
		})
	}
	if r := runCLI(t, store, "", "list"); r.stdout != "" {
		t.Errorf("bad input stored something: %q", r.stdout)
	}
}

// Service accounts (DESIGN §11): `put` takes kind oauth2_client on Cloud
// and Data Center with the same validation and redaction as the other
// kinds; a bad record gets one line per field and stores nothing.
func TestIntegrationsPutServiceAccount(t *testing.T) {
	store := newIntegrationsStore(t)
	for _, rec := range []string{
		`{"id":"sa-cloud","flavor":"cloud","cloud_id":"c-1","auth":{"kind":"oauth2_client","client_id":"AbC123xyz","client_secret":"SECRET-cs-1"}}`,
		`{"id":"sa-dc","flavor":"server","base_url":"https://wiki.example.com/confluence","auth":{"kind":"oauth2_client","client_id":"0123abcd","client_secret":"SECRET-cs-2","scopes":["READ","WRITE"]}}`,
	} {
		r := runCLI(t, store, rec, "put", "--file", "-")
		if r.code != 0 || !strings.Contains(r.stdout, `"auth_kind":"oauth2_client"`) || !strings.Contains(r.stdout, `"client_id"`) {
			t.Fatalf("put: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	show := runCLI(t, store, "", "show", "sa-dc")
	if show.code != 0 || !strings.Contains(show.stdout, "0123abcd") {
		t.Fatalf("show: %+v", show)
	}

	bad := `{"id":"sa-bad","flavor":"server","base_url":"https://wiki.example.com","auth":{"kind":"oauth2_client","client_id":"has space","client_secret":"SECRET-with\nnewline","scopes":["READ",""],"token":"SECRET-stray"}}`
	r := runCLI(t, store, bad, "put", "--file", "-")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	want := []string{"auth.token: not used by kind oauth2_client", "auth.client_id: must be", "auth.client_secret: must be", "auth.scopes[1]: must be"}
	if r.code != 2 || len(lines) != len(want) {
		t.Fatalf("bad put: exit %d, want 2 and %d lines:\n%s", r.code, len(want), r.stderr)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %q lacks %q", i, lines[i], w)
		}
	}
	missing := runCLI(t, store, `{"id":"sa-none","flavor":"cloud","cloud_id":"c-1","auth":{"kind":"oauth2_client"}}`, "put", "--file", "-")
	if missing.code != 2 || !strings.Contains(missing.stderr, "auth.client_id: required") || !strings.Contains(missing.stderr, "auth.client_secret: required") {
		t.Fatalf("missing fields: %+v", missing)
	}
	if _, err := store.Get(context.Background(), "sa-bad"); err == nil {
		t.Fatal("a refused record was stored")
	}
}
