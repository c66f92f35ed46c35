package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"retropub/confluence"
)

func TestRequestSeries(t *testing.T) {
	m := New(nil)
	for _, o := range []confluence.Outcome{
		{Instance: "cloud:c-1", Method: "GET", Route: "/wiki/api/v2/pages", StatusCode: 200, Duration: 20 * time.Millisecond},
		{Instance: "cloud:c-2", Method: "GET", Route: "/wiki/api/v2/pages", StatusCode: 200},
		{Instance: "server:wiki.example.com/confluence", Method: "PUT", Route: "/rest/api/content/*", StatusCode: 409},
		{Instance: "cloud:c-1", Method: "POST", Route: "/wiki/api/v2/pages", Err: context.DeadlineExceeded},
		{Instance: "cloud:c-1", Method: "POST", Route: "/wiki/api/v2/pages", Err: context.Canceled},
		{Instance: "cloud:c-1", Method: "POST", Route: "/wiki/api/v2/pages", Err: errors.New("connection refused")},
	} {
		m.Observe(o)
	}
	for labels, want := range map[[3]string]float64{
		{"cloud", "GET /wiki/api/v2/pages", "200"}:       2, // instances fold into their kind
		{"server", "PUT /rest/api/content/*", "409"}:     1,
		{"cloud", "POST /wiki/api/v2/pages", "timeout"}:  1,
		{"cloud", "POST /wiki/api/v2/pages", "canceled"}: 1,
		{"cloud", "POST /wiki/api/v2/pages", "error"}:    1,
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(labels[:]...)); got != want {
			t.Errorf("%v = %v, want %v", labels, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.latency); n != 3 {
		t.Errorf("latency series %d, want 3 (kind × endpoint)", n)
	}
}

func TestBreakerGauges(t *testing.T) {
	m := New(nil)
	m.BreakerTransition("cloud:a", "", BreakerClosed)
	m.BreakerTransition("cloud:b", "", BreakerClosed)
	m.BreakerTransition("cloud:a", "closed", "open")
	m.BreakerTransition("cloud:a", "open", "half-open") // gobreaker's spelling
	open := func(st string) float64 { return testutil.ToFloat64(m.breakers.WithLabelValues("cloud", st)) }
	if open(BreakerClosed) != 1 || open(BreakerHalfOpen) != 1 || open(BreakerOpen) != 0 {
		t.Fatalf("closed %v half-open %v open %v", open(BreakerClosed), open(BreakerHalfOpen), open(BreakerOpen))
	}
	if got := testutil.ToFloat64(m.transitions.WithLabelValues("cloud", BreakerOpen)); got != 1 {
		t.Fatalf("transitions to open %v", got)
	}
	m.BreakerGone("cloud:b", BreakerClosed)
	if open(BreakerClosed) != 0 {
		t.Fatal("gone breaker still counted")
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Observe(confluence.Outcome{Instance: "cloud:x"})
	m.TaskOutcome("report:publish", "published")
	m.BreakerTransition("cloud:x", "", "closed")
	m.Deferral("cloud:x", DeferCooldown)
	m.PointsSpent("cloud:x", 3)
}

func TestExposition(t *testing.T) {
	m := New(nil)
	m.TaskOutcome("report:publish", "published")
	m.TaskOutcome("integration:check", "ok")
	m.Deferral("cloud:x", DeferCooldown)
	m.PointsSpent("cloud:x", 3)
	want := `
# HELP retropub_points_spent_total Atlassian rate-limit points spent by this process (a write costs 1, a GET 1 plus 1 per object returned).
# TYPE retropub_points_spent_total counter
retropub_points_spent_total{kind="cloud"} 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "retropub_points_spent_total"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.publishes.WithLabelValues("published")); got != 1 {
		t.Fatalf("publishes %v", got)
	}
	if got := testutil.ToFloat64(m.setupTasks.WithLabelValues("integration:check", "ok")); got != 1 {
		t.Fatalf("setup %v", got)
	}
	if got := testutil.ToFloat64(m.deferrals.WithLabelValues("cloud", DeferCooldown)); got != 1 {
		t.Fatalf("deferrals %v", got)
	}
}

// A too-large answer is a second report for a request already counted:
// it counts apart, and not as another request.
func TestAnswerTooLargeSeries(t *testing.T) {
	m := New(nil)
	o := confluence.Outcome{Instance: "server:wiki.example.com", Method: "GET", Route: "/rest/api/content", StatusCode: 200}
	m.Observe(o)
	o.AnswerTooLarge, o.Err = true, &confluence.AnswerTooLargeError{Method: "GET", Path: "/rest/api/content", Limit: 1}
	m.Observe(o)
	if got := testutil.ToFloat64(m.tooLarge.WithLabelValues("server", "GET /rest/api/content")); got != 1 {
		t.Errorf("too large %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("server", "GET /rest/api/content", "200")); got != 1 {
		t.Errorf("requests %v, want 1", got)
	}
}

// A 410 counts as a request and, apart, as a retired endpoint an alert
// watches (issue 14 item 8).
func TestGoneSeries(t *testing.T) {
	m := New(nil)
	o := confluence.Outcome{Instance: "cloud:abc", Method: "GET", Route: "/wiki/api/v2/spaces", StatusCode: 410}
	m.Observe(o)
	m.Observe(confluence.Outcome{Instance: "cloud:abc", Method: "GET", Route: "/wiki/api/v2/spaces", StatusCode: 200})
	if got := testutil.ToFloat64(m.gone.WithLabelValues("cloud", "GET /wiki/api/v2/spaces")); got != 1 {
		t.Errorf("gone %v, want 1", got)
	}
}
