package server

import (
	"context"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// SubscriptionIndex holds every stored subscription in memory (a handful:
// one per mailbox), so that checking a notification item costs no database
// read, however many forged items a request carries. It reloads the whole
// list when told that the subscriptions changed, when it is older than
// maxAge (another replica may have changed them), and when an unknown id
// arrives — at most once per minGap, so a flood of forged ids costs at most
// one query per minGap.
type SubscriptionIndex struct {
	src    SubscriptionSource
	now    func() time.Time
	maxAge time.Duration
	minGap time.Duration

	mu       sync.Mutex
	byID     map[string]subscriptions.Record
	loadedAt time.Time
	stale    bool
	loads    int
}

// NewSubscriptionIndex returns an index of the subscriptions src lists; it
// loads them at the first lookup.
func NewSubscriptionIndex(src SubscriptionSource) *SubscriptionIndex {
	return &SubscriptionIndex{src: src, now: time.Now, maxAge: 30 * time.Second, minGap: time.Second, stale: true}
}

// Invalidate makes the next lookup reload the list: call it when a
// subscription was created, renewed or deleted, so that its first
// notification finds it.
func (x *SubscriptionIndex) Invalidate() {
	x.mu.Lock()
	x.stale = true
	x.mu.Unlock()
}

// lookup returns the subscription with id, and whether it exists. An error
// means the list could not be loaded and nothing is known.
func (x *SubscriptionIndex) lookup(ctx context.Context, id string) (subscriptions.Record, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	if x.stale || now.Sub(x.loadedAt) >= x.maxAge {
		if err := x.loadLocked(ctx, now); err != nil {
			return subscriptions.Record{}, false, err
		}
	}
	if sub, ok := x.byID[id]; ok {
		return sub, true, nil
	}
	if now.Sub(x.loadedAt) < x.minGap {
		return subscriptions.Record{}, false, nil
	}
	if err := x.loadLocked(ctx, now); err != nil {
		return subscriptions.Record{}, false, err
	}
	sub, ok := x.byID[id]
	return sub, ok, nil
}

func (x *SubscriptionIndex) loadLocked(ctx context.Context, now time.Time) error {
	subs, err := x.src.Subscriptions(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]subscriptions.Record, len(subs))
	for _, s := range subs {
		byID[s.ID] = s
	}
	x.byID, x.loadedAt, x.stale = byID, now, false
	x.loads++
	return nil
}
