package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/store"
)

// loadQuiet loads the configuration for an operator command; logs go to
// stderr at warn level so the command's own output stays readable.
func loadQuiet(stderr io.Writer) (*config.Config, zerolog.Logger, bool) {
	cfg, err := config.Load()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return nil, zerolog.Nop(), false
	}
	log := newLogger(cfg, stderr).Level(zerolog.WarnLevel)
	return cfg, log, true
}

// openStore opens the state database named by M2A_DATABASE_URL alone: the
// jobs and replay commands need nothing else.
func openStore(ctx context.Context, stderr io.Writer) (*store.Store, bool) {
	dbURL, err := config.LoadDatabaseURL()
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return nil, false
	}
	st, err := store.Open(ctx, dbURL.Reveal(), zerolog.Nop())
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "open the state database:", err)
		return nil, false
	}
	return st, true
}

func check(stdout, stderr io.Writer) int {
	cfg, log, ok := loadQuiet(stderr)
	if !ok {
		_, _ = fmt.Fprintln(stdout, "✘ configuration  fix the variables listed above")
		return 1
	}
	_, _ = fmt.Fprintln(stdout, "✔ configuration")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if !ops.WriteCheck(stdout, ops.Check(ctx, cfg, log, ops.CheckOptions{})) {
		return 1
	}
	return 0
}

func jobsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprintln(stderr, "usage: mail2archer jobs list [--state S] [--limit N] | jobs retry ID")
		return 2
	}
	ctx := context.Background()
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("jobs list", flag.ContinueOnError)
		fs.SetOutput(stderr)
		state := fs.String("state", "", "only jobs in this state (available, scheduled, running, retryable, completed, cancelled, discarded)")
		limit := fs.Int("limit", 50, "at most this many jobs, newest first")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		st, ok := openStore(ctx, stderr)
		if !ok {
			return 1
		}
		defer func() { _ = st.Close() }()
		if err := ops.ListJobs(ctx, st, *state, *limit, stdout); err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case "retry":
		if len(args) != 2 {
			_, _ = fmt.Fprintln(stderr, "usage: mail2archer jobs retry ID")
			return 2
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "%q is not a job id\n", args[1])
			return 2
		}
		st, ok := openStore(ctx, stderr)
		if !ok {
			return 1
		}
		defer func() { _ = st.Close() }()
		if err := ops.RetryJob(ctx, st, id, stdout); err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	_, _ = fmt.Fprintf(stderr, "unknown jobs command %q; use list or retry\n", args[0])
	return 2
}

func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mailbox := fs.String("mailbox", "", "the mailbox the email is in")
	message := fs.String("message", "", "the email's Graph message id (see jobs list)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx := context.Background()
	st, ok := openStore(ctx, stderr)
	if !ok {
		return 1
	}
	defer func() { _ = st.Close() }()
	if err := ops.Replay(ctx, st, *mailbox, *message, stdout); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func subscriptionsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprintln(stderr, ops.SubscriptionsUsage)
		return 2
	}
	cfg, log, ok := loadQuiet(stderr)
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, closeSubs, err := ops.OpenSubscriptions(ctx, cfg, log, nil)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() { _ = closeSubs() }()
	if err := ops.Subscriptions(ctx, m, args, time.Now(), stdout); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// storeCmd runs `mail2archer store copy --from sqlite://… --to postgres://…`,
// the move of an installation's state to PostgreSQL. It needs no other
// configuration: both databases are named on the command line.
func storeCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "copy" {
		_, _ = fmt.Fprintln(stderr, ops.StoreCopyUsage)
		return 2
	}
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the installation's SQLite database, sqlite://PATH (no service may run on it)")
	to := fs.String("to", "", "the new PostgreSQL database, postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *from == "" || *to == "" {
		_, _ = fmt.Fprintln(stderr, ops.StoreCopyUsage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339}).Level(zerolog.WarnLevel).
		With().Timestamp().Logger()
	if err := ops.StoreCopy(ctx, *from, *to, log, stdout); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
