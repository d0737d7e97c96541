// Package app assembles the service from its parts — the state database,
// the clients of Graph and Archer, the queue and its workers, the
// subscriptions manager, the background watches and the two HTTP
// listeners — in one straight line, and runs it until its context ends. It
// holds no behaviour of its own: the command line, the sandbox and the
// end-to-end tests start the service through it.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/clients"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/console"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/metrics"
	"github.com/mail2archer/mail2archer/internal/pipeline"
	"github.com/mail2archer/mail2archer/internal/server"
	"github.com/mail2archer/mail2archer/internal/spool"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/internal/watch"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// App is one running instance of the service.
type App struct {
	cfg      *config.Config
	log      zerolog.Logger
	opts     Options
	store    *store.Store
	archer   *archer.Client
	health   *health.Set
	mapper   *watch.Mapper
	waker    *watch.Waker
	queue    store.Queue
	spool    *spool.Dir
	subs     *subscriptions.Manager
	http     *http.Server
	admin    *http.Server
	listener net.Listener
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
	// RetryPolicy replaces the queue's backoff (pipeline.DefaultBackoff).
	RetryPolicy river.ClientRetryPolicy
	// Now replaces the workers' clock (tests of campaign windows).
	Now func() time.Time
	// JobTimeout replaces M2A_JOB_TIMEOUT, the bound of one attempt.
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

// New opens the state database (running migrations), builds the Graph and
// Archer clients (without contacting either), reads the mapping file, and
// builds the queue, the subscriptions manager and the two HTTP servers,
// binding their addresses, so that Addr and AdminAddr are known before Run.
// On error everything opened so far is closed. The mapping is resolved
// against Archer by Run, in the background: intake never waits for Archer.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (a *App, err error) {
	a = &App{cfg: cfg, log: log, opts: opts}
	var cleanups []func() error
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				_ = cleanups[i]()
			}
		}
	}()

	a.store, err = store.OpenService(ctx, cfg.DatabaseURL.Reveal(), log.With().Str("component", "store").Logger())
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, a.store.Close)
	mimeSpool, err := openSpool(a.store, log)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, mimeSpool.Close)
	a.spool = mimeSpool
	set := metrics.NewSet()
	outbound := outboundMetrics{set}

	acfg := clients.Archer(cfg, opts.ArcherHTTPClient)
	acfg.WrapTransport, acfg.LoginBackoff = outbound.transport("archer"), opts.ArcherLoginBackoff
	if a.archer, err = archer.New(acfg, log); err != nil {
		return nil, fmt.Errorf("archer client: %w", err)
	}
	ac := a.archer
	cleanups = append(cleanups, func() error { return ac.Close(context.Background()) })
	gcfg := clients.Graph(cfg, outbound.wrap("graph", opts.GraphHTTPClient))
	gcfg.MailboxRequestsPerSecond, gcfg.MailboxBurst = opts.GraphMailboxRPS, opts.GraphMailboxBurst
	gc, err := graph.New(gcfg, log)
	if err != nil {
		return nil, fmt.Errorf("graph client: %w", err)
	}
	// A mapping file that does not parse stops the start; resolving it
	// against Archer happens in Run.
	mapping, err := incident.Load(cfg.MappingFile)
	if err != nil {
		return nil, fmt.Errorf("M2A_MAPPING_FILE: %w", err)
	}

	// Readiness reads the dependencies' state; a recovery wakes the jobs
	// that wait for it (in the queue built below, before Run).
	a.waker = watch.NewWaker(func(ctx context.Context, only func(string) bool) (int, error) {
		return pipeline.WakeWaiting(ctx, a.queue, only)
	}, func(c string) bool { return a.health.Working(c) }, log)
	a.health = health.NewSet(watch.OnChange(log, func(c string, v float64) { set.Gauge("m2a_component_ready", "component", c).Set(v) }, a.waker),
		watch.Archer, watch.Graph, watch.Mapping, watch.Database)
	a.mapper = watch.NewMapper(mapping, a.archer, a.health, cfg.ArcherUsername, opts.PreflightRetry, log)

	// Resyncs queue through an insert-only client, so the manager exists
	// before the workers that need it.
	inserter, err := a.store.NewQueue(&river.Config{})
	if err != nil {
		return nil, err
	}
	index := server.NewSubscriptionIndex(a.store)
	a.subs, err = subscriptions.New(clients.Subscriptions(cfg), gc, a.store, pipeline.ResyncQueue{Jobs: inserter, Store: a.store},
		subscriptions.Options{
			Logger:  slog.New(zerolog.NewSlogHandler(log.With().Str("component", "subscriptions").Logger())),
			OnEvent: subscriptionEvents(set, index),
		})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	registerSubscriptionExpiry(set, a.subs)

	pm := pipeline.NewMetrics(set)
	wb := pipeline.WriteBackOptions{Category: cfg.WritebackCategory, MoveTo: cfg.WritebackMoveTo}
	workers := river.NewWorkers()
	river.AddWorker(workers, pipeline.NewMessageWorker(pipeline.Options{
		Graph: pipelineGraph{gc}, Spool: mimeSpool, Archer: a.archer, Store: a.store, Campaigns: a.store, Mapping: a.mapper.Compiled,
		DecideGraph: graph.Decide, DecideArcher: archer.Decide, Health: a.health,
		OperatorWait: opts.OperatorWait, TrustLocalState: cfg.TrustLocalState,
		Email: email.Options{InternalDomains: cfg.InternalDomains}, Mailboxes: cfg.Mailboxes,
		WriteBack: wb, Timeout: jobTimeout(cfg, opts), Metrics: pm, Logger: log, Now: opts.Now,
	}))
	wbw, err := pipeline.NewWriteBackWorker(pipelineGraph{gc}, graph.Decide, wb, pm, log)
	if err != nil {
		return nil, fmt.Errorf("M2A_WRITEBACK_CATEGORY: %w", err)
	}
	river.AddWorker(workers, wbw)
	river.AddWorker(workers, pipeline.NewAckWorker(pipelineGraph{gc}, graph.Decide, pm, log))
	river.AddWorker(workers, pipeline.NewLifecycleWorker(a.subs))
	a.queue, err = a.store.NewQueue(queueConfig(cfg, a.store, opts, workers, log))
	if err != nil {
		return nil, err
	}
	pipeline.RegisterQueueDepth(set, a.store)

	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Options{
		Subscriptions: index, Enqueuer: a.queue, TenantID: cfg.TenantID,
		MaxBodyBytes: cfg.MaxBodyBytes, TrustedProxies: proxies, Checks: a.checks(),
		AdminToken: cfg.AdminToken.Reveal(), Metrics: set, Logger: log,
		Console: console.New(console.Options{Store: a.store, Queue: a.queue, Subscriptions: a.subs,
			Module: a.module, ArcherURL: cfg.ArcherURL}),
	})
	if err != nil {
		return nil, err
	}
	a.http, a.admin = httpServer(cfg, srv.Public(), log), httpServer(cfg, srv.Admin(), log)
	if a.listener, err = listen(opts.Listener, cfg.ListenAddr, "M2A_LISTEN_ADDR"); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, a.listener.Close)
	if a.adminLn, err = listen(opts.AdminListener, cfg.AdminListenAddr, "M2A_ADMIN_LISTEN_ADDR"); err != nil {
		return nil, err
	}
	if cfg.ArcherAllowHTTP && strings.HasPrefix(strings.ToLower(cfg.ArcherURL), "http://") && !isLoopbackURL(cfg.ArcherURL) {
		log.Warn().Str("archer_url", cfg.ArcherURL).Msg("M2A_ARCHER_ALLOW_HTTP: the Archer API user's password travels in clear to this http:// URL; use https outside tests")
	}
	return a, nil
}

// openSpool opens where the MIME of large messages waits while its job
// runs. On SQLite it is the spool directory beside the database, which the
// database's lock makes this process's alone, so what a killed process left
// there goes. On PostgreSQL, where replicas may share a host, each process
// has a directory of its own in the temporary directory, and removes those
// of replicas that are gone.
func openSpool(st *store.Store, log zerolog.Logger) (*spool.Dir, error) {
	var d *spool.Dir
	var leftovers int
	var err error
	if dir := st.Dir(); dir != "" {
		d, leftovers, err = spool.Open(filepath.Join(dir, "spool"), spool.DefaultMemory)
	} else {
		d, leftovers, err = spool.OpenInShared(os.TempDir(), spool.DefaultMemory)
	}
	if err != nil {
		return nil, err
	}
	if leftovers > 0 {
		log.Info().Int("files", leftovers).Str("dir", d.Path()).Msg("removed spooled messages left by an interrupted run; their jobs run again")
	}
	return d, nil
}

// fetchCooldown is the least time between two fetches of new jobs. On
// PostgreSQL each insert notifies the workers, and a short cooldown lets the
// next job start within a millisecond or two; on SQLite the fetches also
// poll, so a longer one saves queries.
func fetchCooldown(st *store.Store) time.Duration {
	if st.Postgres() {
		return time.Millisecond
	}
	return 5 * time.Millisecond
}

// jobTimeout bounds one attempt: M2A_JOB_TIMEOUT unless the options say.
func jobTimeout(cfg *config.Config, opts Options) time.Duration {
	return cmp.Or(opts.JobTimeout, cfg.JobTimeout, 10*time.Minute)
}

// endedJobRetention is how long the queue keeps a job that ended without
// success, for `jobs list` and the console.
const endedJobRetention = 7 * 24 * time.Hour

// rescueMargin is how long past its timeout a job must still be marked
// running before River's rescuer takes it for a dead process's.
const rescueMargin = 30 * time.Second

// queueConfig is the queue's configuration: the workers, the retry policy
// and how fast a new job is picked up.
func queueConfig(cfg *config.Config, st *store.Store, opts Options, workers *river.Workers, log zerolog.Logger) *river.Config {
	jobTimeout := jobTimeout(cfg, opts)
	retry := opts.RetryPolicy
	if retry == nil {
		retry = pipeline.DefaultBackoff
	}
	return &river.Config{
		Queues:      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:     workers,
		MaxAttempts: cfg.MaxAttempts,
		RetryPolicy: retry,
		// A job still "running" this long belonged to a process that died
		// (a killed replica on PostgreSQL): River's rescuer, which runs every
		// 30 s, retries it. A live attempt ends at its timeout.
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: jobTimeout + rescueMargin,
		// The SQLite driver has no LISTEN/NOTIFY: a worker learns of a job
		// inserted by this process after this cooldown (River's default is
		// 100 ms, most of the time from notification to Archer create). On
		// PostgreSQL a notification wakes the workers at once.
		FetchCooldown: fetchCooldown(st),
		// A cancelled job is a report that ended without a record (Archer
		// refused it, …) and waits for an operator: keep it as long as a
		// discarded one (River's default is a day, a weekend too short).
		CancelledJobRetentionPeriod: endedJobRetention,
		DiscardedJobRetentionPeriod: endedJobRetention,
		FetchPollInterval:           50 * time.Millisecond,
		Logger: slog.New(zerolog.NewSlogHandler(log.With().Str("component", "queue").Logger().
			Level(max(log.GetLevel(), zerolog.WarnLevel)))),
	}
}

// httpServer serves h with the configured timeouts.
func httpServer(cfg *config.Config, h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(zerolog.NewSlogHandler(log.With().Str("component", "http").Logger()), slog.LevelWarn),
	}
}

// listen returns ln, or a listener on addr.
func listen(ln net.Listener, addr, variable string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, variable, err)
	}
	return ln, nil
}

// module is the Archer application of the incident records, 0 until the
// mapping is resolved.
func (a *App) module() int64 {
	if c := a.mapper.Current(); c != nil && c.App != nil {
		return c.App.ID
	}
	return 0
}

// Store is the service's state database.
func (a *App) Store() *store.Store { return a.store }

// Logger is the service's logger.
func (a *App) Logger() zerolog.Logger { return a.log }

// Mapping is the mapping resolved against Archer, or nil until the
// preflight has passed.
func (a *App) Mapping() *incident.Compiled { return a.mapper.Current() }

// Subscribe delivers the queue's job events (tests and benchmarks wait on
// them); call the returned function to stop.
func (a *App) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return a.queue.Subscribe(kinds...)
}

// Addr is the address of the public listener (the webhooks).
func (a *App) Addr() string { return a.listener.Addr().String() }

// SpoolDir is the directory where the MIME of large messages waits while
// their jobs run.
func (a *App) SpoolDir() string { return a.spool.Path() }

// AdminAddr is the address of the admin listener (/readyz, /metrics).
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Run starts the queue, the subscriptions manager, the background watches
// and both listeners, and serves until ctx ends; then it shuts down in
// reverse order within the configured shutdown timeout: stop accepting
// requests and finish those in flight, stop the manager and the watches,
// stop the queue (cancelling jobs still running at the deadline), log out of
// Archer, close the database. It returns the joined errors of the shutdown,
// or the error that stopped the service early.
func (a *App) Run(ctx context.Context) error {
	if n, err := a.store.ReleaseOrphanedJobs(ctx); err != nil {
		a.log.Error().Err(err).Msg("could not release jobs left running by a previous process; the queue rescues them later")
	} else if n > 0 {
		a.log.Warn().Int("jobs", n).Msg("jobs were running when the service last stopped; they run again now")
	}
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		_ = a.listener.Close()
		_ = a.adminLn.Close()
		_ = a.spool.Close()
		_ = a.store.Close()
		return fmt.Errorf("start queue: %w", err)
	}
	a.started.Store(true)
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgCancel()
	var bg sync.WaitGroup
	subsDone := make(chan error, 1)
	bg.Go(func() { subsDone <- a.subs.Run(bgCtx) })
	bg.Go(func() { a.mapper.Run(bgCtx) })
	bg.Go(func() { watch.ProbeArcher(bgCtx, a.archer, a.health, a.cfg.ArcherUsername, a.opts.ArcherCheckEvery) })
	bg.Go(func() { watch.ProbeDatabase(bgCtx, a.store, a.health, 0) })
	bg.Go(func() { a.waker.Run(bgCtx, a.opts.ArcherCheckEvery) })
	serveErr := make(chan error, 2)
	go func() { serveErr <- a.http.Serve(a.listener) }()
	go func() { serveErr <- a.admin.Serve(a.adminLn) }()
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
	if err := a.spool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("remove the spool directory: %w", err))
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

// checks are the components of readiness, read from state.
func (a *App) checks() []server.Check {
	return []server.Check{
		{Name: watch.Database, Fn: a.health.Check(watch.Database, "no write made yet", false)},
		{Name: "queue", Fn: func(ctx context.Context) (string, error) {
			if !a.started.Load() {
				return "queue not started", errors.New("queue not started")
			}
			return pipeline.QueueState(ctx, a.store, a.queue)
		}},
		{Name: "subscriptions", Fn: func(context.Context) (string, error) {
			return a.subs.Summary(), a.subs.Ready()
		}},
		{Name: watch.Archer, Fn: a.health.Check(watch.Archer, "Archer not contacted yet", false)},
		{Name: watch.Mapping, Fn: a.health.Check(watch.Mapping, "the mapping preflight against Archer has not run yet", false)},
		{Name: watch.Graph, Fn: a.health.Check(watch.Graph, "no message read yet", true)},
	}
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
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.IsLoopback()
}
