package server

import (
	"context"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/internal/store"
)

// subscriptionCache keeps recently looked-up subscriptions in memory, so a
// notification costs one database write (the job insert) and no read. Only
// found subscriptions are cached, for a short time: a new subscription is
// seen at once, a deleted one is forgotten within the TTL (and its
// notifications name real messages, which the worker dedupes).
type subscriptionCache struct {
	next Subscriptions
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]cachedSubscription
}

type cachedSubscription struct {
	sub     store.Subscription
	expires time.Time
}

func newSubscriptionCache(next Subscriptions, ttl time.Duration, now func() time.Time) *subscriptionCache {
	return &subscriptionCache{next: next, ttl: ttl, now: now, entries: map[string]cachedSubscription{}}
}

// Subscription returns the cached subscription or looks it up.
func (c *subscriptionCache) Subscription(ctx context.Context, id string) (store.Subscription, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.sub, nil
	}
	sub, err := c.next.Subscription(ctx, id)
	if err != nil {
		return sub, err
	}
	c.mu.Lock()
	if len(c.entries) > 1000 { // bounded: subscriptions are few
		clear(c.entries)
	}
	c.entries[id] = cachedSubscription{sub: sub, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return sub, nil
}
