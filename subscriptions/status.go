package subscriptions

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is what one replica knows of one mailbox folder's subscription.
type State struct {
	// Mailbox and Folder are the watched folder.
	Mailbox, Folder string
	// SubscriptionID is the current subscription, "" when there is none.
	SubscriptionID string
	// ExpiresAt is the subscription's expiry, zero when there is none.
	ExpiresAt time.Time
	// SecondsToExpiry is ExpiresAt minus now, in whole seconds; negative
	// once expired.
	SecondsToExpiry int64
	// Leader is true on the replica that manages the subscriptions; a
	// standby reports what the store says.
	Leader bool
	// Healthy is true while the subscription exists, has not expired and
	// its last create, renew or reauthorize call did not fail.
	Healthy bool
	// LastRenewal is when this replica last created, renewed or
	// reauthorized the subscription, zero when it has not.
	LastRenewal time.Time
	// LastResync is when this replica's last resync of the folder ended
	// well, zero when it has not run one.
	LastResync time.Time
	// LastError is the last failure, "" after a success.
	LastError string
	// RecoveredAt is when this replica found the state database lost or
	// replaced at start and resynced the folder since RecoveredSince; zero
	// when it did not.
	RecoveredAt, RecoveredSince time.Time
}

// Status returns the state of every configured mailbox, in configuration
// order. It does no I/O.
func (m *Manager) Status() []State {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]State, 0, len(m.cfg.Mailboxes))
	for _, mb := range m.cfg.Mailboxes {
		st := m.states[mb]
		s := State{
			Mailbox:        mb,
			Folder:         m.cfg.Folder,
			SubscriptionID: st.sub.ID,
			ExpiresAt:      st.sub.ExpiresAt,
			Leader:         m.leader,
			LastRenewal:    st.lastTouch,
			LastResync:     st.lastResync,
			RecoveredAt:    st.recoveredAt,
			RecoveredSince: st.recoveredSince,
		}
		if st.sub.ID != "" {
			s.SecondsToExpiry = int64(st.sub.ExpiresAt.Sub(now) / time.Second)
		}
		var errs []string
		for _, e := range []error{st.subErr, st.resyncErr} {
			if e != nil {
				errs = append(errs, e.Error())
			}
		}
		if m.leader && !m.reconciled && m.reconcileErr != nil {
			errs = append(errs, m.reconcileErr.Error())
		}
		s.LastError = strings.Join(errs, "; ")
		s.Healthy = st.sub.ID != "" && now.Before(st.sub.ExpiresAt) && st.subErr == nil
		out = append(out, s)
	}
	return out
}

// Ready returns nil when every configured mailbox has a live subscription,
// and otherwise an error naming each mailbox that has none and why. A
// standby judges by the subscriptions the leader stored.
func (m *Manager) Ready() error {
	var errs []error
	for _, s := range m.Status() {
		switch {
		case s.SubscriptionID == "" && s.LastError != "":
			errs = append(errs, fmt.Errorf("%s: no subscription: %s", s.Mailbox, s.LastError))
		case s.SubscriptionID == "":
			errs = append(errs, fmt.Errorf("%s: no subscription yet", s.Mailbox))
		case s.SecondsToExpiry <= 0:
			errs = append(errs, fmt.Errorf("%s: subscription %s expired at %s", s.Mailbox, s.SubscriptionID, s.ExpiresAt.UTC().Format(time.RFC3339)))
		case !s.Healthy:
			errs = append(errs, fmt.Errorf("%s: subscription %s: %s", s.Mailbox, s.SubscriptionID, s.LastError))
		}
	}
	return errors.Join(errs...)
}

// Summary describes Status in one line for a readiness page, e.g.
// "leader; phish@contoso.com: ok, 301234 s to expiry"; a failing mailbox
// carries its last error.
func (m *Manager) Summary() string {
	var parts []string
	for _, s := range m.Status() {
		var p string
		switch {
		case s.SubscriptionID == "":
			p = s.Mailbox + ": no subscription"
		case s.Healthy:
			p = fmt.Sprintf("%s: ok, %d s to expiry", s.Mailbox, s.SecondsToExpiry)
		default:
			p = fmt.Sprintf("%s: failing, %d s to expiry", s.Mailbox, s.SecondsToExpiry)
		}
		if s.LastError != "" {
			p += " (" + s.LastError + ")"
		}
		if !s.RecoveredAt.IsZero() {
			p += fmt.Sprintf(" [state database found lost or replaced at %s; resynced since %s]",
				s.RecoveredAt.UTC().Format(time.RFC3339), s.RecoveredSince.UTC().Format(time.RFC3339))
		}
		parts = append(parts, p)
	}
	role := "standby"
	if m.isLeader() {
		role = "leader"
	}
	return role + "; " + strings.Join(parts, "; ")
}
