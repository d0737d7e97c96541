package subscriptions

import (
	"context"
	"time"
)

// Record is a subscription this application created, with the clientState
// secret that only the database knows. The service's state store keeps it
// as it is.
type Record struct {
	// ID is Graph's subscription id.
	ID string
	// Mailbox is the configured mailbox the subscription watches.
	Mailbox string
	// Folder is the configured folder the subscription watches.
	Folder string
	// ClientState is the secret Graph echoes in every notification.
	ClientState string
	// ExpiresAt is the subscription's expiry as last confirmed by Graph.
	ExpiresAt time.Time
}

// Store keeps the Manager's state. It must be safe for concurrent use, and
// shared by every replica that runs a Manager for the same mailboxes.
type Store interface {
	// SaveSubscription inserts or replaces a subscription by id.
	SaveSubscription(ctx context.Context, rec Record) error
	// Subscriptions returns every stored subscription.
	Subscriptions(ctx context.Context) ([]Record, error)
	// DeleteSubscription removes a subscription; an unknown id is no error.
	DeleteSubscription(ctx context.Context, id string) error
	// DeltaLink returns a folder's stored delta link, "" when none is
	// stored.
	DeltaLink(ctx context.Context, mailbox, folder string) (string, error)
	// SaveDeltaLink stores a folder's delta link; "" removes it.
	SaveDeltaLink(ctx context.Context, mailbox, folder, link string) error
	// TryAcquireLease takes or extends the lease name for holder until
	// now+ttl, unless another holder's lease is still running at now, and
	// reports whether holder holds it.
	TryAcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease gives up the lease if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
	// SetOnce stores value under name unless one is stored, and returns the
	// stored value.
	SetOnce(ctx context.Context, name, value string) (string, error)
}

// Queue receives the messages a resync finds. The job that processes a
// message must be unique by mailbox and message id, and Enqueue should skip
// messages already processed, so that replays of a delta round and
// messages also announced by a notification are processed once.
type Queue interface {
	// Enqueue queues one job per message id and returns how many were new
	// (not skipped as duplicates).
	Enqueue(ctx context.Context, mailbox string, messageIDs []string) (queued int, err error)
}

// Clock is the Manager's time source. Tests pass a fake they advance.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C receives the time once the timer fires.
	C() <-chan time.Time
	// Stop stops the timer; it reports whether it stopped it before it
	// fired.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
