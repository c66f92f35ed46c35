package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/config"
)

func testApp(t *testing.T, rdb redis.UniversalClient) *app {
	t.Helper()
	env := map[string]string{
		"REDIS_URL":         "redis://127.0.0.1:1",
		"CREDSTORE_KEYS":    "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"WORKER_QUEUES":     "critical=1",
		"ATLASSIAN_API_URL": "http://127.0.0.1:1",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, zap.NewNop(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func get(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code
}

// /readyz is 503 until the worker runs, 200 while it runs, and 503 again
// once Redis stops answering or the worker shuts down.
func TestReadiness(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	a := testApp(t, rdb)
	h := a.httpMux(nil)
	if c := get(h, "/healthz"); c != 200 {
		t.Fatalf("/healthz %d", c)
	}
	if c := get(h, "/readyz"); c != 503 {
		t.Fatalf("/readyz before start: %d", c)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	defer a.shutdown()
	if c := get(h, "/readyz"); c != 200 {
		t.Fatalf("/readyz running: %d", c)
	}
	mr.SetError("LOADING Redis is loading the dataset in memory")
	if c := get(h, "/readyz"); c != 503 {
		t.Fatalf("/readyz with Redis failing: %d", c)
	}
	mr.SetError("")
	if c := get(h, "/readyz"); c != 200 {
		t.Fatalf("/readyz after Redis recovered: %d", c)
	}
	a.shutdown()
	if c := get(h, "/readyz"); c != 503 {
		t.Fatalf("/readyz after shutdown: %d", c)
	}
}

// Must-show 5 in-process: no login, a wrong one, or a wrong password →
// 401 with a challenge; the right one reaches asynqmon.
func TestDashboardLogin(t *testing.T) {
	mr := miniredis.RunT(t)
	dash, closeDash := dashboard(asynq.RedisClientOpt{Addr: mr.Addr()}, "ops", "s3cret", true)
	defer closeDash()
	for _, c := range []struct{ user, pass string }{{"", ""}, {"ops", "wrong"}, {"admin", "s3cret"}} {
		req := httptest.NewRequest("GET", "/dashboard/api/queues", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		rec := httptest.NewRecorder()
		dash.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("login %q/%q: %d", c.user, c.pass, rec.Code)
		}
	}
	req := httptest.NewRequest("GET", "/dashboard/api/queues", nil)
	req.SetBasicAuth("ops", "s3cret")
	rec := httptest.NewRecorder()
	dash.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("with the login: %d %s", rec.Code, rec.Body)
	}
	// Read-only by default: asynqmon refuses changes.
	req = httptest.NewRequest("DELETE", "/dashboard/api/queues/default", nil)
	req.SetBasicAuth("ops", "s3cret")
	rec = httptest.NewRecorder()
	dash.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("read-only DELETE: %d", rec.Code)
	}
}

// The dashboard shows payloads without the signatures of signed
// attachment URLs (issue 13 item 10).
func TestDashboardPayloadElidesSignedURLs(t *testing.T) {
	raw := []byte(`{"schema":1,"integration_id":"acme","attachments":[{"filename":"a.png","url":"https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=AMZSECRET\u0026X-Amz-Expires=60"}]}`)
	got := prettyJSON(raw)
	if strings.Contains(got, "AMZSECRET") || !strings.Contains(got, `"https://bucket.s3.amazonaws.com/a.png?…"`) {
		t.Fatalf("payload shown as %s", got)
	}
}

// With DASHBOARD_READONLY=false, a cross-site form POST riding on a cached
// login does not pause a queue; the dashboard's own requests still do
// (issue 13 item 8).
func TestDashboardRefusesCrossOriginChanges(t *testing.T) {
	mr := miniredis.RunT(t)
	conn := asynq.RedisClientOpt{Addr: mr.Addr()}
	cl := asynq.NewClient(conn)
	defer cl.Close()
	if _, err := cl.Enqueue(asynq.NewTask("report:publish", []byte(`{}`)), asynq.Queue("default")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(conn)
	defer insp.Close()
	dash, closeDash := dashboard(conn, "ops", "s3cret", false)
	defer closeDash()
	pause := func(header map[string]string) int {
		req := httptest.NewRequest("POST", "http://worker.internal:8080/dashboard/api/queues/default:pause", nil)
		req.SetBasicAuth("ops", "s3cret")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		dash.ServeHTTP(rec, req)
		return rec.Code
	}
	paused := func() bool {
		qi, err := insp.GetQueueInfo("default")
		if err != nil {
			t.Fatal(err)
		}
		return qi.Paused
	}
	for name, h := range map[string]map[string]string{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		"Origin only":               {"Origin": "https://evil.example"},
	} {
		if code := pause(h); code != http.StatusForbidden || paused() {
			t.Fatalf("%s: %d, paused %v; want 403 and the queue running", name, code, paused())
		}
	}
	if code := pause(map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://worker.internal:8080"}); code >= 300 || !paused() {
		t.Fatalf("same-origin pause: %d, paused %v", code, paused())
	}
}
