package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// createHint tells an operator what to check when Graph refuses a
// subscription; most often its validation handshake could not reach us.
const createHint = "check that the notification and lifecycle URLs are this service's public HTTPS address " +
	"(right host name, valid certificate), that the reverse proxy forwards both webhook paths to it " +
	"and answers Graph's validation request within 10 seconds, and that the application has the " +
	"Mail.Read application permission with admin consent"

// createLocked creates the mailbox's subscription, stores its secret, drops
// the one it replaces and resyncs the folder. The mailbox lock is held.
func (m *Manager) createLocked(ctx context.Context, mb, reason string) error {
	now := m.clock.Now()
	secret, err := m.newClientState()
	if err != nil {
		return m.createFailed(ctx, mb, now, err)
	}
	sub, err := m.graph.CreateSubscription(ctx, Request{
		Mailbox:                  mb,
		Folder:                   m.cfg.Folder,
		NotificationURL:          m.cfg.NotificationURL,
		LifecycleNotificationURL: m.cfg.LifecycleURL,
		ClientState:              secret,
		ExpiresAt:                now.Add(m.cfg.MaxLifetime),
	})
	if err != nil {
		return m.createFailed(ctx, mb, now, fmt.Errorf("create subscription for %s/%s: %w", mb, m.cfg.Folder, err))
	}
	if sub.ID == "" {
		return m.createFailed(ctx, mb, now, fmt.Errorf("create subscription for %s/%s: Graph returned no id", mb, m.cfg.Folder))
	}
	exp := sub.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(m.cfg.MaxLifetime)
	}
	rec := Record{ID: sub.ID, Mailbox: mb, Folder: m.cfg.Folder, ClientState: secret, ExpiresAt: exp}
	if err := m.store.SaveSubscription(ctx, rec); err != nil {
		// Without its secret stored, every notification would be dropped:
		// take the subscription back and try again later.
		if derr := m.graph.DeleteSubscription(context.WithoutCancel(ctx), sub.ID); derr != nil && !errors.Is(derr, ErrNotFound) {
			m.log.Warn("could not delete a subscription whose secret was not stored; it is replaced at the next start",
				"error", derr, "subscription_id", sub.ID)
		}
		return m.createFailed(ctx, mb, now, fmt.Errorf("store subscription %s: %w", sub.ID, err))
	}
	old := m.snapshot(mb).sub
	m.update(mb, func(st *mailboxState) {
		st.sub = rec
		st.lastTouch = now
		st.nextRenew = m.renewAt(now, exp)
		st.createFailures, st.renewFailures = 0, 0
		st.subErr = nil
	})
	if old.ID != "" && old.ID != rec.ID {
		if err := m.store.DeleteSubscription(ctx, old.ID); err != nil {
			m.log.Warn("could not forget the replaced subscription", "error", err, "subscription_id", old.ID)
		}
	}
	m.emit(Event{Kind: KindCreate, Mailbox: mb, Outcome: OutcomeOK})
	m.log.Info("subscription created", "mailbox", mb, "subscription_id", rec.ID, "reason", reason, "expires_at", exp)
	// Mail that arrived while no subscription existed, or before the secret
	// was stored, is found by a resync.
	_, _ = m.resyncLocked(ctx, mb)
	return nil
}

func (m *Manager) createFailed(ctx context.Context, mb string, now time.Time, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var failures int
	var changed bool
	var next time.Time
	m.update(mb, func(st *mailboxState) {
		st.createFailures++
		failures = st.createFailures
		next = now.Add(m.backoff(failures))
		st.nextCreate = next
		changed = st.subErr == nil || st.subErr.Error() != err.Error()
		st.subErr = err
	})
	m.emit(Event{Kind: KindCreate, Mailbox: mb, Outcome: OutcomeError})
	level := slog.LevelWarn
	if changed {
		level = slog.LevelError
	}
	m.log.Log(ctx, level, "cannot create the Graph subscription, so no mail is announced; "+createHint,
		"error", err, "mailbox", mb, "attempt", failures, "retry_at", next,
		"notification_url", m.cfg.NotificationURL, "lifecycle_url", m.cfg.LifecycleURL)
	return err
}

// renewLocked extends the mailbox's subscription, or creates a new one when
// Graph no longer knows it. The mailbox lock is held.
func (m *Manager) renewLocked(ctx context.Context, mb string) error {
	now := m.clock.Now()
	st := m.snapshot(mb)
	if gap := st.lastTouch.Add(ReauthorizeGap); now.Before(gap) {
		// Graph asks for at most one reauthorizing call per 10 minutes.
		m.update(mb, func(st *mailboxState) { st.nextRenew = gap })
		return nil
	}
	if !now.Before(st.sub.ExpiresAt) {
		m.log.Warn("subscription expired before it was renewed; creating a new one",
			"mailbox", mb, "subscription_id", st.sub.ID, "expired_at", st.sub.ExpiresAt)
		return m.replaceLocked(ctx, mb, "expired")
	}
	sub, err := m.graph.RenewSubscription(ctx, st.sub.ID, now.Add(m.cfg.MaxLifetime))
	if errors.Is(err, ErrNotFound) {
		m.emit(Event{Kind: KindRenew, Mailbox: mb, Outcome: OutcomeNotFound})
		m.log.Warn("Graph no longer knows the subscription; creating a new one",
			"mailbox", mb, "subscription_id", st.sub.ID)
		return m.replaceLocked(ctx, mb, "not found on renewal")
	}
	if err != nil {
		err = fmt.Errorf("renew subscription %s of %s: %w", st.sub.ID, mb, err)
		if ctx.Err() != nil {
			return err
		}
		var failures int
		var changed bool
		m.update(mb, func(st *mailboxState) {
			st.renewFailures++
			failures = st.renewFailures
			st.nextRenew = now.Add(m.backoff(failures))
			changed = st.subErr == nil || st.subErr.Error() != err.Error()
			st.subErr = err
		})
		m.emit(Event{Kind: KindRenew, Mailbox: mb, Outcome: OutcomeError})
		if changed {
			m.log.Error("cannot renew the subscription; retrying with backoff until it expires",
				"error", err, "mailbox", mb, "expires_at", st.sub.ExpiresAt)
		}
		return err
	}
	exp := sub.ExpiresAt
	if exp.IsZero() {
		exp = now.Add(m.cfg.MaxLifetime)
	}
	rec := st.sub
	rec.ExpiresAt = exp
	if err := m.store.SaveSubscription(ctx, rec); err != nil {
		m.log.Warn("renewed, but could not store the new expiry", "error", err, "subscription_id", rec.ID)
	}
	m.update(mb, func(st *mailboxState) {
		st.sub = rec
		st.lastTouch = now
		st.nextRenew = m.renewAt(now, exp)
		st.renewFailures = 0
		st.subErr = nil
	})
	m.emit(Event{Kind: KindRenew, Mailbox: mb, Outcome: OutcomeOK})
	m.log.Debug("subscription renewed", "mailbox", mb, "subscription_id", rec.ID, "expires_at", exp)
	return nil
}

// replaceLocked forgets the mailbox's subscription (deleting it in Graph
// when it still exists) and creates a new one.
func (m *Manager) replaceLocked(ctx context.Context, mb, reason string) error {
	old := m.snapshot(mb).sub
	if old.ID != "" {
		if err := m.graph.DeleteSubscription(ctx, old.ID); err != nil && !errors.Is(err, ErrNotFound) {
			m.log.Warn("could not delete the replaced subscription", "error", err, "subscription_id", old.ID)
		}
		if err := m.store.DeleteSubscription(ctx, old.ID); err != nil {
			m.log.Warn("could not forget the replaced subscription", "error", err, "subscription_id", old.ID)
		}
	}
	m.update(mb, func(st *mailboxState) {
		st.sub = Record{}
		st.nextCreate = time.Time{}
		st.createFailures = 0
	})
	return m.createLocked(ctx, mb, reason)
}

// resourcePattern matches users/{mailbox}/mailFolders('{folder}')/messages
// and users/{mailbox}/mailFolders/{folder}/messages, without case.
var resourcePattern = regexp.MustCompile(`(?i)^/?users/([^/]+)/mailfolders(?:\('([^']+)'\)|/([^/]+))/messages$`)

// parseResource returns the mailbox and folder of a mail folder resource.
func parseResource(resource string) (mailbox, folder string, ok bool) {
	sm := resourcePattern.FindStringSubmatch(resource)
	if sm == nil {
		return "", "", false
	}
	folder = sm[2]
	if folder == "" {
		folder = sm[3]
	}
	return sm[1], folder, true
}

// reconcile makes Graph match the configuration at start: it deletes this
// deployment's subscriptions for mailboxes no longer configured, keeps one
// subscription per configured mailbox whose secret is stored, deletes the
// rest (they are replaced), and forgets stored subscriptions Graph no longer
// has. A subscription is this deployment's when its secret is stored or it
// notifies this deployment's URL; others of the same application (another
// deployment) are left alone.
func (m *Manager) reconcile(ctx context.Context) error {
	listed, err := m.graph.ListSubscriptions(ctx)
	if err != nil {
		return fmt.Errorf("list subscriptions: %w", err)
	}
	stored, err := m.store.Subscriptions(ctx)
	if err != nil {
		return fmt.Errorf("read stored subscriptions: %w", err)
	}
	held := map[string]Record{}
	for _, r := range stored {
		held[r.ID] = r
	}
	now := m.clock.Now()
	kept := map[string]Record{}
	live := map[string]bool{}
	lost := map[string]string{} // mailbox → the subscription whose secret the store lacks
	var errs []error
	for _, s := range listed {
		rec, isHeld := held[s.ID]
		if !isHeld && s.NotificationURL != m.cfg.NotificationURL {
			m.log.Debug("subscription of another deployment left alone", "subscription_id", s.ID, "resource", s.Resource)
			continue
		}
		mailbox, folder := rec.Mailbox, rec.Folder
		if !isHeld {
			mailbox, folder, _ = parseResource(s.Resource)
		}
		mb, configured := m.configured(mailbox)
		configured = configured && strings.EqualFold(folder, m.cfg.Folder)
		var reason string
		switch {
		case !configured:
			reason = "mailbox or folder no longer configured"
		case !isHeld:
			reason = "its clientState secret is not stored"
			lost[mb] = s.ID
		case s.NotificationURL != m.cfg.NotificationURL || s.LifecycleNotificationURL != m.cfg.LifecycleURL:
			reason = "its notification or lifecycle URL changed"
		case !hasCreated(s.ChangeType):
			reason = "it does not ask for created messages"
		case !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt):
			reason = "it expired"
		case kept[mb].ID != "":
			reason = "the mailbox already has one"
		default:
			if !s.ExpiresAt.IsZero() && s.ExpiresAt.After(rec.ExpiresAt.Add(time.Minute)) && !rec.ExpiresAt.IsZero() {
				// Graph knows a renewal the store does not: the database
				// is older than it should be (restored from a backup, or
				// its last commits lost). The delta link it holds is as
				// old, so the next resync queues every message since;
				// records that exist are found in Archer and adopted.
				m.log.Warn("the state database is older than Graph's subscription (restored from a backup?); resyncing from its delta link, nothing is created twice",
					"mailbox", mb, "subscription_id", s.ID, "stored_expiry", rec.ExpiresAt, "graph_expiry", s.ExpiresAt)
			}
			if !s.ExpiresAt.IsZero() {
				rec.ExpiresAt = s.ExpiresAt
			}
			rec.Mailbox = mb
			kept[mb] = rec
			live[s.ID] = true
			continue
		}
		if err := m.graph.DeleteSubscription(ctx, s.ID); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete subscription %s: %w", s.ID, err))
			live[s.ID] = true // still exists: keep its secret for its notifications
			continue
		}
		m.log.Info("subscription deleted at start", "subscription_id", s.ID, "resource", s.Resource, "reason", reason)
	}
	for _, r := range stored {
		if !live[r.ID] {
			if err := m.store.DeleteSubscription(ctx, r.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for mb, id := range lost {
		if err := m.recoverLostState(ctx, mb, id, now); err != nil {
			return err
		}
	}
	m.mu.Lock()
	for _, mb := range m.cfg.Mailboxes {
		st := m.states[mb]
		st.sub = kept[mb]
		st.createFailures, st.renewFailures = 0, 0
		st.nextCreate = time.Time{}
		st.nextResync = time.Time{}
		if st.sub.ID != "" {
			st.nextRenew = m.renewAt(now, st.sub.ExpiresAt)
			// Whoever held the lease before may have just renewed it.
			st.lastTouch = time.Time{}
		}
	}
	m.mu.Unlock()
	for _, rec := range kept {
		if err := m.store.SaveSubscription(ctx, rec); err != nil {
			return err
		}
		m.log.Info("subscription kept", "mailbox", rec.Mailbox, "subscription_id", rec.ID, "expires_at", rec.ExpiresAt)
	}
	return nil
}

func hasCreated(changeType string) bool {
	for _, ct := range strings.Split(changeType, ",") {
		if strings.EqualFold(strings.TrimSpace(ct), "created") {
			return true
		}
	}
	return false
}

// recoverLostState handles a configured mailbox whose subscription Graph
// still holds but whose clientState secret the store lacks: the database is
// new while this deployment ran before (deleted, lost, or replaced). The
// subscription was replaced above; here the mailbox's first resync is
// bounded by the full resync window instead of "now", so that every email
// acknowledged before the loss and not yet processed is queued again.
// Emails that already have an incident are found in Archer by their key and
// adopted, not created twice. It is said loudly, once, and shown in the
// readiness summary.
func (m *Manager) recoverLostState(ctx context.Context, mb, subID string, now time.Time) error {
	since := now.Add(-m.cfg.FullResyncWindow)
	if !m.cfg.InitialSyncSince.IsZero() && m.cfg.InitialSyncSince.After(since) {
		since = m.cfg.InitialSyncSince
	}
	link, err := m.store.DeltaLink(ctx, mb, m.cfg.Folder)
	if err != nil {
		return fmt.Errorf("recover %s: %w", mb, err)
	}
	if link == "" {
		got, err := m.store.SetOnce(ctx, firstSeenKey(mb, m.cfg.Folder), since.UTC().Format(time.RFC3339Nano))
		if err != nil {
			return fmt.Errorf("recover %s: first-seen time: %w", mb, err)
		}
		if t, err := time.Parse(time.RFC3339Nano, got); err == nil {
			since = t
		}
	}
	m.update(mb, func(st *mailboxState) { st.recoveredAt, st.recoveredSince = now, since })
	m.log.Error("the state database does not know this deployment's Graph subscription: it is new, deleted or replaced "+
		"although this deployment ran before; the subscription is replaced and the mailbox resynced over "+
		"M2A_FULL_RESYNC_WINDOW, so no acknowledged email is lost, and emails that already have an incident are adopted, not created twice",
		"mailbox", mb, "subscription_id", subID, "resync_since", since)
	return nil
}

// firstSeenKey is the setting that holds the time a mailbox's folder was
// first seen, the lower bound of its first resync.
func firstSeenKey(mb, folder string) string { return "subscriptions/first_seen/" + mb + "/" + folder }
