package watch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/watch"
)

// The probes run in a synctest bubble: their tickers and the health set's
// clock are fake, so "within the period" is exact and a run of ticks
// without a call is proven by synctest.Wait, not by sleeping.

// TestProbeArcherLeavesArcherAloneWhileTrafficReachesIt records a call of
// real traffic every 25 s for five minutes: with a one-minute period the
// probe never pings. Once the traffic stops, it pings at the first tick a
// full period after the last call.
func TestProbeArcherLeavesArcherAloneWhileTrafficReachesIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		pinged := make(chan time.Time, 1)
		a := &fakeArcher{ping: func(context.Context) error { pinged <- time.Now(); return nil }}
		h := health.NewSet(nil, watch.Archer)
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := goRun(func() { watch.ProbeArcher(ctx, a, h, user, time.Minute) })

		for range 12 {
			time.Sleep(25 * time.Second)
			h.OK(watch.Archer, "record 42 created")
			synctest.Wait()
			if calls := a.calls(); len(calls) != 0 {
				t.Fatalf("the probe called Archer at %v despite traffic: %v", time.Since(start), calls)
			}
		}
		// The last call was at 300 s; the tick at 360 s is a full period
		// later.
		at := await(t, pinged, "ping")
		if got := at.Sub(start); got != 6*time.Minute {
			t.Errorf("pinged at %v, want 6m0s", got)
		}
		synctest.Wait()
		if st := h.State(watch.Archer); !st.OK || st.Detail != "answering; logged in as "+user || !st.Last.Equal(at) {
			t.Errorf("archer state after the ping %+v", st)
		}
		cancel()
		await(t, done, "the loop's return")
	})
}

// TestProbeArcherPingsEveryPeriodWithoutTraffic: the probe's own ping is no
// traffic, so a ping that takes time does not make the next tick skip.
func TestProbeArcherPingsEveryPeriodWithoutTraffic(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		pinged := make(chan time.Time, 1)
		a := &fakeArcher{ping: func(context.Context) error {
			time.Sleep(2 * time.Second) // a login and a metadata read
			pinged <- time.Now()
			return nil
		}}
		h := health.NewSet(nil, watch.Archer)
		start := time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		done := goRun(func() { watch.ProbeArcher(ctx, a, h, user, time.Minute) })
		for i := 1; i <= 4; i++ {
			at := await(t, pinged, "ping")
			if want := time.Duration(i)*time.Minute + 2*time.Second; at.Sub(start) != want {
				t.Fatalf("ping %d ended at %v, want %v: a tick was skipped", i, at.Sub(start), want)
			}
		}
		cancel()
		await(t, done, "the loop's return")
	})
}

func TestProbeArcherRecordsEachPing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		every  time.Duration
		err    error
		first  time.Duration // when the first ping is made
		ok     bool
		detail string
		fix    string
	}{
		{"default period, working", 0, nil, time.Minute, true, "answering; logged in as " + user, ""},
		{"refused login", 10 * time.Millisecond, loginRefused(), 10 * time.Millisecond, false, "archer login refused", loginFix},
		{"forbidden", time.Second, fmt.Errorf("archer ping: %w", &archer.StatusError{Op: "ping", Method: "GET", URL: "u", StatusCode: http.StatusForbidden}),
			time.Second, false, "HTTP 403", forbiddenFix},
		{"unreachable", time.Second, refused(), time.Second, false, "connection refused", unreachableFix},
		{"answered with a validation message", time.Second, &archer.ValidationError{Op: "ping", Messages: []string{"No resource found."}},
			time.Second, true, "answering (last failure: archer_validation)", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				type ping struct {
					at, deadline time.Time
				}
				pinged := make(chan ping, 1)
				a := &fakeArcher{ping: func(ctx context.Context) error {
					d, _ := ctx.Deadline()
					pinged <- ping{time.Now(), d}
					return tc.err
				}}
				h := health.NewSet(nil, watch.Archer)
				start := time.Now()
				ctx, cancel := context.WithCancel(t.Context())
				done := goRun(func() { watch.ProbeArcher(ctx, a, h, user, tc.every) })

				p := await(t, pinged, "ping")
				if got := p.at.Sub(start); got != tc.first {
					t.Errorf("first ping after %v, want %v", got, tc.first)
				}
				if got := p.deadline.Sub(p.at); got != 30*time.Second {
					t.Errorf("ping deadline %v after it started, want 30s", got)
				}
				synctest.Wait()
				checkArcherState(t, h.State(watch.Archer), tc.ok, tc.detail, tc.fix)
				cancel()
				await(t, done, "the loop's return")
			})
		})
	}
}

// TestProbeArcherStopsWithItsContext shows that the probe ends when its
// context does, even in the middle of a ping, and does not report the
// cancelled ping as a failure of Archer.
func TestProbeArcherStopsWithItsContext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cancelled func(ctx context.Context, started chan<- struct{}) error
	}{
		{"between ticks", nil},
		{"during a ping", func(ctx context.Context, started chan<- struct{}) error {
			close(started)
			<-ctx.Done()
			return fmt.Errorf("archer ping: %w", ctx.Err())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				started := make(chan struct{})
				a := &fakeArcher{ping: func(ctx context.Context) error {
					if tc.cancelled == nil {
						t.Error("pinged")
						return nil
					}
					return tc.cancelled(ctx, started)
				}}
				h := health.NewSet(nil, watch.Archer)
				ctx, cancel := context.WithCancel(t.Context())
				done := goRun(func() { watch.ProbeArcher(ctx, a, h, user, time.Minute) })
				if tc.cancelled != nil {
					await(t, started, "ping")
				} else {
					time.Sleep(30 * time.Second)
				}
				cancel()
				await(t, done, "the loop's return")
				if st := h.State(watch.Archer); st.Known {
					t.Errorf("archer state %+v recorded after the probe was stopped", st)
				}
			})
		})
	}
}

// fakeWriter is the database's write probe.
type fakeWriter struct {
	write func(ctx context.Context) error

	mu    sync.Mutex
	calls []writeCall
}

type writeCall struct {
	at, deadline time.Time
}

func (w *fakeWriter) ProbeWrite(ctx context.Context) error {
	d, _ := ctx.Deadline()
	w.mu.Lock()
	w.calls = append(w.calls, writeCall{time.Now(), d})
	w.mu.Unlock()
	return w.write(ctx)
}

func (w *fakeWriter) made() []writeCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

const databaseFix = "free space on the database's volume, check that it is writable; " +
	"notifications are answered 503 meanwhile and Graph retries them for up to 4 hours"

// TestProbeDatabaseFollowsEachWrite writes at once and then once a period;
// each failed write marks the database failing with the fix, each working
// one marks it working again.
func TestProbeDatabaseFollowsEachWrite(t *testing.T) {
	t.Parallel()
	full := errors.New("write to the database: database or disk is full (13)")
	readOnly := errors.New("write to the database: attempt to write a readonly database (8)")
	for _, tc := range []struct {
		name    string
		every   time.Duration
		results []error
		changes []string
	}{
		{"fails, recovers, fails", 2 * time.Second, []error{full, full, nil, nil, readOnly}, []string{
			"unknown→fail: " + full.Error() + " | " + databaseFix,
			"fail→ok: takes writes | ",
			"ok→fail: " + readOnly.Error() + " | " + databaseFix,
		}},
		{"default period, works", 0, []error{nil, nil}, []string{"unknown→ok: takes writes | "}},
		{"one failure to another", time.Millisecond, []error{full, readOnly}, []string{
			"unknown→fail: " + full.Error() + " | " + databaseFix,
			"fail→fail: " + readOnly.Error() + " | " + databaseFix,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				every := tc.every
				if every == 0 {
					every = 5 * time.Second
				}
				exhausted := make(chan struct{})
				var n int
				w := &fakeWriter{write: func(ctx context.Context) error {
					n++ // the probe writes from one goroutine
					if n > len(tc.results) {
						close(exhausted)
						<-ctx.Done()
						return ctx.Err()
					}
					return tc.results[n-1]
				}}
				var changes changeLog
				h := health.NewSet(changes.add, watch.Database)
				start := time.Now()
				ctx, cancel := context.WithCancel(t.Context())
				done := goRun(func() { watch.ProbeDatabase(ctx, w, h, tc.every) })
				await(t, exhausted, "every write")
				cancel()
				await(t, done, "the loop's return")

				calls := w.made()
				if len(calls) != len(tc.results)+1 {
					t.Fatalf("%d writes, want %d", len(calls), len(tc.results)+1)
				}
				for i, c := range calls {
					if want := start.Add(time.Duration(i) * every); !c.at.Equal(want) {
						t.Errorf("write %d at %v, want %v", i, c.at.Sub(start), want.Sub(start))
					}
					if got := c.deadline.Sub(c.at); got != 5*time.Second {
						t.Errorf("write %d has %v to finish, want 5s", i, got)
					}
				}
				// The write cancelled by the stop is not reported.
				if got := changes.of(watch.Database); !slices.Equal(got, tc.changes) {
					t.Errorf("database changes\n%q\nwant\n%q", got, tc.changes)
				}
			})
		})
	}
}
