package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mail2archer/mail2archer/internal/bench"
	"github.com/mail2archer/mail2archer/internal/store"
)

func benchCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := bench.DefaultParams()
	smoke := fs.Bool("smoke", false, "run every scenario tiny, in seconds (CI)")
	scenario := fs.String("scenario", "", "run only these scenarios, comma-separated: "+strings.Join(bench.Scenarios(), ", "))
	jsonOut := fs.String("json", "", "write the figures as JSON to `FILE`")
	compare := fs.String("compare", "", "print each figure's ratio to a saved run (`BASELINE.json`)")
	dir := fs.String("dir", "", "directory for the services' state (default: a temporary one, removed afterwards)")
	inProcess := fs.Bool("in-process", false, "measure the footprint in this process instead of a child service process")
	databaseURL := fs.String("database-url", "", "run each scenario's service on a new database of this PostgreSQL server (`postgres://…`, a role with CREATEDB) instead of SQLite")
	service := fs.String("service", "", "the mail2archer binary the footprint runs as a child (default: mail2archer beside this command)")
	graphLat := fs.Duration("graph-latency", d.GraphLatency, "Graph simulator latency per call")
	archerLat := fs.Duration("archer-latency", d.ArcherLatency, "Archer simulator latency per call")
	rate := fs.Int("intake-rate", d.IntakeRate, "intake: notifications per second")
	intakeFor := fs.Duration("intake-duration", d.IntakeDuration, "intake: how long to post notifications")
	emails := fs.Int("burst-emails", d.BurstEmails, "burst: emails arriving at the mailbox")
	arrival := fs.Duration("burst-arrival", d.BurstArrival, "burst: the time within which they arrive")
	workers := fs.Int("burst-workers", d.BurstWorkers, "burst: M2A_WORKERS")
	writeBack := fs.Bool("burst-writeback", d.BurstWriteBack, "burst: keep the category write-back on (one more Graph request per email)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "bench takes no arguments, got %q\n", fs.Args())
		return 2
	}
	p := d
	if *smoke {
		p = bench.SmokeParams()
	}
	// Flags given explicitly override the default or smoke sizes.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "graph-latency":
			p.GraphLatency = *graphLat
		case "archer-latency":
			p.ArcherLatency = *archerLat
		case "intake-rate":
			p.IntakeRate = *rate
		case "intake-duration":
			p.IntakeDuration = *intakeFor
		case "burst-emails":
			p.BurstEmails = *emails
		case "burst-arrival":
			p.BurstArrival = *arrival
		case "burst-workers":
			p.BurstWorkers = *workers
		case "burst-writeback":
			p.BurstWriteBack = *writeBack
		}
	})
	if err := p.Validate(); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	var baseline *bench.Report
	if *compare != "" {
		b, err := bench.ReadReport(*compare)
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 2
		}
		baseline = b
	}
	if *databaseURL != "" && !store.IsPostgres(*databaseURL) {
		_, _ = fmt.Fprintln(stderr, "--database-url takes a postgres:// URL; without it the scenarios run on SQLite")
		return 2
	}
	opts := bench.Options{Params: p, Dir: *dir, Progress: stderr, DatabaseURL: *databaseURL}
	if *scenario != "" {
		for _, s := range strings.Split(*scenario, ",") {
			opts.Scenarios = append(opts.Scenarios, strings.TrimSpace(s))
		}
	}
	if !*inProcess {
		bin := *service
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				_, _ = fmt.Fprintln(stderr, "find the mail2archer binary for the footprint scenario:", err)
				return 1
			}
			bin = filepath.Join(filepath.Dir(exe), "mail2archer")
		}
		if _, err := os.Stat(bin); err != nil {
			_, _ = fmt.Fprintf(stderr, "the service binary %s: %v (build it with go build -o bin/ ./cmd/..., or give --service)\n", bin, err)
			return 2
		}
		opts.ServiceCommand = []string{bin, "serve"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := bench.Run(ctx, opts)
	if err != nil && rep == nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	_, _ = fmt.Fprintln(stdout)
	if werr := rep.WriteTable(stdout, baseline); werr != nil {
		_, _ = fmt.Fprintln(stderr, werr)
		return 1
	}
	if missed := rep.Missed(); len(missed) > 0 {
		_, _ = fmt.Fprintln(stdout, "\nMissed:")
		for _, m := range missed {
			_, _ = fmt.Fprintln(stdout, "  "+m)
		}
	}
	_, _ = fmt.Fprintf(stdout, "\n%d CPUs, %s, bench took %s\n", rep.Host.CPUs, rep.Host.GoVersion, time.Since(start).Round(time.Second))
	if *jsonOut != "" {
		if werr := rep.WriteJSON(*jsonOut); werr != nil {
			_, _ = fmt.Fprintln(stderr, werr)
			return 1
		}
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	for _, s := range rep.Scenarios {
		if s.Error != "" {
			return 1
		}
	}
	return 0
}
