// Package server is mail2archer's HTTP surface: the Microsoft Graph webhook
// and lifecycle endpoints, health, readiness and metrics.
//
// The webhook handlers are thin by design: answer the validation handshake,
// check each notification against the stored subscription, insert the jobs
// in one transaction and answer 202. They make no outbound call, so Graph's
// 3-second budget is spent only on a local database commit.
package server

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/store"
)

// Subscriptions looks up a stored Graph subscription by id. It returns an
// error wrapping store.ErrNotFound for an unknown id.
type Subscriptions interface {
	Subscription(ctx context.Context, id string) (store.Subscription, error)
}

// Enqueuer inserts jobs, all of them or none, in one transaction.
type Enqueuer interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Check is one component of readiness. Fn returns a short detail for
// operators and an error when the component is not ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) (detail string, err error)
}

// Options configures a Server. Subscriptions, Enqueuer and TenantID are
// required.
type Options struct {
	Subscriptions Subscriptions
	Enqueuer      Enqueuer
	// TenantID is the only tenant whose notifications are accepted.
	TenantID string
	// MaxBodyBytes bounds request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// logging the client address.
	TrustedProxies []netip.Prefix
	// Checks are the readiness components reported by /readyz.
	Checks []Check
	// Registerer receives the server's metrics; Gatherer serves /metrics.
	// Both default to a new private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	Logger     zerolog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is the HTTP handler of the service.
type Server struct {
	opts    Options
	metrics *metrics
	router  chi.Router
}

// New builds the handler and registers its metrics.
func New(opts Options) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	if opts.Subscriptions != nil {
		opts.Subscriptions = newSubscriptionCache(opts.Subscriptions, 30*time.Second, opts.Now)
	}
	s := &Server{opts: opts, metrics: m}
	s.router = s.routes()
	return s, nil
}

// ServeHTTP serves every route of the service.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(s.clientIP())
	r.Use(accessLog(s.opts.Logger))
	r.Use(recoverer(s.opts.Logger))
	r.Use(limitBody(s.opts.MaxBodyBytes))
	r.Post("/webhooks/graph", s.handleNotifications)
	r.Post("/webhooks/graph/lifecycle", s.handleLifecycle)
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	gatherer := s.opts.Gatherer
	if gatherer == nil {
		gatherer = prometheus.DefaultGatherer
	}
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
	})
	return r
}

func (s *Server) clientIP() func(http.Handler) http.Handler {
	if len(s.opts.TrustedProxies) == 0 {
		return middleware.ClientIPFromRemoteAddr
	}
	prefixes := make([]string, len(s.opts.TrustedProxies))
	for i, p := range s.opts.TrustedProxies {
		prefixes[i] = p.String()
	}
	return middleware.ClientIPFromXFF(prefixes...)
}
