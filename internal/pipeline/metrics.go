package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the workers' Prometheus metrics.
type Metrics struct {
	latency    prometheus.Histogram
	outcomes   *prometheus.CounterVec
	writeBacks *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg when it is not
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "m2a_processing_seconds",
			Help:    "Time from a notification's arrival (job creation) to its Archer record being stored.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 900, 3600},
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_jobs_outcomes_total",
			Help: "Message job attempts by outcome (created, adopted, already_done, throttled, message_gone, archer_validation, …).",
		}, []string{"outcome"}),
		writeBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_writebacks_total",
			Help: "Mailbox write-backs by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.outcomes, m.writeBacks)
	}
	return m
}

func (m *Metrics) outcome(reason string) { m.outcomes.WithLabelValues(reason).Inc() }
