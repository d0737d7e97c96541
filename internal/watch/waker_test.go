package watch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/watch"
)

// fakeQueue stands for the queue's wake-up of waiting jobs.
type fakeQueue struct {
	// result answers each wake-up; nil finds no job.
	result func(ctx context.Context) (int, error)

	mu    sync.Mutex
	wakes []wake
}

// wake is one wake-up: when, and which jobs (every one when only is nil).
type wake struct {
	at   time.Time
	only func(string) bool
}

func (q *fakeQueue) wake(ctx context.Context, only func(string) bool) (int, error) {
	q.mu.Lock()
	q.wakes = append(q.wakes, wake{time.Now(), only})
	q.mu.Unlock()
	if q.result == nil {
		return 0, nil
	}
	return q.result(ctx)
}

func (q *fakeQueue) made() []wake {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.wakes)
}

// asked counts the wake-ups of every waiting job (those Wake asked for, not
// the periodic ones).
func (q *fakeQueue) asked() int {
	n := 0
	for _, w := range q.made() {
		if w.only == nil {
			n++
		}
	}
	return n
}

// working says archer works and graph does not.
func working(c string) bool { return c == watch.Archer }

// The Waker's tests run in a synctest bubble: synctest.Wait returns once the
// Waker is back waiting, so "no further wake-up" is exact.

func TestWakerWakesEveryWaitingJobOnceWhenAsked(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var q fakeQueue
		w := watch.NewWaker(q.wake, working, zerolog.Nop())
		// Wake never blocks, and requests made before Run are one.
		w.Wake()
		w.Wake()
		w.Wake()
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := goRun(func() { w.Run(ctx, time.Second) })
		synctest.Wait()
		wakes := q.made()
		if len(wakes) != 1 || wakes[0].only != nil || !wakes[0].at.Equal(start) {
			t.Fatalf("wake-ups %+v, want one of every job at once", wakes)
		}
		w.Wake()
		synctest.Wait()
		if wakes := q.made(); len(wakes) != 2 || wakes[1].only != nil || !wakes[1].at.Equal(start) {
			t.Fatalf("wake-ups %+v, want a second of every job at once", wakes)
		}
		cancel()
		await(t, done, "the loop's return")
	})
}

func TestWakerWakesJobsOfWorkingComponentsEachPeriod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		every, want time.Duration
	}{
		{"default", 0, 15 * time.Second},
		{"at most 15 s", time.Minute, 15 * time.Second},
		{"shorter", 3 * time.Millisecond, 3 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				called := make(chan struct{}, 3)
				q := fakeQueue{result: func(context.Context) (int, error) { called <- struct{}{}; return 0, nil }}
				w := watch.NewWaker(q.wake, working, zerolog.Nop())
				ctx, cancel := context.WithCancel(t.Context())
				start := time.Now()
				done := goRun(func() { w.Run(ctx, tc.every) })
				for range 3 {
					await(t, called, "wake-up")
				}
				cancel()
				await(t, done, "the loop's return")
				for i, wk := range q.made() {
					if want := start.Add(time.Duration(i+1) * tc.want); !wk.at.Equal(want) {
						t.Errorf("wake-up %d at %v, want %v", i, wk.at.Sub(start), want.Sub(start))
					}
					if wk.only == nil || !wk.only(watch.Archer) || wk.only(watch.Graph) {
						t.Errorf("wake-up %d does not pick the jobs of working components", i)
					}
				}
			})
		})
	}
}

func TestWakerLogsWhatItWoke(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		result func(ctx context.Context, stop func()) (int, error)
		// want is each line's level and message, and a field of it.
		want []string
	}{
		{"jobs woken", func(context.Context, func()) (int, error) { return 3, nil },
			[]string{"info woke waiting jobs jobs=3"}},
		{"nothing waiting", func(context.Context, func()) (int, error) { return 0, nil }, nil},
		{"queue failed", func(context.Context, func()) (int, error) { return 0, errors.New("database is locked") },
			[]string{"warn could not wake waiting jobs; they run when their wait ends error=database is locked"}},
		{"stopped during the wake-up", func(ctx context.Context, stop func()) (int, error) {
			stop()
			return 0, ctx.Err()
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var logs logBuffer
				ctx, cancel := context.WithCancel(t.Context())
				q := fakeQueue{result: func(ctx context.Context) (int, error) { return tc.result(ctx, cancel) }}
				w := watch.NewWaker(q.wake, working, zerolog.New(&logs))
				done := goRun(func() { w.Run(ctx, time.Minute) })
				w.Wake()
				synctest.Wait()
				cancel()
				await(t, done, "the loop's return")
				var got []string
				for _, l := range logs.lines(t) {
					line := fmt.Sprint(l["level"], " ", l["message"])
					for _, k := range []string{"jobs", "error"} {
						if v, ok := l[k]; ok {
							line += fmt.Sprint(" ", k, "=", v)
						}
					}
					got = append(got, line)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("log\n%q\nwant\n%q", got, tc.want)
				}
			})
		})
	}
}

// onChangeBundle is OnChange wired to a running Waker, a gauge and a log.
type onChangeBundle struct {
	cb     func(health.Change)
	logs   *logBuffer
	queue  *fakeQueue
	mu     sync.Mutex
	gauges []string
}

// newOnChange starts a Waker whose period never ends within a test; it must
// be called in a synctest bubble, and stops with the bubble's test.
func newOnChange(t *testing.T) *onChangeBundle {
	b := &onChangeBundle{logs: &logBuffer{}, queue: &fakeQueue{}}
	w := watch.NewWaker(b.queue.wake, working, zerolog.Nop())
	ctx, cancel := context.WithCancel(t.Context())
	done := goRun(func() { w.Run(ctx, 15*time.Second) })
	t.Cleanup(func() { cancel(); <-done })
	gauge := func(c string, v float64) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.gauges = append(b.gauges, fmt.Sprint(c, "=", v))
	}
	b.cb = watch.OnChange(zerolog.New(b.logs).Level(zerolog.DebugLevel), gauge, w)
	return b
}

func (b *onChangeBundle) gaugeValues() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.gauges)
}

func TestOnChangeLogsFeedsTheGaugeAndWakesOnRecovery(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 := t0.Add(90 * time.Second)
	unknown := health.State{}
	ok := func(d string, since time.Time) health.State {
		return health.State{Known: true, OK: true, Detail: d, Since: since, Last: since}
	}
	fail := func(d, fix string, since time.Time) health.State {
		return health.State{Known: true, Detail: d, Fix: fix, Since: since, Last: since}
	}
	for _, tc := range []struct {
		name   string
		change health.Change
		gauge  float64
		wake   bool
		// line is the log line: level, message, then the fields asked for.
		line   string
		fields []string
	}{
		{"recovery", health.Change{Component: watch.Archer, From: fail("HTTP 503", "", t0), To: ok("answering", t1)},
			1, true, "info archer works again; waiting jobs are woken", []string{"dependency=archer", "detail=answering", "failed_for=90000"}},
		{"first success", health.Change{Component: watch.Archer, From: unknown, To: ok("answering", t1)},
			1, true, "debug archer works", []string{"dependency=archer", "detail=answering"}},
		{"repeated success", health.Change{Component: watch.Archer, From: ok("answering", t0), To: ok("answering", t1)},
			1, false, "debug archer works", []string{"detail=answering"}},
		{"mapping passes", health.Change{Component: watch.Mapping, From: unknown, To: ok("Incidents / Incident", t1)},
			1, true, "info mapping preflight passed; incidents are created", []string{"dependency=mapping", "detail=Incidents / Incident"}},
		// health.Set sends no change from ok to ok; OnChange wakes for the
		// mapping's success even so.
		{"mapping passes again", health.Change{Component: watch.Mapping, From: ok("Incidents / Incident", t0), To: ok("Incidents / Incident", t1)},
			1, true, "info mapping preflight passed; incidents are created", []string{"dependency=mapping"}},
		{"mapping passes after failing", health.Change{Component: watch.Mapping, From: fail("problems", "fix the mapping", t0), To: ok("Incidents / Incident", t1)},
			1, true, "info mapping works again; waiting jobs are woken", []string{"failed_for=90000"}},
		{"failure", health.Change{Component: watch.Database, From: ok("takes writes", t0), To: fail("disk full", databaseFix, t1)},
			0, false, "error database is failing; jobs that need it wait or retry until it works again",
			[]string{"dependency=database", "problem=disk full", "fix=" + databaseFix}},
		{"first failure", health.Change{Component: watch.Graph, From: unknown, To: fail("HTTP 401", "check the secret", t1)},
			0, false, "error graph is failing; jobs that need it wait or retry until it works again", []string{"problem=HTTP 401", "fix=check the secret"}},
		{"another failure", health.Change{Component: watch.Archer, From: fail("HTTP 503", "", t0), To: fail("archer login refused", loginFix, t1)},
			0, false, "error archer is failing; jobs that need it wait or retry until it works again", []string{"problem=archer login refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				b := newOnChange(t)
				b.cb(tc.change)
				synctest.Wait()

				if got, want := b.gaugeValues(), []string{fmt.Sprint(tc.change.Component, "=", tc.gauge)}; !slices.Equal(got, want) {
					t.Errorf("gauge %v, want %v", got, want)
				}
				wantWakes := 0
				if tc.wake {
					wantWakes = 1
				}
				wakes := b.queue.made()
				if len(wakes) != wantWakes {
					t.Errorf("%d wake-ups, want %d", len(wakes), wantWakes)
				}
				for _, wk := range wakes {
					if wk.only != nil {
						t.Error("a recovery wakes only some of the waiting jobs")
					}
				}
				lines := b.logs.lines(t)
				if len(lines) != 1 {
					t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
				}
				l := lines[0]
				if got := fmt.Sprint(l["level"], " ", l["message"]); got != tc.line || l["component"] != "health" {
					t.Errorf("log line %v, want %q", l, tc.line)
				}
				for _, f := range tc.fields {
					k, v, _ := strings.Cut(f, "=")
					if got := fmt.Sprint(l[k]); got != v {
						t.Errorf("field %s = %q, want %q", k, got, v)
					}
				}
			})
		})
	}
}

// TestOnChangeThroughTheHealthSet wires OnChange as the service does: a
// failure repeated a thousand times is logged once, a recovery once, and
// only the recovery wakes the waiting jobs, once.
func TestOnChangeThroughTheHealthSet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newOnChange(t)
		h := health.NewSet(b.cb, watch.Archer, watch.Database)
		for range 1000 {
			h.Fail(watch.Archer, "HTTP 503", "")
		}
		h.Fail(watch.Archer, "archer login refused", loginFix)
		synctest.Wait()
		if n := b.queue.asked(); n != 0 {
			t.Fatalf("%d wake-ups while Archer fails", n)
		}
		time.Sleep(time.Minute)
		for range 1000 {
			h.OK(watch.Archer, "answering; logged in as "+user)
		}
		synctest.Wait()
		if n := b.queue.asked(); n != 1 {
			t.Fatalf("%d wake-ups after Archer recovered, want 1", n)
		}
		h.OK(watch.Database, "takes writes")
		synctest.Wait()
		if n := b.queue.asked(); n != 2 {
			t.Fatalf("%d wake-ups after the database's first success, want 2", n)
		}
		if got, want := b.gaugeValues(), []string{"archer=0", "archer=0", "archer=1", "database=1"}; !slices.Equal(got, want) {
			t.Errorf("gauge %v, want %v", got, want)
		}
		var got []string
		for _, l := range b.logs.lines(t) {
			got = append(got, fmt.Sprint(l["level"], " ", l["dependency"], " ", l["message"], " ", l["failed_for"]))
		}
		want := []string{
			"error archer archer is failing; jobs that need it wait or retry until it works again <nil>",
			"error archer archer is failing; jobs that need it wait or retry until it works again <nil>",
			"info archer archer works again; waiting jobs are woken 60000",
			"debug database database works <nil>",
		}
		if !slices.Equal(got, want) {
			t.Errorf("log\n%q\nwant\n%q", got, want)
		}
	})
}
