// Package metrics holds retropub's Prometheus series and serves them, with
// asynq's queue series, on /metrics.
//
// Every method works on a nil *Metrics and then records nothing, so code
// paths without metrics (tests, tools) need no stand-in.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"retropub/confluence"
)

// Metrics is one process's series, on its own registry.
type Metrics struct {
	reg *prometheus.Registry

	publishes   *prometheus.CounterVec
	setupTasks  *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	breakers    *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	deferrals   *prometheus.CounterVec
	points      *prometheus.CounterVec
	out         outcomeSeries
	tooLarge    *prometheus.CounterVec
	gone        *prometheus.CounterVec

	op         operatorSeries
	collectors []prometheus.Collector // everything registered, for Names
}

// New registers retropub's series, Go and process series, and, when insp
// is not nil, asynq's queue series (x/metrics: one GetQueueInfo per queue
// per scrape).
func New(insp *asynq.Inspector) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_publishes_total",
			Help: "report:publish attempts by outcome: published, unchanged, skipped_older_revision, kept_manual_edit, deferred, rate_limited, retry, archived, needs_reauth.",
		}, []string{"outcome"}),
		setupTasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_setup_tasks_total",
			Help: "integration:test|check|search attempts by type and outcome (ok, retry, archived, …).",
		}, []string{"type", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_confluence_requests_total",
			Help: "Confluence requests sent, by instance kind (cloud, server), endpoint (method and route pattern) and status (HTTP code, or error/timeout/canceled).",
		}, []string{"kind", "endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "retropub_confluence_request_duration_seconds",
			Help:    "Time from sending a Confluence request to its answer's headers, by instance kind and endpoint.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind", "endpoint"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "retropub_breakers",
			Help: "Confluence instances whose circuit breaker in this process is in each state (closed, half_open, open).",
		}, []string{"kind", "state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_breaker_transitions_total",
			Help: "Circuit breaker state changes in this process, by instance kind and the state entered.",
		}, []string{"kind", "to"}),
		deferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_deferrals_total",
			Help: "Requests held back before sending, by instance kind and reason (cooldown, breaker_open, rate, points, inflight).",
		}, []string{"kind", "reason"}),
		points: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_points_spent_total",
			Help: "Atlassian rate-limit points spent by this process (a write costs 1, a GET 1 plus 1 per object returned).",
		}, []string{"kind"}),
		tooLarge: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_confluence_answers_too_large_total",
			Help: "Confluence answers abandoned because they passed the answer bound (a hostile or broken server), by instance kind and endpoint.",
		}, []string{"kind", "endpoint"}),
		gone: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_confluence_gone_total",
			Help: "Confluence answers 410 Gone (an endpoint Atlassian retired: the task is archived, the client needs a new release), by instance kind and endpoint.",
		}, []string{"kind", "endpoint"}),
	}
	m.out = newOutcomeSeries()
	m.mustRegister(m.out.collectors()...)
	m.mustRegister(m.publishes, m.setupTasks, m.requests, m.latency, m.breakers, m.transitions, m.deferrals, m.points, m.tooLarge, m.gone,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if insp != nil {
		m.mustRegister(asynqmetrics.NewQueueMetricsCollector(insp))
	}
	m.registerOperatorSeries()
	m.zero()
	m.zeroOutcomes()
	return m
}

// zero creates the gate series at 0, so dashboards and alerts see "none
// yet" rather than nothing (the label sets are small and fixed).
func (m *Metrics) zero() {
	for _, kind := range []string{"cloud", "server"} {
		for _, st := range []string{BreakerClosed, BreakerHalfOpen, BreakerOpen} {
			m.breakers.WithLabelValues(kind, st)
		}
		for _, r := range []string{DeferCooldown, DeferBreakerOpen, DeferRate, DeferPoints, DeferInflight} {
			m.deferrals.WithLabelValues(kind, r)
		}
	}
	m.points.WithLabelValues("cloud")
}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry the series live on (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// TaskOutcome counts one task attempt (jobs.ObserveOutcomes calls it).
func (m *Metrics) TaskOutcome(taskType, outcome string) {
	if m == nil {
		return
	}
	if taskType == "report:publish" {
		m.publishes.WithLabelValues(outcome).Inc()
		return
	}
	m.setupTasks.WithLabelValues(taskType, outcome).Inc()
}

// Observe counts one sent Confluence request; pass it to
// confluence.WithObserver.
func (m *Metrics) Observe(o confluence.Outcome) {
	if m == nil {
		return
	}
	kind, endpoint := Kind(o.Instance), o.Method+" "+o.Route
	if o.AnswerTooLarge {
		// A second report for a request already counted.
		m.tooLarge.WithLabelValues(kind, endpoint).Inc()
		return
	}
	m.requests.WithLabelValues(kind, endpoint, status(o)).Inc()
	if o.StatusCode == http.StatusGone {
		m.gone.WithLabelValues(kind, endpoint).Inc()
	}
	m.latency.WithLabelValues(kind, endpoint).Observe(o.Duration.Seconds())
}

// status is the HTTP code, or what kept an answer from coming.
func status(o confluence.Outcome) string {
	switch {
	case o.StatusCode != 0:
		return strconv.Itoa(o.StatusCode)
	case errors.Is(o.Err, context.Canceled):
		return "canceled"
	case isTimeout(o.Err):
		return "timeout"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Breaker states, as gobreaker names them (lower case, underscore).
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half_open"
	BreakerOpen     = "open"
)

// BreakerTransition records an instance's breaker moving from one state
// to another (gobreaker's OnStateChange). A new breaker starts with
// from == "" and to == BreakerClosed.
func (m *Metrics) BreakerTransition(instance, from, to string) {
	if m == nil {
		return
	}
	kind := Kind(instance)
	if from != "" {
		m.breakers.WithLabelValues(kind, breakerState(from)).Dec()
		m.transitions.WithLabelValues(kind, breakerState(to)).Inc()
	}
	m.breakers.WithLabelValues(kind, breakerState(to)).Inc()
}

// BreakerGone records a breaker dropped while in state (an idle instance
// evicted from the process's cache).
func (m *Metrics) BreakerGone(instance, state string) {
	if m == nil {
		return
	}
	m.breakers.WithLabelValues(Kind(instance), breakerState(state)).Dec()
}

// breakerState accepts gobreaker's String() forms ("half-open").
func breakerState(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }

// Deferral reasons.
const (
	DeferCooldown    = "cooldown"
	DeferBreakerOpen = "breaker_open"
	DeferRate        = "rate"
	DeferPoints      = "points"
	DeferInflight    = "inflight"
)

// Deferral counts a request a gate held back without sending it.
func (m *Metrics) Deferral(instance, reason string) {
	if m == nil {
		return
	}
	m.deferrals.WithLabelValues(Kind(instance), reason).Inc()
}

// PointsSpent adds n Atlassian rate-limit points spent on instance.
func (m *Metrics) PointsSpent(instance string, n float64) {
	if m == nil || n <= 0 {
		return
	}
	m.points.WithLabelValues(Kind(instance)).Add(n)
}

// Kind is an instance's kind, "cloud" or "server", from its name
// ("cloud:<cloudId>", "server:<host><path>"): instances are thousands,
// kinds are two, so only the kind is a label.
func Kind(instance string) string {
	kind, _, ok := strings.Cut(instance, ":")
	if !ok || (kind != "cloud" && kind != "server") {
		return "unknown"
	}
	return kind
}
