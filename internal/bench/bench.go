// Package bench measures the real service — store, queue, workers and
// subscriptions manager — against the Graph and Archer simulators with
// realistic backend latency and Graph's per-mailbox throttling, and reports
// the figures as a table, as JSON, and as ratios to a saved run.
//
// The scenarios are intake (webhook acknowledgement latency at a fixed
// rate), burst (thousands of reported emails arriving at one mailbox within
// a minute), overhead (the service's own time from notification to Archer
// with backend latency zero) and footprint (memory and start-up time).
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order Run runs them.
const (
	ScenarioIntake    = "intake"
	ScenarioBurst     = "burst"
	ScenarioOverhead  = "overhead"
	ScenarioFootprint = "footprint"
)

// Scenarios returns every scenario name in run order.
func Scenarios() []string {
	return []string{ScenarioIntake, ScenarioBurst, ScenarioOverhead, ScenarioFootprint}
}

// Params sizes the scenarios. DefaultParams is the full bench, SmokeParams
// a run of a few seconds that exercises every code path.
type Params struct {
	// GraphLatency and ArcherLatency delay every simulator request.
	GraphLatency  time.Duration `json:"graph_latency_ns"`
	ArcherLatency time.Duration `json:"archer_latency_ns"`

	// IntakeRate notifications per second are posted for IntakeDuration.
	IntakeRate     int           `json:"intake_rate"`
	IntakeDuration time.Duration `json:"intake_duration_ns"`

	// BurstEmails arrive evenly within BurstArrival.
	BurstEmails  int           `json:"burst_emails"`
	BurstArrival time.Duration `json:"burst_arrival_ns"`
	// BurstGoal is how long the drain should take at most; the client's
	// request rate and the simulator's budget are scaled up (together) so
	// that it can, as far as Graph's concurrency limit allows.
	BurstGoal time.Duration `json:"burst_goal_ns"`
	// BurstWindow is the simulator's throttling window (Graph: 10 min).
	// The simulator counts fixed windows, so it must be long enough for
	// the client's bucket (burst + rate × window) to fit the budget: at
	// least 12 s with the default bucket shape.
	BurstWindow time.Duration `json:"burst_window_ns"`
	// BurstWorkers is M2A_WORKERS during the burst.
	BurstWorkers int `json:"burst_workers"`
	// BurstWriteBack keeps the default category write-back on during the
	// burst (one more Graph request per email).
	BurstWriteBack bool `json:"burst_writeback"`

	// OverheadEmails notifications are posted at OverheadRate per second;
	// the rate must stay inside the Graph client's default bucket (15
	// requests/s, three per email with write-back) or the figure measures
	// the bucket's queue instead of the service.
	OverheadEmails int     `json:"overhead_emails"`
	OverheadRate   float64 `json:"overhead_rate"`

	// AttachmentBytes is the size of the attachment of the footprint
	// scenario's large email.
	AttachmentBytes int `json:"attachment_bytes"`
	// IdleSettle is how long the service idles before its RSS is read.
	IdleSettle time.Duration `json:"idle_settle_ns"`
}

// DefaultParams returns the figures the issue names.
func DefaultParams() Params {
	return Params{
		GraphLatency: 120 * time.Millisecond, ArcherLatency: 250 * time.Millisecond,
		IntakeRate: 200, IntakeDuration: 30 * time.Second,
		BurstEmails: 2000, BurstArrival: time.Minute, BurstGoal: 2 * time.Minute,
		BurstWindow: 30 * time.Second, BurstWorkers: 16,
		OverheadEmails: 100, OverheadRate: 4,
		AttachmentBytes: 25 << 20, IdleSettle: 2 * time.Second,
	}
}

// SmokeParams returns a run of every scenario that takes seconds.
func SmokeParams() Params {
	return Params{
		GraphLatency: 5 * time.Millisecond, ArcherLatency: 10 * time.Millisecond,
		IntakeRate: 50, IntakeDuration: time.Second,
		BurstEmails: 20, BurstArrival: time.Second, BurstGoal: 3 * time.Second,
		BurstWindow: 15 * time.Second, BurstWorkers: 8,
		OverheadEmails: 5, OverheadRate: 10,
		AttachmentBytes: 1 << 20, IdleSettle: 200 * time.Millisecond,
	}
}

// Validate rejects parameters no scenario can run with.
func (p Params) Validate() error {
	var bad []string
	if p.GraphLatency < 0 || p.ArcherLatency < 0 {
		bad = append(bad, "latencies must not be negative")
	}
	if p.IntakeRate <= 0 || p.IntakeDuration <= 0 {
		bad = append(bad, "intake rate and duration must be positive")
	}
	if p.BurstEmails <= 0 || p.BurstArrival <= 0 || p.BurstGoal <= 0 || p.BurstWindow <= 0 || p.BurstWorkers <= 0 {
		bad = append(bad, "burst emails, arrival, goal, window and workers must be positive")
	}
	if p.OverheadEmails <= 0 || p.OverheadRate <= 0 {
		bad = append(bad, "overhead emails and rate must be positive")
	}
	if p.AttachmentBytes <= 0 || p.AttachmentBytes > 40<<20 {
		bad = append(bad, "the attachment size must be between 1 byte and 40 MiB")
	}
	if len(bad) > 0 {
		return fmt.Errorf("bench parameters: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Options configures Run.
type Options struct {
	// Params sizes the scenarios; the zero value means DefaultParams.
	Params Params
	// Scenarios selects scenarios by name; empty runs all of them.
	Scenarios []string
	// Dir holds the state of each scenario's service; a temporary
	// directory (removed afterwards) when empty.
	Dir string
	// ServiceCommand, when set, starts the service as a child process for
	// the footprint scenario (for example the mail2archer binary and
	// "serve"), so its memory is measured alone. Without it the footprint
	// is measured in this process and labelled "service + simulators".
	ServiceCommand []string
	// Progress receives one line as each scenario starts and ends.
	Progress io.Writer
	// DatabaseURL, when set, names a PostgreSQL server: each scenario's
	// service then runs on a database of its own created there (and
	// dropped afterwards) instead of a SQLite file. The role needs
	// CREATEDB.
	DatabaseURL string
}

// Run runs the selected scenarios one after the other, each against a
// freshly started service, and returns their figures. A failing scenario is
// recorded in its result and the others still run; Run returns an error
// only for bad options or a cancelled context.
func Run(ctx context.Context, opts Options) (*Report, error) {
	p := opts.Params
	if p == (Params{}) {
		p = DefaultParams()
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	names := opts.Scenarios
	if len(names) == 0 {
		names = Scenarios()
	}
	for _, n := range names {
		if !slices.Contains(Scenarios(), n) {
			return nil, fmt.Errorf("%w %q (known: %s)", errUnknownScenario, n, strings.Join(Scenarios(), ", "))
		}
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "mail2archer-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer func() { _ = os.RemoveAll(d) }()
		dir = d
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &Report{Version: ReportVersion, Started: time.Now().UTC(), Host: thisHost(), Params: p}
	start := time.Now()
	r := &runner{p: p, dir: dir, serviceCmd: opts.ServiceCommand, progress: progress, databaseURL: opts.DatabaseURL}
	for _, name := range Scenarios() {
		if !slices.Contains(names, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("bench: %w", err)
		}
		_, _ = fmt.Fprintf(progress, "bench: %s ...\n", name)
		t0 := time.Now()
		res := ScenarioResult{Name: name}
		var err error
		switch name {
		case ScenarioIntake:
			err = r.intake(ctx, &res)
		case ScenarioBurst:
			err = r.burst(ctx, &res)
		case ScenarioOverhead:
			err = r.overhead(ctx, &res)
		case ScenarioFootprint:
			err = r.footprint(ctx, &res)
		}
		if err != nil {
			res.Error = err.Error()
			_, _ = fmt.Fprintf(progress, "bench: %s failed after %s: %v\n", name, time.Since(t0).Round(time.Millisecond), err)
		} else {
			_, _ = fmt.Fprintf(progress, "bench: %s done in %s\n", name, time.Since(t0).Round(time.Millisecond))
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	rep.Duration = time.Since(start).Seconds()
	return rep, nil
}

// runner carries what every scenario needs.
type runner struct {
	p           Params
	dir         string
	serviceCmd  []string
	progress    io.Writer
	seq         int
	databaseURL string
}

// stateDir returns a fresh directory for one scenario's service.
func (r *runner) stateDir(name string) (string, error) {
	r.seq++
	d := fmt.Sprintf("%s/%02d-%s", r.dir, r.seq, name)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return d, nil
}
