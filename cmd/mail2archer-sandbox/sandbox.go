package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

func sandboxCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "deliver" {
		return sandboxDeliver(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("mail2archer-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "sandbox-data", "directory for the sandbox's state (wiped at start)")
	mapping := fs.String("mapping", "", "mapping file to rehearse (default: api/mapping.example.yaml)")
	fixture := fs.String("fixture", "", "Archer schema fixture, JSON (default: the simulator's Security Incidents)")
	listen := fs.String("listen", "127.0.0.1:8080", "the service's public listener (the webhooks)")
	admin := fs.String("admin", "127.0.0.1:9090", "the service's admin listener (the console, /readyz, /metrics)")
	graphAddr := fs.String("graph", "127.0.0.1:8443", "the Graph simulator's address (https)")
	archerAddr := fs.String("archer", "127.0.0.1:8090", "the Archer simulator's address")
	control := fs.String("control", "127.0.0.1:8025", "the sandbox's control address, used by `sandbox deliver`")
	noSamples := fs.Bool("no-samples", false, "do not deliver the shipped sample reports")
	verbose := fs.Bool("v", false, "show the service's logs")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := zerolog.WarnLevel
	if *verbose {
		level = zerolog.InfoLevel
	}
	log := newLogger(stderr, level)
	opts := sandbox.Options{Dir: *dir, MappingFile: *mapping, ListenAddr: *listen, AdminAddr: *admin, GraphAddr: *graphAddr,
		ArcherAddr: *archerAddr, Logger: log}
	if *fixture != "" {
		f, err := archersim.LoadFixture(*fixture)
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 2
		}
		opts.Fixture = f
	}
	if err := wipeSandboxDir(*dir); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	sb, err := sandbox.Start(ctx, opts)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() {
		if err := sb.Stop(); err != nil {
			_, _ = fmt.Fprintln(stderr, "stop:", err)
		}
	}()
	ln, err := net.Listen("tcp", *control)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "control address:", err)
		return 1
	}
	ctl := &http.Server{Handler: sb.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ctl.Serve(ln) }()
	defer func() { _ = ctl.Close() }()

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sb.WaitReady(wctx); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = fmt.Fprintf(stdout, "mail2archer-sandbox ready in %s: Graph and Archer simulators, mailbox %s\n",
		time.Since(start).Round(time.Millisecond), sandbox.Mailbox)
	if !*noSamples {
		samples := sandbox.Samples()
		for _, s := range samples {
			if _, err := sb.Deliver(s.MIME); err != nil {
				_, _ = fmt.Fprintf(stderr, "deliver %s: %v\n", s.Name, err)
				return 1
			}
			_, _ = fmt.Fprintf(stdout, "delivered %s\n", s.Name)
		}
		recs, err := sb.WaitSettled(wctx)
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		inRecords := 0
		for _, r := range recs {
			inRecords += sandbox.Reports(r)
		}
		skipped := ""
		if n := len(samples) - inRecords; n > 0 {
			skipped = fmt.Sprintf(" (%d skipped by a rule)", n)
		}
		_, _ = fmt.Fprintf(stdout, "\n%d reports made %d incidents in Archer%s, %s after start:\n\n", len(samples), len(recs), skipped, time.Since(start).Round(time.Millisecond))
		_ = sandbox.WriteTable(stdout, recs)
		if lines := sb.AckLines(0); len(lines) > 0 {
			_, _ = fmt.Fprintln(stdout)
			for _, l := range lines {
				_, _ = fmt.Fprintln(stdout, l)
			}
		}
	}
	_, _ = fmt.Fprintf(stdout, `
Where to look:
  console       http://%[5]s/   (the operator console: reports, retry, subscriptions)
  webhooks      %[1]s/webhooks/graph   (the public listener: nothing else is served there)
  readiness     http://%[5]s/readyz   (the admin listener)
  metrics       http://%[5]s/metrics
  incidents     %[2]s/sim/records   (JSON: %[2]s/sim/records.json)
  more email    mail2archer-sandbox deliver FILE.eml...   (or POST it to http://%[3]s/deliver)
  a report      mail2archer-sandbox deliver --as-report --reporter alice@contoso.com FILE.eml...
  jobs          M2A_DATABASE_URL=sqlite://%[4]s/mail2archer.db bin/mail2archer jobs list
Press Ctrl-C to stop.
`, sb.ServiceURL(), sb.ArcherURL, *control, *dir, sb.App.AdminAddr())
	watchRecords(ctx, stdout, sb.Incidents, sb.AckLines, 250*time.Millisecond)
	_, _ = fmt.Fprintln(stdout, "\nstopping")
	return 0
}

// watchRecords prints one line per incident record created or updated
// (sandbox.Watcher) and per acknowledgment sent, looking every interval,
// until ctx ends.
func watchRecords(ctx context.Context, w io.Writer, incidents func() []archersim.Record, acks func(from int) []string, every time.Duration) {
	watcher := sandbox.NewWatcher(incidents())
	seen := len(acks(0))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, line := range watcher.Changes(incidents()) {
			_, _ = fmt.Fprintln(w, line)
		}
		lines := acks(seen)
		seen += len(lines)
		for _, line := range lines {
			_, _ = fmt.Fprintln(w, line)
		}
	}
}

func sandboxDeliver(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mail2archer-sandbox deliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "127.0.0.1:8025", "the running sandbox's control address")
	asReport := fs.Bool("as-report", false, "wrap each email as a Report Message report (the email attached as message/rfc822) from --reporter to "+sandbox.Mailbox)
	reporter := fs.String("reporter", sandbox.DefaultReporter, "with --as-report: who reports, an address with or without a display name")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	reporterSet := false
	fs.Visit(func(f *flag.Flag) { reporterSet = reporterSet || f.Name == "reporter" })
	switch {
	case fs.NArg() == 0:
		_, _ = fmt.Fprintln(stderr, "usage: mail2archer-sandbox deliver [--control ADDR] [--as-report [--reporter ADDR]] FILE.eml...")
		return 2
	case reporterSet && !*asReport:
		_, _ = fmt.Fprintln(stderr, "--reporter applies to --as-report only: add --as-report to deliver the emails as reports")
		return 2
	}
	limit := int64(sandbox.MaxDelivered)
	if *asReport {
		limit = sandbox.MaxWrappedOriginal
		// Refuse a bad reporter once, before any file is read.
		if _, err := sandbox.ParseReporter(*reporter); err != nil {
			_, _ = fmt.Fprintf(stderr, "--reporter: %v\n", err)
			return 2
		}
	}
	code := 0
	for _, f := range fs.Args() {
		b, err := readEmail(f, limit)
		if err == nil && *asReport {
			b, err = sandbox.WrapAsReport(b, *reporter, time.Now())
		}
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "%s: %v\n", f, err)
			code = 1
			continue
		}
		id, err := sandbox.DeliverTo(context.Background(), *control, b)
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "%s: %v\n", f, err)
			code = 1
			continue
		}
		if *asReport {
			_, _ = fmt.Fprintf(stdout, "delivered %s as %s, reported by %s\n", f, id, *reporter)
			continue
		}
		_, _ = fmt.Fprintf(stdout, "delivered %s as %s\n", f, id)
	}
	return code
}

// readEmail reads an email file of at most limit bytes.
func readEmail(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) == 0:
		return nil, errors.New("empty file")
	case int64(len(b)) > limit:
		return nil, fmt.Errorf("larger than %d MiB", limit>>20)
	}
	return b, nil
}

// wipeSandboxDir empties the sandbox's state directory from an earlier run.
// It refuses a directory that holds anything but a sandbox's files, so a
// mistyped --dir never deletes someone's data.
func wipeSandboxDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		switch e.Name() {
		case "mail2archer.db", "mail2archer.db-wal", "mail2archer.db-shm", "mail2archer.db.lock", "mapping.yaml":
		default:
			return fmt.Errorf("--dir %s holds %s, which is not a sandbox's; choose an empty or new directory", dir, e.Name())
		}
	}
	return os.RemoveAll(dir)
}
