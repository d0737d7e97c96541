package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/pipeline"
)

// Components whose state readiness reports from what real traffic and the
// background checks saw.
const (
	componentArcher  = "archer"
	componentGraph   = "graph"
	componentMapping = "mapping"
	// componentDatabase is the state database taking writes.
	componentDatabase = "database"
)

// databaseProbeEvery is the period of the database's write probe.
const databaseProbeEvery = 5 * time.Second

// preflightProbeKey is the value the preflight looks up in the key field to
// prove that the exactly-once lookup works; finding nothing is success.
const preflightProbeKey = "mail2archer-preflight-probe"

// preflight resolves the mapping against Archer and proves that records can
// be looked up by their key, retrying with backoff (5 s doubling to 5
// minutes) until it passes once. Until then the workers create nothing.
func (a *App) preflight(ctx context.Context) {
	delay := a.opts.PreflightRetry
	if delay <= 0 {
		delay = 5 * time.Second
	}
	for {
		c, err := Preflight(ctx, a.mapping, a.archer)
		a.observeArcher(err)
		if err == nil {
			a.compiled.Store(c)
			close(a.mapped)
			a.health.OK(componentMapping, fmt.Sprintf("%s / %s: every field resolved, records found by %q", c.App.Name, c.Level.Name, c.KeyField.Name))
			return
		}
		a.health.Fail(componentMapping, err.Error(), preflightFix(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Minute)
	}
}

// waitMapping returns the mapping once the preflight has passed. A job that
// starts before (the queue starts at once, the preflight needs Archer)
// waits for it a few seconds, then gets nil and snoozes until woken.
func (a *App) waitMapping(ctx context.Context) *incident.Compiled {
	if c := a.compiled.Load(); c != nil {
		return c
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-a.mapped:
	case <-t.C:
	case <-ctx.Done():
	}
	return a.compiled.Load()
}

// Preflight resolves the mapping against Archer's metadata and looks a
// record up by its key field once, as every retried job will: an API user
// who cannot read the level through the Content API is found now, not at
// the first retry after a timeout.
func Preflight(ctx context.Context, m *incident.Mapping, ac *archer.Client) (*incident.Compiled, error) {
	c, err := m.Compile(ctx, ac)
	if err != nil {
		return nil, fmt.Errorf("mapping preflight against Archer: %w", err)
	}
	if _, err := ac.FindByField(ctx, c.App, c.Level, c.KeyField, preflightProbeKey); err != nil {
		return nil, fmt.Errorf("mapping preflight: look up a record by the key field %q: %w", c.KeyField.Name, err)
	}
	return c, nil
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

// observeArcher records the outcome of a call to Archer made outside the
// jobs (the preflight, the background check).
func (a *App) observeArcher(err error) {
	if err == nil {
		a.health.OK(componentArcher, "answering; logged in as "+a.cfg.ArcherUsername)
		return
	}
	var problems incident.Problems
	if errors.As(err, &problems) {
		// Archer answered; the mapping is at fault.
		a.health.OK(componentArcher, "answering; logged in as "+a.cfg.ArcherUsername)
		return
	}
	d := archer.Decide(err)
	if d.Action == outcome.End {
		a.health.OK(componentArcher, "answering (last failure: "+d.Reason+")")
		return
	}
	a.health.Fail(componentArcher, err.Error(), d.Fix)
}

// watchArcher keeps the archer component current without polling Archer on
// every probe: once a period (a minute), if no call reached Archer since the
// last period, it makes one cheap call. With a refused password that is at
// most one login a minute, which the client's own backoff also enforces.
func (a *App) watchArcher(ctx context.Context) {
	every := a.opts.ArcherCheckEvery
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := a.health.State(componentArcher)
		if st.Known && time.Since(st.Last) < every {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.archer.Ping(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.observeArcher(err)
	}
}

// componentChanged logs a dependency's change of state once, sets its
// metric, and wakes the jobs waiting for it when it recovers.
func (a *App) componentChanged(c health.Change) {
	v := 0.0
	if c.To.OK {
		v = 1
	}
	a.ready.WithLabelValues(c.Component).Set(v)
	log := a.log.With().Str("component", "health").Str("dependency", c.Component).Logger()
	switch {
	case c.To.OK && c.From.Known && !c.From.OK:
		log.Info().Str("detail", c.To.Detail).Dur("failed_for", c.To.Since.Sub(c.From.Since)).
			Msg(c.Component + " works again; waiting jobs are woken")
	case c.To.OK && c.Component == componentMapping:
		log.Info().Str("detail", c.To.Detail).Msg("mapping preflight passed; incidents are created")
	case c.To.OK:
		log.Debug().Str("detail", c.To.Detail).Msg(c.Component + " works")
	default:
		log.Error().Str("problem", c.To.Detail).Str("fix", c.To.Fix).
			Msg(c.Component + " is failing; jobs that need it wait without spending attempts")
	}
	if c.To.OK && (!c.From.OK || c.Component == componentMapping) {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// wakeOnRecovery makes waiting message jobs available whenever a
// dependency recovers, so a backlog drains at once; and every 15 seconds it
// wakes the jobs that snoozed for a component that works by now (a job
// that snoozed just after the recovery's wake-up).
func (a *App) wakeOnRecovery(ctx context.Context) {
	every := a.opts.ArcherCheckEvery
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
		case <-a.wake:
		case <-t.C:
			only = a.health.Working
		}
		n, err := pipeline.WakeWaiting(ctx, a.queue, only)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn().Err(err).Msg("could not wake waiting jobs; they run when their wait ends")
		case n > 0:
			a.log.Info().Int("jobs", n).Msg("woke waiting jobs")
		}
	}
}

// watchDatabase writes the heartbeat row now and every few seconds, so that
// readiness turns not-ready as soon as the database stops taking writes
// (disk full, read-only, locked) and ready again when it takes them.
func (a *App) watchDatabase(ctx context.Context) {
	t := time.NewTicker(databaseProbeEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.store.ProbeWrite(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.health.Fail(componentDatabase, err.Error(), "free space on the database's volume, check that it is writable; "+
				"notifications are answered 503 meanwhile and Graph retries them for up to 4 hours")
		default:
			a.health.OK(componentDatabase, "takes writes")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
