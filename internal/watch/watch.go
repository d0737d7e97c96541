// Package watch runs the service's background loops that keep the state of
// its dependencies current, so that readiness reads state and a recovery
// drains the backlog at once: the mapping's preflight against Archer,
// retried until it passes; the Archer probe when no real traffic reached
// it; the database's write probe; and the wake-up of waiting jobs when a
// dependency recovers.
package watch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// Components whose state readiness reports from what real traffic and the
// background loops saw.
const (
	Archer   = "archer"
	Graph    = "graph"
	Mapping  = "mapping"
	Database = "database"
)

// Health is where the loops report what they saw.
type Health interface {
	OK(component, detail string)
	Fail(component, detail, fix string)
	State(component string) health.State
}

// ArcherClient is the part of the Archer client the loops use.
type ArcherClient interface {
	incident.Lookup
	Ping(ctx context.Context) error
	// Refresh drops the cached metadata, so a preflight retried after an
	// administrator changed the application sees the change.
	Refresh()
}

// ObserveArcher records the outcome of a call to Archer made outside the
// jobs: a success, an answer that shows Archer works (a problem of the
// mapping, a validation message), or a failure with what to fix.
func ObserveArcher(h Health, err error, user string) {
	var problems incident.Problems
	switch {
	case err == nil, errors.As(err, &problems):
		h.OK(Archer, "answering; logged in as "+user)
		return
	}
	d := archer.Decide(err)
	if d.Action == outcome.End {
		h.OK(Archer, "answering (last failure: "+d.Reason+")")
		return
	}
	fix := d.Fix
	if fix == "" {
		// Unreachable, timing out, 5xx: jobs retry by themselves.
		fix = unreachableFix
	}
	h.Fail(Archer, err.Error(), fix)
}

// unreachableFix is the fix of an Archer failure that retries fix by
// themselves once Archer answers again.
const unreachableFix = "check that Archer is up and reachable from this host at M2A_ARCHER_URL (network, proxy, firewall); jobs retry by themselves"

// Mapper resolves the mapping against Archer once its preflight passes:
// until then the workers create nothing. It is safe for concurrent use.
type Mapper struct {
	mapping *incident.Mapping
	archer  ArcherClient
	health  Health
	user    string
	log     zerolog.Logger
	retry   time.Duration

	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	result *incident.Compiled
}

// NewMapper returns a Mapper for mapping; retry is the first wait before a
// failed preflight is tried again (doubling to 5 minutes), default 5 s.
func NewMapper(m *incident.Mapping, a ArcherClient, h Health, user string, retry time.Duration, log zerolog.Logger) *Mapper {
	if retry <= 0 {
		retry = 5 * time.Second
	}
	return &Mapper{mapping: m, archer: a, health: h, user: user, retry: retry, log: log, done: make(chan struct{})}
}

// Run tries the preflight until it passes or ctx ends, reporting each
// outcome to the mapping and archer components; a preflight cut short by
// the end of ctx is not reported.
func (p *Mapper) Run(ctx context.Context) {
	delay := p.retry
	for {
		c, err := p.mapping.Preflight(ctx, p.archer)
		if err != nil && ctx.Err() != nil {
			// Stopped mid-call: the error says nothing of Archer.
			return
		}
		ObserveArcher(p.health, err, p.user)
		if err == nil {
			for _, w := range c.Warnings() {
				p.log.Warn().Str("component", "mapping").Msg(w)
			}
			p.mu.Lock()
			p.result = c
			p.mu.Unlock()
			p.once.Do(func() { close(p.done) })
			p.health.OK(Mapping, fmt.Sprintf("%s / %s: every field resolved, records found by %q", c.App.Name, c.Level.Name, c.KeyField.Name))
			return
		}
		p.health.Fail(Mapping, err.Error(), preflightFix(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Minute)
		p.archer.Refresh()
	}
}

// Compiled returns the mapping once the preflight has passed. A job that
// starts before (the queue starts at once, the preflight needs Archer)
// waits for it a few seconds, then gets nil and waits until woken.
func (p *Mapper) Compiled(ctx context.Context) *incident.Compiled {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return p.Current()
}

// Current returns the mapping, or nil before the preflight has passed.
func (p *Mapper) Current() *incident.Compiled {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.result
}

func preflightFix(err error) string {
	var problems incident.Problems
	if errors.As(err, &problems) {
		return "fix the mapping file (M2A_MAPPING_FILE) and restart, or the Archer application it names; the preflight is retried"
	}
	if d := archer.Decide(err); d.Fix != "" {
		return d.Fix
	}
	return "check that Archer is reachable; the preflight is retried"
}

// ProbeArcher keeps the archer component current without polling Archer on
// every readiness probe: once a period (default a minute), if no call
// reached Archer since the last period, it makes one cheap call. With a
// refused password that is at most one login a period, which the client's
// own backoff also enforces.
func ProbeArcher(ctx context.Context, a ArcherClient, h Health, user string, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var own time.Time // when this probe's last ping was recorded
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Real traffic since the last tick makes a ping useless; the
		// probe's own last ping does not count as traffic.
		if st := h.State(Archer); st.Known && !st.Last.Equal(own) && time.Since(st.Last) < every {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.Ping(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ObserveArcher(h, err, user)
		own = h.State(Archer).Last
	}
}

// Writer is the database's write probe.
type Writer interface {
	ProbeWrite(ctx context.Context) error
}

// ProbeDatabase writes the heartbeat row now and every period (default 5 s),
// so that readiness turns not-ready as soon as the database stops taking
// writes (disk full, read-only, locked) and ready when it takes them again.
func ProbeDatabase(ctx context.Context, db Writer, h Health, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := db.ProbeWrite(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			h.Fail(Database, err.Error(), "free space on the database's volume, check that it is writable; "+
				"notifications are answered 503 meanwhile and Graph retries them for up to 4 hours")
		default:
			h.OK(Database, "takes writes")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Waker wakes the jobs that wait for a dependency: at once when one
// recovers (Wake), and every period for the jobs that snoozed just after a
// recovery's wake-up.
type Waker struct {
	wake  func(ctx context.Context, only func(component string) bool) (int, error)
	works func(component string) bool
	log   zerolog.Logger
	ch    chan struct{}
}

// NewWaker returns a Waker; wake makes the waiting jobs available (every
// waiting job when only is nil, else those waiting for a component only
// accepts), works tells whether a component works now.
func NewWaker(wake func(ctx context.Context, only func(string) bool) (int, error), works func(string) bool, log zerolog.Logger) *Waker {
	return &Waker{wake: wake, works: works, log: log, ch: make(chan struct{}, 1)}
}

// Wake asks for the waiting jobs to be woken; it does not block.
func (w *Waker) Wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// Run wakes jobs when asked, and every period (default 15 s) those that
// wait for a component that works by now, until ctx ends.
func (w *Waker) Run(ctx context.Context, every time.Duration) {
	if every <= 0 || every > 15*time.Second {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var only func(string) bool
		select {
		case <-ctx.Done():
			return
		case <-w.ch:
		case <-t.C:
			only = w.works
		}
		n, err := w.wake(ctx, only)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn().Err(err).Msg("could not wake waiting jobs; they run when their wait ends")
		case n > 0:
			w.log.Info().Int("jobs", n).Msg("woke waiting jobs")
		}
	}
}

// OnChange returns the health callback of the service: one log line per
// change of a dependency's state, its gauge (1 working, 0 failing), and a
// wake-up of the waiting jobs when it recovers (or when the mapping passes).
func OnChange(log zerolog.Logger, gauge func(component string, v float64), waker *Waker) func(health.Change) {
	return func(c health.Change) {
		v := 0.0
		if c.To.OK {
			v = 1
		}
		gauge(c.Component, v)
		l := log.With().Str("component", "health").Str("dependency", c.Component).Logger()
		switch {
		case c.To.OK && c.From.Known && !c.From.OK:
			l.Info().Str("detail", c.To.Detail).Dur("failed_for", c.To.Since.Sub(c.From.Since)).
				Msg(c.Component + " works again; waiting jobs are woken")
		case c.To.OK && c.Component == Mapping:
			l.Info().Str("detail", c.To.Detail).Msg("mapping preflight passed; incidents are created")
		case c.To.OK:
			l.Debug().Str("detail", c.To.Detail).Msg(c.Component + " works")
		default:
			l.Error().Str("problem", c.To.Detail).Str("fix", c.To.Fix).
				Msg(c.Component + " is failing; jobs that need it wait or retry until it works again")
		}
		if c.To.OK && (!c.From.OK || c.Component == Mapping) {
			waker.Wake()
		}
	}
}
