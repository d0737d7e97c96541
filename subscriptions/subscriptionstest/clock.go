// Package subscriptionstest holds in-memory fakes of the interfaces a
// subscriptions.Manager depends on: a Clock moved by hand, a Store, a Queue
// that dedupes like a unique job, and a Graph that keeps subscriptions and
// mail folders, expires subscriptions on the Clock and can drop
// notifications. They are for tests and examples; all are safe for
// concurrent use.
package subscriptionstest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// Clock is a fake clock that moves only when Advance is called.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever timers change
}

type timer struct {
	c       *Clock
	at      time.Time
	ch      chan time.Time
	stopped bool
	fired   bool
}

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches now+d; at
// once when d <= 0.
func (c *Clock) NewTimer(d time.Duration) subscriptions.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.notifyLocked()
	return t
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.fired || t.stopped {
		return false
	}
	t.stopped = true
	c.removeLocked(t)
	return true
}

func (c *Clock) removeLocked(t *timer) {
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			break
		}
	}
	c.notifyLocked()
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d and fires every timer due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// AdvanceToNext moves the clock to the earliest pending timer and fires it,
// and reports how far it moved; false when no timer is pending.
func (c *Clock) AdvanceToNext() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	next := c.timers[0].at
	for _, t := range c.timers[1:] {
		if t.at.Before(next) {
			next = t.at
		}
	}
	d := max(next.Sub(c.now), 0)
	c.now = c.now.Add(d)
	c.fireLocked()
	return d, true
}

func (c *Clock) fireLocked() {
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.fired = true
		t.ch <- c.now
	}
	c.timers = kept
	c.notifyLocked()
}

// NextTimer returns when the earliest pending timer fires; false when no
// timer is pending.
func (c *Clock) NextTimer() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	next := c.timers[0].at
	for _, t := range c.timers[1:] {
		if t.at.Before(next) {
			next = t.at
		}
	}
	return next, true
}

// Timers returns the number of timers waiting to fire.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForTimers blocks until at least n timers wait to fire, which tells a
// test that n goroutines are asleep on the clock. It returns ctx's error if
// ctx ends first. A running Manager sleeps on two timers while it leads
// (its work loop and its lease keeper) and on one while it stands by.
func (c *Clock) WaitForTimers(ctx context.Context, n int) error {
	return c.WaitFor(ctx, func(timers int) bool { return timers >= n })
}

// WaitFor blocks until ok returns true for the number of pending timers,
// checking again whenever a timer is added, stopped or fired. It returns
// ctx's error if ctx ends first.
func (c *Clock) WaitFor(ctx context.Context, ok func(timers int) bool) error {
	for {
		c.mu.Lock()
		have, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if ok(have) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
