package subscriptions

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome labels of the counters.
const (
	outcomeOK       = "ok"
	outcomeError    = "error"
	outcomeNotFound = "not_found"
)

type metrics struct {
	m                *Manager
	expiry           *prometheus.Desc
	leader           prometheus.Gauge
	creations        *prometheus.CounterVec
	renewals         *prometheus.CounterVec
	reauthorizations *prometheus.CounterVec
	lifecycle        *prometheus.CounterVec
	resyncs          *prometheus.CounterVec
	found            *prometheus.CounterVec
	queued           *prometheus.CounterVec
}

func newMetrics(m *Manager, reg prometheus.Registerer) (*metrics, error) {
	x := &metrics{
		m: m,
		expiry: prometheus.NewDesc("m2a_subscription_expiry_seconds",
			"Seconds until the mailbox's subscription expires; negative when expired, absent when there is none.",
			[]string{"mailbox"}, nil),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "m2a_subscriptions_leader",
			Help: "1 when this replica manages the subscriptions, else 0."}),
		creations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_subscription_creations_total",
			Help: "Subscription creations (first ones and recreations), by outcome."}, []string{"mailbox", "outcome"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_subscription_renewals_total",
			Help: "Subscription renewals, by outcome (not_found leads to a recreation)."}, []string{"mailbox", "outcome"}),
		reauthorizations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_subscription_reauthorizations_total",
			Help: "Subscription reauthorizations, by outcome."}, []string{"mailbox", "outcome"}),
		lifecycle: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_subscription_lifecycle_events_total",
			Help: "Lifecycle events acted on, by event."}, []string{"mailbox", "event"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_resyncs_total",
			Help: "Delta resync rounds, by outcome."}, []string{"mailbox", "outcome"}),
		found: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_resync_messages_found_total",
			Help: "Messages seen by resyncs."}, []string{"mailbox"}),
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "m2a_resync_messages_queued_total",
			Help: "Messages resyncs queued that were not queued before (missed by notifications)."}, []string{"mailbox"}),
	}
	if reg == nil {
		return x, nil
	}
	for _, c := range []prometheus.Collector{x, x.leader, x.creations, x.renewals, x.reauthorizations,
		x.lifecycle, x.resyncs, x.found, x.queued} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register subscription metrics: %w (one Manager per registry)", err)
			}
			return nil, fmt.Errorf("register subscription metrics: %w", err)
		}
	}
	return x, nil
}

// Describe and Collect report the seconds to expiry at scrape time.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- x.expiry }

// Collect reports each mailbox's seconds to expiry.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, s := range x.m.Status() {
		if s.SubscriptionID == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(x.expiry, prometheus.GaugeValue, float64(s.SecondsToExpiry), s.Mailbox)
	}
}
