package app

import (
	"math"

	"github.com/mail2archer/mail2archer/internal/metrics"
	"github.com/mail2archer/mail2archer/internal/server"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// subscriptionEvents turns the manager's events into its metrics, and makes
// the webhook's subscription index reload after a creation, so that the new
// subscription's first notifications find its secret:
//
//	m2a_subscription_creations_total{mailbox,outcome}
//	m2a_subscription_renewals_total{mailbox,outcome}
//	m2a_subscription_reauthorizations_total{mailbox,outcome}
//	m2a_subscription_lifecycle_events_total{mailbox,event}
//	m2a_resyncs_total{mailbox,outcome}
//	m2a_resync_messages_found_total{mailbox}
//	m2a_resync_messages_queued_total{mailbox}   messages a resync queued that notifications had missed
//	m2a_subscriptions_leader                    1 on the replica that manages the subscriptions
func subscriptionEvents(set *metrics.Set, index *server.SubscriptionIndex) func(subscriptions.Event) {
	return func(e subscriptions.Event) {
		outcome := string(e.Outcome)
		switch e.Kind {
		case subscriptions.KindCreate:
			set.Counter("m2a_subscription_creations_total", "mailbox", e.Mailbox, "outcome", outcome).Inc()
			if e.Outcome == subscriptions.OutcomeOK {
				index.Invalidate()
			}
		case subscriptions.KindRenew:
			set.Counter("m2a_subscription_renewals_total", "mailbox", e.Mailbox, "outcome", outcome).Inc()
		case subscriptions.KindReauthorize:
			set.Counter("m2a_subscription_reauthorizations_total", "mailbox", e.Mailbox, "outcome", outcome).Inc()
		case subscriptions.KindLifecycle:
			set.Counter("m2a_subscription_lifecycle_events_total", "mailbox", e.Mailbox, "event", e.LifecycleEvent).Inc()
		case subscriptions.KindResync:
			set.Counter("m2a_resyncs_total", "mailbox", e.Mailbox, "outcome", outcome).Inc()
			set.Counter("m2a_resync_messages_found_total", "mailbox", e.Mailbox).Add(e.Found)
			set.Counter("m2a_resync_messages_queued_total", "mailbox", e.Mailbox).Add(e.Queued)
		case subscriptions.KindLeadership:
			v := 0.0
			if e.Leader {
				v = 1
			}
			set.Gauge("m2a_subscriptions_leader").Set(v)
		}
	}
}

// registerSubscriptionExpiry adds m2a_subscription_expiry_seconds{mailbox},
// the seconds until each mailbox's subscription expires (negative once
// expired, NaN when there is none), read from the manager at scrape time.
func registerSubscriptionExpiry(set *metrics.Set, m *subscriptions.Manager) {
	for _, s := range m.Status() {
		mailbox := s.Mailbox
		set.GaugeFunc("m2a_subscription_expiry_seconds", func() float64 {
			for _, s := range m.Status() {
				if s.Mailbox == mailbox && s.SubscriptionID != "" {
					return float64(s.SecondsToExpiry)
				}
			}
			return math.NaN()
		}, "mailbox", mailbox)
	}
	set.Gauge("m2a_subscriptions_leader").Set(0)
}
