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
	admin := fs.String("admin", "127.0.0.1:9090", "the service's admin listener (/readyz, /metrics)")
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
		recs, err := sb.WaitRecords(wctx, len(samples))
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		_, _ = fmt.Fprintf(stdout, "\n%d incidents created in Archer, %s after start:\n\n", len(recs), time.Since(start).Round(time.Millisecond))
		_ = sandbox.WriteTable(stdout, recs)
	}
	_, _ = fmt.Fprintf(stdout, `
Where to look:
  webhooks      %[1]s/webhooks/graph   (the public listener: nothing else is served there)
  readiness     http://%[5]s/readyz   (the admin listener)
  metrics       http://%[5]s/metrics
  incidents     %[2]s/sim/records   (JSON: %[2]s/sim/records.json)
  more email    mail2archer-sandbox deliver FILE.eml...   (or POST it to http://%[3]s/deliver)
  jobs          M2A_DATABASE_URL=sqlite://%[4]s/mail2archer.db bin/mail2archer jobs list
Press Ctrl-C to stop.
`, sb.ServiceURL(), sb.ArcherURL, *control, *dir, sb.App.AdminAddr())
	known := len(sb.Archer.Records())
	for {
		select {
		case <-ctx.Done():
			_, _ = fmt.Fprintln(stdout, "\nstopping")
			return 0
		case <-time.After(250 * time.Millisecond):
		}
		if recs := sb.Archer.Records(); len(recs) > known {
			_ = sandbox.WriteTable(stdout, recs[known:])
			known = len(recs)
		}
	}
}

func sandboxDeliver(files []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mail2archer-sandbox deliver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	control := fs.String("control", "127.0.0.1:8025", "the running sandbox's control address")
	if err := fs.Parse(files); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		_, _ = fmt.Fprintln(stderr, "usage: mail2archer-sandbox deliver [--control ADDR] FILE.eml...")
		return 2
	}
	code := 0
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err == nil && len(b) == 0 {
			err = errors.New("empty file")
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
		_, _ = fmt.Fprintf(stdout, "delivered %s as %s\n", f, id)
	}
	return code
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
