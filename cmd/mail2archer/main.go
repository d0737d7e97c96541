// Command mail2archer turns every email reported to a Microsoft 365 phishing
// mailbox into a Security Incident record in Archer IRM.
//
// Usage:
//
//	mail2archer [serve]                      run the service (the default)
//	mail2archer check                        check the configuration against Graph and Archer
//	mail2archer jobs list [--state S]        list queued and ended jobs
//	mail2archer jobs retry ID                run a job again
//	mail2archer replay --mailbox M --message ID
//	mail2archer subscriptions list|sync|delete ID…
//	mail2archer store copy --from sqlite://PATH --to postgres://…
//	mail2archer healthcheck                  GET /healthz on M2A_LISTEN_ADDR; exit 0 if alive
//	mail2archer version                      print the version
//
// Configuration comes from M2A_* environment variables; see the README. The
// sandbox and the bench are the mail2archer-sandbox command.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	rest := []string{}
	if len(args) > 1 {
		rest = args[1:]
	}
	switch cmd {
	case "serve":
		return serve(stderr)
	case "check":
		return check(stdout, stderr)
	case "sandbox", "bench":
		_, _ = fmt.Fprintf(stderr, "%s is the mail2archer-sandbox command, built beside this one by go build -o bin/ ./cmd/...\n", cmd)
		return 2
	case "jobs":
		return jobsCmd(rest, stdout, stderr)
	case "replay":
		return replayCmd(rest, stdout, stderr)
	case "subscriptions":
		return subscriptionsCmd(rest, stdout, stderr)
	case "store":
		return storeCmd(rest, stdout, stderr)
	case "healthcheck":
		return healthcheck(stderr)
	case "version":
		_, _ = fmt.Fprintln(stdout, "mail2archer", buildVersion())
		return 0
	case "help", "-h", "--help":
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	default:
		_, _ = fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

const usage = `Usage: mail2archer [command]

Commands:
  serve                         run the service (default)
  check                         check the configuration against Graph and Archer
  jobs list [--state S]         list jobs (available, retryable, cancelled, discarded, ...)
  jobs retry ID                 run a job again now
  replay --mailbox M --message ID
                                process one email again on purpose
  subscriptions list|sync|delete ID...
                                show, reconcile and resync, or delete Graph subscriptions
  store copy --from sqlite://PATH --to postgres://...
                                copy the state to a new PostgreSQL database (stop the service first)
  healthcheck                   check that the local service answers /healthz (exit 0 or 1)
  version                       print the version

Configuration is read from M2A_* environment variables; see the README
and .env.example. The sandbox and the bench are the mail2archer-sandbox
command.
`

func serve(stderr io.Writer) int {
	cfg, err := config.Load()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	limit := setMemoryLimit()
	log.Info().Str("version", buildVersion()).Str("listen_addr", cfg.ListenAddr).
		Str("tenant_id", cfg.TenantID).Stringer("database_url", cfg.DatabaseURL).
		Str("memory_limit", limit).Msg("starting")
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("stopped with errors")
		return 1
	}
	return 0
}

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: above it the garbage collector works harder instead of
// letting the heap grow to twice what is live. With the binary's own pages
// it keeps one large email under 100 MiB resident. It is soft: a heap that
// needs more gets more.
const defaultMemoryLimit = 80 << 20

// setMemoryLimit applies defaultMemoryLimit unless GOMEMLIMIT is set (the
// runtime has then read it; GOMEMLIMIT=off removes the limit), and says
// which applies.
func setMemoryLimit() string {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return "GOMEMLIMIT=" + v
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	return "80MiB (default; set GOMEMLIMIT to change)"
}

// healthcheck asks the local service whether it is alive. It reads only
// M2A_LISTEN_ADDR, so it works in a container whatever else is configured.
func healthcheck(stderr io.Writer) int {
	addr := os.Getenv("M2A_LISTEN_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "M2A_LISTEN_ADDR %q is not host:port\n", addr)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = fmt.Fprintln(stderr, "unhealthy: /healthz answered", resp.Status)
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	console := cfg.LogFormat == "console"
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				console = true
			}
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
