// Package app assembles the service from its parts — store, queue, HTTP
// server — in one straight line, and runs it until its context ends. The
// command line and the end-to-end tests both start the service through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/server"
	"github.com/mail2archer/mail2archer/internal/store"
)

// App is one running instance of the service.
type App struct {
	cfg      *config.Config
	log      zerolog.Logger
	store    *store.Store
	queue    *river.Client[storeTx]
	http     *http.Server
	listener net.Listener
	started  atomic.Bool
}

// New opens the store (running migrations), builds the queue and the HTTP
// server, and binds the listen address, so that Addr is known before Run.
// On error everything opened so far is closed.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger) (a *App, err error) {
	a = &App{cfg: cfg, log: log}
	var cleanups []func() error
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				_ = cleanups[i]()
			}
		}
	}()

	a.store, err = store.Open(ctx, cfg.DatabaseURL.Reveal(), log.With().Str("component", "store").Logger())
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, a.store.Close)

	workers := river.NewWorkers()
	registerWorkers(workers, log)
	a.queue, err = a.store.NewQueue(&river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers: workers,
		Logger:  slog.New(zerolog.NewSlogHandler(log.With().Str("component", "queue").Logger().Level(maxLevel(log.GetLevel(), zerolog.WarnLevel)))),
	})
	if err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newQueueCollector(a.store))
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Options{
		Subscriptions:  a.store,
		Enqueuer:       a.queue,
		TenantID:       cfg.TenantID,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		TrustedProxies: proxies,
		Checks:         a.checks(),
		Registerer:     reg,
		Gatherer:       reg,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	a.http = &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(zerolog.NewSlogHandler(log.With().Str("component", "http").Logger()), slog.LevelWarn),
	}
	a.listener, err = net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (M2A_LISTEN_ADDR): %w", cfg.ListenAddr, err)
	}
	return a, nil
}

// Addr is the address the server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Run starts the queue and serves HTTP until ctx ends, then shuts down in
// reverse order within the configured shutdown timeout: stop accepting
// requests and finish those in flight, stop the queue (cancelling jobs still
// running at the deadline), close the database. It returns the joined errors
// of the shutdown, or the error that stopped the service early.
func (a *App) Run(ctx context.Context) error {
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		_ = a.listener.Close()
		_ = a.store.Close()
		return fmt.Errorf("start queue: %w", err)
	}
	a.started.Store(true)
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.http.Serve(a.listener) }()
	a.log.Info().Str("addr", a.Addr()).Str("public_url", a.cfg.PublicURL).Msg("mail2archer is serving")

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info().Msg("shutting down")
	case err := <-serveErr:
		runErr = fmt.Errorf("http server stopped: %w", err)
	}

	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := a.http.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stop http server: %w", err))
	}
	a.started.Store(false)
	// Give running jobs most of the remaining time, then cancel them; a
	// cancelled job is retried after the restart.
	stopCtx, stopCancel := context.WithTimeout(sctx, a.cfg.ShutdownTimeout*3/4)
	defer stopCancel()
	if err := a.queue.Stop(stopCtx); err != nil {
		if err := a.queue.StopAndCancel(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop queue: %w", err))
		}
	}
	if err := a.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	if runErr != nil {
		errs = append([]error{runErr}, errs...)
	}
	err := errors.Join(errs...)
	if err == nil {
		a.log.Info().Msg("stopped cleanly")
	}
	return err
}

func (a *App) checks() []server.Check {
	return []server.Check{
		{Name: "database", Fn: func(ctx context.Context) (string, error) {
			if err := a.store.Ping(ctx); err != nil {
				return "", err
			}
			return "sqlite reachable", nil
		}},
		{Name: "queue", Fn: func(ctx context.Context) (string, error) {
			if !a.started.Load() {
				return "queue not started", errors.New("queue not started")
			}
			counts, err := a.store.JobCounts(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d available, %d running, %d retryable, %d discarded",
				counts["available"], counts["running"], counts["retryable"], counts["discarded"]), nil
		}},
	}
}

func maxLevel(a, b zerolog.Level) zerolog.Level {
	if a > b {
		return a
	}
	return b
}
