package test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"retropub/jobs"
)

var listeningRE = regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`)

// httpAddr waits for a worker process to say where it serves HTTP.
func (p *proc) httpAddr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		if !p.alive() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("worker never said where it listens:\n%s", tail(p.stderr.String(), 2000))
	return ""
}

// scrape reads /metrics into metric families.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sum adds the values of a family's series whose labels include want.
func sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// Must-show 2 and 5: after a run, /metrics has asynq's queue series and
// the retropub_* series, and their counts match what ran; /dashboard
// without the login answers 401.
func TestMetricsMatchTheTasksRun(t *testing.T) {
	e := newEnv(t)
	w := e.startEnv([]string{"DASHBOARD_USER=ops", "DASHBOARD_PASSWORD=pw-" + strings.Repeat("x", 12)}, "worker", "")
	addr := w.httpAddr(t)

	e.publish(retro("m-1", 1, 2)) // published: space, parent ×3, page, upload
	e.publish(retro("m-2", 1, 0)) // published
	e.publish(retro("m-1", 2, 2)) // unchanged content under a new revision: no calls
	bad := retro("m-3", 1, 0)     // archived: the space does not exist
	bad.Target.SpaceKey = "NOPE"
	if info := e.wait("default", e.enqueue(bad).TaskID); info.State != asynq.TaskStateArchived {
		t.Fatalf("m-3 ended %s", info.State)
	}
	res, err := jobs.EnqueueSetup(t.Context(), e.client, e.insp, &jobs.CheckPayload{Schema: 1, IntegrationID: "acme-cloud"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(jobs.SetupQueue, res.TaskID)

	mfs := scrape(t, addr)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"retropub_publishes_total", map[string]string{"outcome": "published"}, 2},
		{"retropub_publishes_total", map[string]string{"outcome": "unchanged"}, 1},
		{"retropub_publishes_total", map[string]string{"outcome": "archived"}, 1},
		{"retropub_publishes_total", nil, 4},
		{"retropub_setup_tasks_total", map[string]string{"type": "integration:check", "outcome": "ok"}, 1},
		{"asynq_tasks_processed_total", map[string]string{"queue": "default"}, 4},
		{"asynq_tasks_failed_total", map[string]string{"queue": "default"}, 1},
		{"asynq_tasks_enqueued_total", map[string]string{"queue": "default", "state": "completed"}, 3},
		{"asynq_tasks_enqueued_total", map[string]string{"queue": "default", "state": "archived"}, 1},
		{"asynq_tasks_enqueued_total", map[string]string{"queue": "critical", "state": "completed"}, 1},
		{"asynq_queue_size", map[string]string{"queue": "default"}, 4},
		{"retropub_breakers", map[string]string{"kind": "cloud", "state": "open"}, 0},
		{"retropub_deferrals_total", map[string]string{"kind": "cloud", "reason": "cooldown"}, 0},
		{"retropub_points_spent_total", map[string]string{"kind": "cloud"}, 0},
	}
	for _, c := range checks {
		if got := sum(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"asynq_queue_latency_seconds", "asynq_queue_memory_usage_approx_bytes", "asynq_queue_paused_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}

	// Every request the fake saw is counted once, under its endpoint.
	perEndpoint := map[string]float64{}
	for _, r := range e.fake.Requests() {
		path := strings.SplitN(r.Path, "/", 5)[4] // after /ex/confluence/{cloudId}/
		endpoint := r.Method + " " + digitsRE.ReplaceAllString("/"+path, "/*")
		perEndpoint[endpoint+" "+fmt.Sprint(r.Status)]++
	}
	got := map[string]float64{}
	for _, m := range mfs["retropub_confluence_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.Label {
			l[p.GetName()] = p.GetValue()
		}
		if l["kind"] != "cloud" {
			t.Errorf("kind %q", l["kind"])
		}
		got[l["endpoint"]+" "+l["status"]] += m.Counter.GetValue()
	}
	if fmt.Sprint(got) != fmt.Sprint(perEndpoint) {
		t.Errorf("requests by endpoint and status:\n metrics %v\n fake    %v", got, perEndpoint)
	}
	if n := sum(mfs, "retropub_confluence_request_duration_seconds", nil); n != float64(len(e.fake.Requests())) {
		t.Errorf("latency observations %v, requests %d", n, len(e.fake.Requests()))
	}

	// Must-show 5: the dashboard wants its login.
	for _, url := range []string{"http://" + addr + "/dashboard", "http://" + addr + "/dashboard/queues/default", "http://wrong:login@" + addr + "/dashboard/api/queues"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d, want 401 with a challenge", url, resp.StatusCode)
		}
	}
	if code, body := httpGet(t, "http://ops:pw-"+strings.Repeat("x", 12)+"@"+addr+"/dashboard/api/queues"); code != 200 || !strings.Contains(body, `"default"`) {
		t.Errorf("with the login: %d %s", code, tail(body, 300))
	}
}

var digitsRE = regexp.MustCompile(`/(att)?[0-9]+`)
