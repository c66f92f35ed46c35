package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// outcomeSeries are the series of DESIGN §10: outcome events, parked
// publishes, webhook deliveries.
type outcomeSeries struct {
	events     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	parked     *prometheus.GaugeVec
	oldest     prometheus.Gauge
}

func newOutcomeSeries() outcomeSeries {
	return outcomeSeries{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_outcome_events_total",
			Help: "Outcome events written to retropub:outcomes by this process, by type (report.published, report.parked, integration.needs_reauth, …).",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retropub_webhook_deliveries_total",
			Help: "Outcome webhook delivery attempts by this process, by result (delivered, failed, expired: retried for OUTCOME_WEBHOOK_MAX_AGE and given up).",
		}, []string{"result"}),
		parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "retropub_parked_reports",
			Help: "Publishes parked until a person acts, fleet-wide, by reason (needs_reauth, blocked, permanent).",
		}, []string{"reason"}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "retropub_webhook_oldest_undelivered_seconds",
			Help: "Age of the oldest outcome event not yet delivered to OUTCOME_WEBHOOK_URL (0: none waiting), as this process last measured it.",
		}),
	}
}

func (s outcomeSeries) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.events, s.deliveries, s.parked, s.oldest}
}

// OutcomeEvent counts one outcome event written.
func (m *Metrics) OutcomeEvent(eventType string) {
	if m == nil {
		return
	}
	m.out.events.WithLabelValues(eventType).Inc()
}

// WebhookDelivery counts one delivery attempt's result.
func (m *Metrics) WebhookDelivery(result string) {
	if m == nil {
		return
	}
	m.out.deliveries.WithLabelValues(result).Inc()
}

// OldestUndelivered sets the age of the oldest undelivered event.
func (m *Metrics) OldestUndelivered(age time.Duration) {
	if m == nil {
		return
	}
	m.out.oldest.Set(max(age, 0).Seconds())
}

// WatchParked keeps the parked gauge current from count (fleet-wide
// numbers read from Redis) every interval until ctx ends.
func (m *Metrics) WatchParked(ctx context.Context, interval time.Duration, count func(context.Context) (map[string]int64, error)) {
	if m == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if byReason, err := count(ctx); err == nil {
			m.out.parked.Reset()
			for reason, n := range byReason {
				m.out.parked.WithLabelValues(reason).Set(float64(n))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
