package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received   *prometheus.CounterVec
	accepted   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	handshakes *prometheus.CounterVec
	ackSeconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_notifications_received_total",
			Help: "Notification items received from Microsoft Graph, by endpoint.",
		}, []string{"endpoint"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_notifications_accepted_total",
			Help: "Notification items that passed every check and were queued (duplicates included).",
		}, []string{"endpoint"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_notifications_duplicate_total",
			Help: "Accepted notification items whose job already existed.",
		}, []string{"endpoint"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_notifications_dropped_total",
			Help: "Notification items dropped, by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "m2a_validation_handshakes_total",
			Help: "Graph validation handshakes answered, by endpoint.",
		}, []string{"endpoint"}),
		ackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "m2a_webhook_ack_seconds",
			Help:    "Time from receiving a notification POST to answering it, by endpoint and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 3, 10},
		}, []string{"endpoint", "status"}),
	}
	for _, c := range []prometheus.Collector{m.received, m.accepted, m.duplicates, m.dropped, m.handshakes, m.ackSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register server metrics: %w", err)
		}
	}
	return m, nil
}
