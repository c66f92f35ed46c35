package metrics

import (
	"regexp"
	"sort"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// operatorSeries are the series the alert rules in deploy/prometheus need
// that no task records: whether this worker is ready, and the points
// budget the gate enforces (so a rule compares spending with it without
// repeating the setting).
type operatorSeries struct {
	ready  atomic.Pointer[func() bool]
	budget prometheus.Gauge
}

func (m *Metrics) registerOperatorSeries() {
	m.op.budget = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "retropub_points_budget_per_hour",
		Help: "The app's hourly Atlassian Cloud points budget the gate enforces fleet-wide (ATLASSIAN_POINTS_PER_HOUR).",
	})
	m.mustRegister(m.op.budget, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "retropub_worker_ready",
		Help: "1 when this worker would answer /readyz with 200 (Redis writable, asynq server running), else 0.",
	}, func() float64 {
		if ready := m.op.ready.Load(); ready != nil && (*ready)() {
			return 1
		}
		return 0
	}))
}

// SetReadiness makes retropub_worker_ready report ready() at each scrape
// (0 until it is set). A fleet with no ready worker sums to 0.
func (m *Metrics) SetReadiness(ready func() bool) {
	if m == nil {
		return
	}
	m.op.ready.Store(&ready)
}

// SetPointsBudget records ATLASSIAN_POINTS_PER_HOUR.
func (m *Metrics) SetPointsBudget(perHour int) {
	if m == nil {
		return
	}
	m.op.budget.Set(float64(perHour))
}

// zeroOutcomes creates the final task outcomes at 0: Prometheus' increase()
// sees nothing in a series' first sample, so an alert on the first archived
// task of a process would never fire if the series began at 1.
func (m *Metrics) zeroOutcomes() {
	for _, o := range []string{"archived", "needs_reauth"} {
		m.publishes.WithLabelValues(o)
		for _, t := range []string{"integration:test", "integration:check", "integration:search"} {
			m.setupTasks.WithLabelValues(t, o)
		}
	}
}

// mustRegister registers cs and remembers them for Names.
func (m *Metrics) mustRegister(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
	m.collectors = append(m.collectors, cs...)
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Names is every series name this process can export, including those no
// sample has created yet (a Vec with no children) and a histogram's
// _bucket, _sum and _count. asynq's queue series are named only while
// Redis answers and holds a queue (they are described by collecting). The
// deploy/ tests check alert rules and dashboards against it.
func (m *Metrics) Names() []string {
	seen := map[string]bool{}
	for _, c := range m.collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			g := fqName.FindStringSubmatch(d.String())
			if g == nil {
				continue
			}
			seen[g[1]] = true
			switch c.(type) {
			case *prometheus.HistogramVec, prometheus.Histogram:
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					seen[g[1]+suffix] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
