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
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/pipeline"
	"github.com/mail2archer/mail2archer/internal/server"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// App is one running instance of the service.
type App struct {
	cfg      *config.Config
	log      zerolog.Logger
	store    *store.Store
	graph    *graph.Client
	archer   *archer.Client
	mapping  *incident.Mapping
	compiled atomic.Pointer[incident.Compiled]
	// mapped is closed when the mapping's preflight has passed.
	mapped   chan struct{}
	health   *health.Set
	ready    *prometheus.GaugeVec
	wake     chan struct{}
	opts     Options
	queue    *river.Client[storeTx]
	subs     *subscriptions.Manager
	http     *http.Server
	listener net.Listener
	admin    *http.Server
	adminLn  net.Listener
	started  atomic.Bool
}

// Options are the parts of the service that tests and the sandbox replace;
// the zero value is production.
type Options struct {
	// GraphHTTPClient and ArcherHTTPClient are the parent HTTP clients of
	// the two outside systems (for example trusting a test CA).
	GraphHTTPClient  *http.Client
	ArcherHTTPClient *http.Client
	// RetryPolicy replaces the queue's backoff.
	RetryPolicy river.ClientRetryPolicy
	// JobTimeout bounds one attempt of a message job; default 10 minutes.
	JobTimeout time.Duration
	// Listener and AdminListener, when set, are served instead of
	// listening on M2A_LISTEN_ADDR and M2A_ADMIN_LISTEN_ADDR; the App
	// closes them.
	Listener, AdminListener net.Listener
	// GraphMailboxRPS and GraphMailboxBurst replace the Graph client's
	// per-mailbox token bucket (benchmarks with a time-scaled Graph
	// simulator); zero keeps the client's defaults.
	GraphMailboxRPS   float64
	GraphMailboxBurst int
	// ArcherLoginBackoff replaces the least time between two Archer
	// logins after a refused one (one minute).
	ArcherLoginBackoff time.Duration
	// ArcherCheckEvery replaces the period of the background Archer check
	// (one minute), which runs only when no real traffic reached Archer.
	ArcherCheckEvery time.Duration
	// PreflightRetry replaces the first wait before the mapping preflight
	// is tried again (5 s, doubling to 5 minutes).
	PreflightRetry time.Duration
	// OperatorWait replaces the first wait of a job whose failure needs an
	// operator (one minute, doubling to 15).
	OperatorWait time.Duration
}

// New opens the store (running migrations), builds the Graph and Archer
// clients (without contacting either), reads the mapping file, builds the
// queue and the HTTP server, and binds the listen address, so that Addr is
// known before Run. On error everything opened so far is closed. The
// mapping is resolved against Archer by Run, in the background.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (a *App, err error) {
	a = &App{cfg: cfg, log: log}
	var cleanups []func() error
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				_ = cleanups[i]()
			}
		}
	}()

	a.store, err = store.OpenExclusive(ctx, cfg.DatabaseURL.Reveal(), log.With().Str("component", "store").Logger())
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, a.store.Close)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newQueueCollector(a.store))
	outbound := newOutboundMetrics(reg)

	acfg := archerConfig(cfg, opts.ArcherHTTPClient)
	acfg.WrapTransport = outbound.transport("archer")
	acfg.LoginBackoff = opts.ArcherLoginBackoff
	a.archer, err = archer.New(acfg, log)
	if err != nil {
		return nil, fmt.Errorf("archer client: %w", err)
	}
	ac := a.archer
	cleanups = append(cleanups, func() error { return ac.Close(context.Background()) })
	gcfg := graphConfig(cfg, outbound.wrap("graph", opts.GraphHTTPClient))
	gcfg.MailboxRequestsPerSecond, gcfg.MailboxBurst = opts.GraphMailboxRPS, opts.GraphMailboxBurst
	a.graph, err = graph.New(gcfg, log)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}

	// The mapping file is read now (a file that does not parse stops the
	// start); it is resolved against Archer in the background, so intake
	// never waits for Archer.
	a.mapping, err = incident.Load(cfg.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("M2A_MAPPING_FILE: %w", err)
	}
	a.opts = opts
	a.wake = make(chan struct{}, 1)
	a.mapped = make(chan struct{})
	a.ready = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "m2a_component_ready",
		Help: "1 when a dependency (archer, graph, mapping) works as real traffic and background checks last saw it, 0 when it fails.",
	}, []string{"component"})
	reg.MustRegister(a.ready)
	a.health = health.NewSet(a.componentChanged, componentArcher, componentGraph, componentMapping, componentDatabase)

	pm := pipeline.NewMetrics(reg)
	wb := pipeline.WriteBackOptions{Category: cfg.WritebackCategory, MoveTo: cfg.WritebackMoveTo}
	workers := river.NewWorkers()
	river.AddWorker(workers, pipeline.NewMessageWorker(pipeline.Options{
		Graph: a.graph, Archer: a.archer, Store: a.store, Mapping: a.waitMapping,
		DecideGraph: graph.Decide, DecideArcher: archer.Decide, Health: a.health,
		OperatorWait: opts.OperatorWait, TrustLocalState: cfg.TrustLocalState,
		Email:     email.Options{InternalDomains: cfg.InternalDomains},
		WriteBack: wb, Timeout: opts.JobTimeout, Metrics: pm,
		Logger: log,
	}))
	wbw, err := pipeline.NewWriteBackWorker(a.graph, graph.Decide, wb, pm, log)
	if err != nil {
		return nil, fmt.Errorf("M2A_WRITEBACK_CATEGORY: %w", err)
	}
	river.AddWorker(workers, wbw)
	lifecycle := &lifecycleWorker{}
	river.AddWorker(workers, lifecycle)
	jobTimeout := opts.JobTimeout
	if jobTimeout == 0 {
		jobTimeout = 10 * time.Minute
	}
	retry := opts.RetryPolicy
	if retry == nil {
		retry = &backoff{base: 2 * time.Second, max: 30 * time.Minute}
	}
	a.queue, err = a.store.NewQueue(&river.Config{
		Queues:      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:     workers,
		MaxAttempts: cfg.MaxAttempts,
		RetryPolicy: retry,
		// A job still "running" this long after its timeout belonged to a
		// process that died; make it available again.
		RescueStuckJobsAfter: jobTimeout + time.Minute,
		// The SQLite driver has no LISTEN/NOTIFY: a worker learns of a job
		// inserted by this process after this cooldown (River's default is
		// 100 ms, most of the time from notification to Archer create).
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Logger:            slog.New(zerolog.NewSlogHandler(log.With().Str("component", "queue").Logger().Level(maxLevel(log.GetLevel(), zerolog.WarnLevel)))),
	})
	if err != nil {
		return nil, err
	}

	var srv *server.Server
	a.subs, err = subscriptions.New(subscriptionsConfig(cfg), subsGraph{a.graph},
		subsStore{Store: a.store, changed: func() {
			if srv != nil {
				srv.SubscriptionsChanged()
			}
		}}, resyncQueue{a.queue, a.store},
		subscriptions.Options{Logger: log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	lifecycle.subs = a.subs

	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	srv, err = server.New(server.Options{
		Subscriptions:  a.store,
		Enqueuer:       a.queue,
		TenantID:       cfg.TenantID,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		TrustedProxies: proxies,
		Checks:         a.checks(),
		AdminToken:     cfg.AdminToken.Reveal(),
		Registerer:     reg,
		Gatherer:       reg,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	errorLog := slog.NewLogLogger(zerolog.NewSlogHandler(log.With().Str("component", "http").Logger()), slog.LevelWarn)
	a.http = &http.Server{
		Handler:           srv.Public(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
	a.admin = &http.Server{
		Handler:           srv.Admin(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
	a.listener = opts.Listener
	if a.listener == nil {
		a.listener, err = net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s (M2A_LISTEN_ADDR): %w", cfg.ListenAddr, err)
		}
	}
	ln := a.listener
	cleanups = append(cleanups, ln.Close)
	a.adminLn = opts.AdminListener
	if a.adminLn == nil {
		a.adminLn, err = net.Listen("tcp", cfg.AdminListenAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s (M2A_ADMIN_LISTEN_ADDR): %w", cfg.AdminListenAddr, err)
		}
	}
	if cfg.ArcherAllowHTTP && strings.HasPrefix(strings.ToLower(cfg.ArcherURL), "http://") && !isLoopbackURL(cfg.ArcherURL) {
		log.Warn().Str("archer_url", cfg.ArcherURL).Msg("M2A_ARCHER_ALLOW_HTTP: the Archer API user's password travels in clear to this http:// URL; use https outside tests")
	}
	return a, nil
}

// graphConfig is the Graph client's configuration from the service's.
func graphConfig(cfg *config.Config, hc *http.Client) graph.Config {
	return graph.Config{
		TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
		CertificateFile: cfg.ClientCertificateFile, CertificatePassword: cfg.ClientCertificatePassword.Reveal(),
		BaseURL: cfg.GraphBaseURL, AuthorityHost: cfg.GraphAuthorityHost, HTTPClient: hc,
	}
}

// archerConfig is the Archer client's configuration from the service's.
func archerConfig(cfg *config.Config, hc *http.Client) archer.Config {
	return archer.Config{
		BaseURL: cfg.ArcherURL, APIPrefix: cfg.ArcherAPIPrefix, Instance: cfg.ArcherInstance,
		Username: cfg.ArcherUsername, UserDomain: cfg.ArcherUserDomain, Password: cfg.ArcherPassword.Reveal(),
		CAFile: cfg.ArcherCAFile, Timeout: cfg.ArcherTimeout, HTTPClient: hc,
	}
}

// Archer is the service's Archer client.
func (a *App) Archer() *archer.Client { return a.archer }

// Store is the service's state database.
func (a *App) Store() *store.Store { return a.store }

// Logger is the service's logger.
func (a *App) Logger() zerolog.Logger { return a.log }

// Mapping is the mapping resolved against Archer, or nil until the
// preflight has passed.
func (a *App) Mapping() *incident.Compiled { return a.compiled.Load() }

// Addr is the address of the public listener (the webhooks).
func (a *App) Addr() string { return a.listener.Addr().String() }

// AdminAddr is the address of the admin listener (/readyz, /metrics).
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Run starts the queue and serves HTTP until ctx ends, then shuts down in
// reverse order within the configured shutdown timeout: stop accepting
// requests and finish those in flight, stop the queue (cancelling jobs still
// running at the deadline), close the database. It returns the joined errors
// of the shutdown, or the error that stopped the service early.
func (a *App) Run(ctx context.Context) error {
	if n, err := a.store.ReleaseOrphanedJobs(ctx); err != nil {
		a.log.Error().Err(err).Msg("could not release jobs left running by a previous process; the queue rescues them later")
	} else if n > 0 {
		a.log.Warn().Int("jobs", n).Msg("jobs were running when the service last stopped; they run again now")
	}
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		_ = a.listener.Close()
		_ = a.adminLn.Close()
		_ = a.store.Close()
		return fmt.Errorf("start queue: %w", err)
	}
	a.started.Store(true)
	subsCtx, subsCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer subsCancel()
	subsDone := make(chan error, 1)
	go func() { subsDone <- a.subs.Run(subsCtx) }()
	serveErr := make(chan error, 2)
	go func() { serveErr <- a.http.Serve(a.listener) }()
	go func() { serveErr <- a.admin.Serve(a.adminLn) }()
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgCancel()
	var bg sync.WaitGroup
	bg.Go(func() { a.preflight(bgCtx) })
	bg.Go(func() { a.watchArcher(bgCtx) })
	bg.Go(func() { a.wakeOnRecovery(bgCtx) })
	bg.Go(func() { a.watchDatabase(bgCtx) })
	a.log.Info().Str("addr", a.Addr()).Str("admin_addr", a.AdminAddr()).Str("public_url", a.cfg.PublicURL).Msg("mail2archer is serving")

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
	if err := a.admin.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stop admin http server: %w", err))
	}
	subsCancel()
	bgCancel()
	bg.Wait()
	if err := <-subsDone; err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("stop subscriptions: %w", err))
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
	if err := a.archer.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("archer logout: %w", err))
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
		{Name: componentDatabase, Fn: a.health.Check(componentDatabase, "no write made yet", false)},
		{Name: "queue", Fn: func(ctx context.Context) (string, error) {
			if !a.started.Load() {
				return "queue not started", errors.New("queue not started")
			}
			counts, err := a.store.JobCounts(ctx)
			if err != nil {
				return "", err
			}
			detail := fmt.Sprintf("%d available, %d scheduled, %d running, %d retryable, %d discarded",
				counts["available"], counts["scheduled"], counts["running"], counts["retryable"], counts["discarded"])
			if counts["discarded"] > 0 {
				// Named, not failing: each one is an email that ran out of
				// attempts and waits for an operator's retry or replay.
				res, err := a.queue.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateDiscarded).First(5))
				if err == nil {
					var ids []string
					for _, j := range res.Jobs {
						ids = append(ids, strconv.FormatInt(j.ID, 10))
					}
					detail += fmt.Sprintf(" (discarded jobs %s; see mail2archer jobs list --state discarded)", strings.Join(ids, ", "))
				}
			}
			return detail, nil
		}},
		{Name: "subscriptions", Fn: func(context.Context) (string, error) {
			return a.subs.Summary(), a.subs.Ready()
		}},
		{Name: componentArcher, Fn: a.health.Check(componentArcher, "Archer not contacted yet", false)},
		{Name: componentMapping, Fn: a.health.Check(componentMapping, "the mapping preflight against Archer has not run yet", false)},
		{Name: componentGraph, Fn: a.health.Check(componentGraph, "no message read yet", true)},
	}
}

func maxLevel(a, b zerolog.Level) zerolog.Level {
	if a > b {
		return a
	}
	return b
}

// isLoopbackURL reports whether raw's host is a loopback address or
// localhost: a plain-http request to it never leaves the machine.
func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Hostname(), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.IsLoopback()
}
