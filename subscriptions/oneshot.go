package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The operations in this file act once and return. They suit a process that
// inspects or repairs the subscriptions of a deployment whose service may be
// running or stopped: none of them needs Run.

// Listed is one subscription of the application as Graph lists it, joined
// with what the store knows of it.
type Listed struct {
	Subscription
	// Mailbox and Folder are the watched folder: from the store when the
	// secret is held, else parsed from Resource.
	Mailbox, Folder string
	// SecretHeld is true when the store holds its clientState: its
	// notifications are accepted.
	SecretHeld bool
	// Ours is true when the secret is held or it notifies this deployment's
	// URL; other subscriptions belong to another deployment of the same
	// application and are never touched.
	Ours bool
	// Configured is true when it watches a configured mailbox folder.
	Configured bool
}

// Managed reports whether this deployment keeps the subscription alive:
// it is this deployment's, its secret is stored and it watches a
// configured folder. A subscription that is this deployment's but not
// managed is deleted or replaced at the next start.
func (l Listed) Managed() bool { return l.Ours && l.SecretHeld && l.Configured }

// List returns the application's subscriptions as Graph lists them, each
// with what the store knows of it and whether this deployment manages it.
// It makes no change and needs no lease.
func (m *Manager) List(ctx context.Context) ([]Listed, error) {
	listed, err := m.graph.ListSubscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	stored, err := m.store.Subscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stored subscriptions: %w", err)
	}
	held := map[string]Record{}
	for _, r := range stored {
		held[r.ID] = r
	}
	out := make([]Listed, 0, len(listed))
	for _, s := range listed {
		l := Listed{Subscription: s}
		if r, ok := held[s.ID]; ok {
			l.Mailbox, l.Folder, l.SecretHeld = r.Mailbox, r.Folder, true
		} else {
			l.Mailbox, l.Folder, _ = parseResource(s.Resource)
		}
		l.Ours = l.SecretHeld || s.NotificationURL == m.cfg.NotificationURL
		_, cfgd := m.configured(l.Mailbox)
		l.Configured = cfgd && strings.EqualFold(l.Folder, m.cfg.Folder)
		out = append(out, l)
	}
	return out, nil
}

// Delete deletes the subscription id in Graph (a subscription Graph no
// longer knows is no error) and forgets its secret. A running leader notices
// at the next renewal and creates a new one; to stop watching a mailbox,
// remove it from the configuration instead.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("delete subscription: empty id")
	}
	if err := m.graph.DeleteSubscription(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if err := m.store.DeleteSubscription(ctx, id); err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}

// ReconcileReport says what ReconcileOnce did.
type ReconcileReport struct {
	// Managed is true when ReconcileOnce held the lease and so also
	// reconciled and created subscriptions; false when another Manager (a
	// running service) holds it and only the resyncs ran.
	Managed bool
	// Queued is the number of newly queued messages per mailbox.
	Queued map[string]int
}

// ReconcileOnce does one round of Run's work and returns. When no other
// Manager holds the lease, it takes it, reconciles Graph with the
// configuration as a start does, creates the missing subscriptions and
// resyncs every mailbox, then releases the lease. When another Manager
// holds it (a running service), it only resyncs every mailbox, which is
// safe beside that leader. Failures of single mailboxes are joined in the
// error; the report says what was done meanwhile. It returns ErrRunning
// while Run runs on the same Manager.
func (m *Manager) ReconcileOnce(ctx context.Context) (ReconcileReport, error) {
	if !m.running.CompareAndSwap(false, true) {
		return ReconcileReport{}, ErrRunning
	}
	defer m.running.Store(false)
	rep := ReconcileReport{Queued: map[string]int{}}
	ok, err := m.store.TryAcquireLease(ctx, LeaseName, m.cfg.Holder, m.clock.Now(), m.cfg.LeaseTTL)
	if err != nil {
		return rep, fmt.Errorf("reconcile subscriptions: %w", err)
	}
	var errs []error
	if ok {
		rep.Managed = true
		m.stepUp(ctx, m.clock.Now())
		defer m.stepDown(true)
		if lctx := m.leaderContext(); lctx != nil {
			ctx = lctx // cancelled if the lease is lost meanwhile
		}
		if err := m.reconcile(ctx); err != nil {
			return rep, fmt.Errorf("reconcile subscriptions: %w", err)
		}
		m.mu.Lock()
		m.reconciled = true
		m.mu.Unlock()
		for _, mb := range m.cfg.Mailboxes {
			lock := m.locks[mb]
			lock.Lock()
			if m.snapshot(mb).sub.ID == "" {
				// Creating resyncs too.
				if err := m.createLocked(ctx, mb, "reconcile once"); err != nil {
					errs = append(errs, err)
				} else {
					rep.Queued[mb] = m.snapshot(mb).lastQueued
				}
			} else {
				n, err := m.resyncLocked(ctx, mb)
				rep.Queued[mb] = n
				if err != nil {
					errs = append(errs, err)
				}
			}
			lock.Unlock()
		}
	} else {
		for _, mb := range m.cfg.Mailboxes {
			n, err := m.Resync(ctx, mb)
			rep.Queued[mb] = n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return rep, errors.Join(errs...)
}
