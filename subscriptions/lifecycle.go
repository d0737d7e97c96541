package subscriptions

import (
	"context"
	"errors"
	"fmt"
)

// Lifecycle events Graph sends for mail subscriptions.
const (
	EventReauthorizationRequired = "reauthorizationRequired"
	EventSubscriptionRemoved     = "subscriptionRemoved"
	EventMissed                  = "missed"
)

// HandleLifecycle acts on a lifecycle event Graph sent for a subscription,
// after the caller checked its clientState: reauthorizationRequired
// reauthorizes it (unless it was renewed or reauthorized in the last 10
// minutes), subscriptionRemoved creates a new one and resyncs, missed
// resyncs. Events for a subscription that is not the current one of a
// configured mailbox, and unknown events, are logged and ignored. It returns
// ErrNotLeader on a replica that does not hold the lease or has not finished
// its start-up reconcile, and any other error when the action failed and
// should be retried.
func (m *Manager) HandleLifecycle(ctx context.Context, subscriptionID, event string) error {
	ctx, done, err := m.actionContext(ctx)
	if err != nil {
		return err
	}
	defer done()
	mb, ok := m.mailboxOf(subscriptionID)
	if !ok {
		m.log.Info().Str("subscription_id", subscriptionID).Str("event", event).
			Msg("lifecycle event for a subscription that is not current; ignored")
		return nil
	}
	lock := m.locks[mb]
	lock.Lock()
	defer lock.Unlock()
	defer m.wake()
	// The subscription may have been replaced while waiting for the lock.
	if m.snapshot(mb).sub.ID != subscriptionID {
		return nil
	}
	log := m.log.With().Str("mailbox", mb).Str("subscription_id", subscriptionID).Str("event", event).Logger()
	switch event {
	case EventReauthorizationRequired:
		return m.reauthorizeLocked(ctx, mb)
	case EventSubscriptionRemoved:
		log.Warn().Msg("Graph removed the subscription; creating a new one and resyncing")
		m.metrics.lifecycle.WithLabelValues(mb, event).Inc()
		return m.replaceLocked(ctx, mb, "removed by Graph")
	case EventMissed:
		log.Warn().Msg("Graph missed notifications; resyncing")
		m.metrics.lifecycle.WithLabelValues(mb, event).Inc()
		_, err := m.resyncLocked(ctx, mb)
		return err
	default:
		log.Warn().Msg("unknown lifecycle event ignored")
		return nil
	}
}

// reauthorizeLocked answers reauthorizationRequired; the mailbox lock is
// held.
func (m *Manager) reauthorizeLocked(ctx context.Context, mb string) error {
	m.metrics.lifecycle.WithLabelValues(mb, EventReauthorizationRequired).Inc()
	now := m.clock.Now()
	st := m.snapshot(mb)
	if !st.lastTouch.IsZero() && now.Sub(st.lastTouch) < ReauthorizeGap {
		m.log.Debug().Str("mailbox", mb).Str("subscription_id", st.sub.ID).
			Msg("reauthorization skipped: the subscription was renewed or reauthorized less than 10 minutes ago")
		return nil
	}
	err := m.graph.ReauthorizeSubscription(ctx, st.sub.ID)
	if errors.Is(err, ErrNotFound) {
		m.metrics.reauthorizations.WithLabelValues(mb, outcomeNotFound).Inc()
		m.log.Warn().Str("mailbox", mb).Str("subscription_id", st.sub.ID).
			Msg("Graph no longer knows the subscription; creating a new one")
		return m.replaceLocked(ctx, mb, "not found on reauthorization")
	}
	if err != nil {
		m.metrics.reauthorizations.WithLabelValues(mb, outcomeError).Inc()
		err = fmt.Errorf("reauthorize subscription %s of %s: %w", st.sub.ID, mb, err)
		m.update(mb, func(st *mailboxState) { st.subErr = err })
		m.log.Error().Err(err).Str("mailbox", mb).
			Msg("cannot reauthorize the subscription; Graph pauses delivery until it is; check the application's Mail.Read permission")
		return err
	}
	m.update(mb, func(st *mailboxState) {
		st.lastTouch = now
		st.subErr = nil
		// A renewal is a reauthorizing call too: keep it 10 minutes away.
		if st.nextRenew.Before(now.Add(ReauthorizeGap)) {
			st.nextRenew = now.Add(ReauthorizeGap)
		}
	})
	m.metrics.reauthorizations.WithLabelValues(mb, outcomeOK).Inc()
	m.log.Info().Str("mailbox", mb).Str("subscription_id", st.sub.ID).Msg("subscription reauthorized")
	return nil
}
