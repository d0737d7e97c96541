package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

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

// List returns the application's subscriptions as Graph lists them, with
// what the store knows. It makes no change and needs no lease.
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

// SyncReport says what SyncOnce did.
type SyncReport struct {
	// Managed is true when SyncOnce held the lease and so also reconciled
	// and created subscriptions; false when a running service holds it and
	// only the resyncs ran.
	Managed bool
	// Queued is the number of newly queued messages per mailbox.
	Queued map[string]int
}

// SyncOnce does one pass of Run's work for a command-line tool: when it can
// take the lease (no service is managing the subscriptions) it reconciles,
// creates missing subscriptions and resyncs every mailbox, then releases the
// lease; otherwise it only resyncs, which is safe beside a running leader.
// It returns ErrRunning while Run runs on the same Manager.
func (m *Manager) SyncOnce(ctx context.Context) (SyncReport, error) {
	if !m.running.CompareAndSwap(false, true) {
		return SyncReport{}, ErrRunning
	}
	defer m.running.Store(false)
	rep := SyncReport{Queued: map[string]int{}}
	ok, err := m.store.TryAcquireLease(ctx, LeaseName, m.cfg.Holder, m.clock.Now(), m.cfg.LeaseTTL)
	if err != nil {
		return rep, fmt.Errorf("sync: %w", err)
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
			return rep, fmt.Errorf("sync: %w", err)
		}
		m.mu.Lock()
		m.reconciled = true
		m.mu.Unlock()
		for _, mb := range m.cfg.Mailboxes {
			lock := m.locks[mb]
			lock.Lock()
			if m.snapshot(mb).sub.ID == "" {
				// Creating resyncs too.
				if err := m.createLocked(ctx, mb, "sync"); err != nil {
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

// WriteList prints list as a table for the command line, one subscription
// per line, with the time left before expiry counted from now. Secrets are
// never printed.
func WriteList(w io.Writer, list []Listed, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMAILBOX\tFOLDER\tEXPIRES\tLEFT\tSTATE")
	for _, l := range list {
		state := "other deployment"
		switch {
		case l.Ours && l.SecretHeld && l.Configured:
			state = "managed"
		case l.Ours && !l.Configured:
			state = "not configured (deleted at next start)"
		case l.Ours:
			state = "secret unknown (replaced at next start)"
		}
		left := l.ExpiresAt.Sub(now).Truncate(time.Minute)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(l.ID), printable(l.Mailbox), printable(l.Folder),
			l.ExpiresAt.UTC().Format(time.RFC3339), left, state)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write subscription list: %w", err)
	}
	return nil
}

// printable keeps a value Graph returned from breaking the table or the
// terminal: control characters become '?', and it is cut at 200 bytes.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\t' {
			return '?'
		}
		return r
	}, s)
}
