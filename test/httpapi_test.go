package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Must-show 5 through the worker binary: the HTTP API on HTTP_ADDR with
// API_TOKENS; every answer, the worker's log and Redis hold no secret,
// the API token included.
func TestHTTPAPIThroughTheWorker(t *testing.T) {
	e := newEnv(t)
	const token = "api-token-for-the-meeting-service-42"
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w := e.startEnv([]string{"HTTP_ADDR=" + addr, "API_TOKENS=meeting:" + token}, "worker", "")
	waitReady(t, addr, 200, time.Minute)

	var answers []string
	call := func(method, path, tok, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		answers = append(answers, fmt.Sprint(resp.Header)+string(raw))
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	b, _ := json.Marshal(retro("api-1", 1, 1))
	if code, _ := call("POST", "/v1/publish", "", string(b)); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := call("POST", "/v1/publish", token+"x", string(b)); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	code, ans := call("POST", "/v1/publish", token, string(b))
	if code != 202 || ans["task_id"] != "report:publish:acme-cloud:api-1:1" {
		t.Fatalf("publish: %d %v", code, ans)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, st := call("GET", "/v1/reports/acme-cloud/api-1", token, "")
		if code == 200 && st["state"] == "report.published" {
			pg, _ := st["page"].(map[string]any)
			if url, _ := pg["url"].(string); !strings.HasPrefix(url, "http") {
				t.Fatalf("status page %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report status: %d %v", code, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, ans := call("POST", "/v1/publish", token, string(b)); code != 200 || ans["duplicate"] != true || ans["state"] != "completed" {
		t.Fatalf("duplicate: %d %v", code, ans)
	}
	if code, st := call("GET", "/v1/integrations/acme-cloud", token, ""); code != 200 || st["last_success"] == nil {
		t.Fatalf("integration: %d %v", code, st)
	}
	if code, l := call("GET", "/v1/parked", token, ""); code != 200 || l["count"] != float64(0) {
		t.Fatalf("parked: %d %v", code, l)
	}
	e.assertNoSecrets(map[string]string{"API token": token}, append(answers, w.stderr.String())...)
}
