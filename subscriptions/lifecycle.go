package subscriptions

import (
	"context"
	"errors"
	"fmt"
)

// The lifecycle events Graph sends for mail subscriptions, as they appear
// in a lifecycle notification's lifecycleEvent field.
const (
	// EventReauthorizationRequired: Graph pauses delivery soon unless the
	// subscription is reauthorized (or renewed).
	EventReauthorizationRequired = "reauthorizationRequired"
	// EventSubscriptionRemoved: Graph removed the subscription; no more
	// notifications come until a new one is created.
	EventSubscriptionRemoved = "subscriptionRemoved"
	// EventMissed: Graph could not deliver some notifications; the folder
	// must be resynced to find their messages.
	EventMissed = "missed"
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
		m.log.Info("lifecycle event for a subscription that is not current; ignored",
			"subscription_id", subscriptionID, "event", event)
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
	log := m.log.With("mailbox", mb, "subscription_id", subscriptionID, "event", event)
	switch event {
	case EventReauthorizationRequired:
		return m.reauthorizeLocked(ctx, mb)
	case EventSubscriptionRemoved:
		log.Warn("Graph removed the subscription; creating a new one and resyncing")
		m.emit(Event{Kind: KindLifecycle, Mailbox: mb, LifecycleEvent: event})
		return m.replaceLocked(ctx, mb, "removed by Graph")
	case EventMissed:
		log.Warn("Graph missed notifications; resyncing")
		m.emit(Event{Kind: KindLifecycle, Mailbox: mb, LifecycleEvent: event})
		_, err := m.resyncLocked(ctx, mb)
		return err
	default:
		log.Warn("unknown lifecycle event ignored")
		return nil
	}
}

// reauthorizeLocked answers reauthorizationRequired; the mailbox lock is
// held.
func (m *Manager) reauthorizeLocked(ctx context.Context, mb string) error {
	m.emit(Event{Kind: KindLifecycle, Mailbox: mb, LifecycleEvent: EventReauthorizationRequired})
	now := m.clock.Now()
	st := m.snapshot(mb)
	if !st.lastTouch.IsZero() && now.Sub(st.lastTouch) < ReauthorizeGap {
		m.log.Debug("reauthorization skipped: the subscription was renewed or reauthorized less than 10 minutes ago",
			"mailbox", mb, "subscription_id", st.sub.ID)
		return nil
	}
	err := m.graph.ReauthorizeSubscription(ctx, st.sub.ID)
	if errors.Is(err, ErrNotFound) {
		m.emit(Event{Kind: KindReauthorize, Mailbox: mb, Outcome: OutcomeNotFound})
		m.log.Warn("Graph no longer knows the subscription; creating a new one",
			"mailbox", mb, "subscription_id", st.sub.ID)
		return m.replaceLocked(ctx, mb, "not found on reauthorization")
	}
	if err != nil {
		m.emit(Event{Kind: KindReauthorize, Mailbox: mb, Outcome: OutcomeError})
		err = fmt.Errorf("reauthorize subscription %s of %s: %w", st.sub.ID, mb, err)
		m.update(mb, func(st *mailboxState) { st.subErr = err })
		m.log.Error("cannot reauthorize the subscription; Graph pauses delivery until it is; check the application's Mail.Read permission",
			"error", err, "mailbox", mb)
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
	m.emit(Event{Kind: KindReauthorize, Mailbox: mb, Outcome: OutcomeOK})
	m.log.Info("subscription reauthorized", "mailbox", mb, "subscription_id", st.sub.ID)
	return nil
}
