// Package server is mail2archer's HTTP surface, on two listeners.
//
// The public listener serves only what Microsoft Graph needs — POST
// /webhooks/graph and POST /webhooks/graph/lifecycle — and GET /healthz,
// which says nothing but "alive". The admin listener serves /readyz,
// /metrics, the operator console (a page at / and its JSON API under
// /api/v1/); when it is bound to anything but loopback every admin route
// asks for the admin token.
//
// The webhook handlers are thin by design: answer the validation handshake,
// check each notification against the subscriptions held in memory, insert
// the jobs in one transaction and answer 202. They make no outbound call,
// and a forged item costs no database read.
package server

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/metrics"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// SubscriptionSource lists the stored Graph subscriptions.
type SubscriptionSource interface {
	Subscriptions(ctx context.Context) ([]subscriptions.Record, error)
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

// DefaultMaxBatchItems is the most notification items one request may
// carry when Options.MaxBatchItems is zero. Graph documents no maximum and
// sends small batches; a request with more items is refused whole (413).
const DefaultMaxBatchItems = 1000

// Options configures a Server. Subscriptions, Enqueuer and TenantID are
// required for the webhooks.
type Options struct {
	// Subscriptions are the stored subscriptions notifications are checked
	// against.
	Subscriptions *SubscriptionIndex
	Enqueuer      Enqueuer
	// TenantID is the only tenant whose notifications are accepted.
	TenantID string
	// MaxBodyBytes bounds request bodies (413 beyond). Default 1 MiB.
	MaxBodyBytes int64
	// MaxBatchItems bounds the items of one notification request (413
	// beyond). Default DefaultMaxBatchItems.
	MaxBatchItems int
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// logging the client address.
	TrustedProxies []netip.Prefix
	// Checks are the readiness components reported by /readyz.
	Checks []Check
	// AdminToken, when set, is required as a bearer token by every admin
	// route.
	AdminToken string
	// Console answers the operator console's API on the admin listener;
	// nil answers 503 there.
	Console Console
	// Metrics receives the server's metrics, and /metrics serves the whole
	// set; default a new private set.
	Metrics *metrics.Set
	Logger  zerolog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server holds the handlers of both listeners.
type Server struct {
	opts    Options
	metrics webhookMetrics
	subs    *SubscriptionIndex
	drops   *dropLog
	public  chi.Router
	admin   chi.Router
}

// New builds the handlers and their metrics.
func New(opts Options) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxBatchItems <= 0 {
		opts.MaxBatchItems = DefaultMaxBatchItems
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	s := &Server{opts: opts, metrics: webhookMetrics{opts.Metrics}, drops: newDropLog(opts.Logger, opts.Now)}
	if opts.Subscriptions != nil {
		s.subs = opts.Subscriptions
		s.subs.now = opts.Now
	}
	s.public = s.publicRoutes()
	s.admin = s.adminRoutes()
	return s, nil
}

// Public is the handler of the public listener: the webhooks and /healthz.
func (s *Server) Public() http.Handler { return s.public }

// Admin is the handler of the admin listener: /readyz, /metrics and the
// operator routes, behind the admin token when one is set.
func (s *Server) Admin() http.Handler { return s.admin }

func (s *Server) common(r chi.Router, listener string) {
	r.Use(requestID)
	r.Use(clientIP(s.opts.TrustedProxies))
	r.Use(accessLog(s.opts.Logger, listener))
	r.Use(recoverer(s.opts.Logger))
	r.Use(limitBody(s.opts.MaxBodyBytes))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such route"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
	})
}

func (s *Server) publicRoutes() chi.Router {
	r := chi.NewRouter()
	s.common(r, "public")
	r.Post("/webhooks/graph", s.handleNotifications)
	r.Post("/webhooks/graph/lifecycle", s.handleLifecycle)
	r.Get("/healthz", s.handleHealthz)
	return r
}

func (s *Server) adminRoutes() chi.Router {
	r := chi.NewRouter()
	s.common(r, "admin")
	// The console's page holds no data and asks for the token itself when
	// its API answers 401; everything else needs the token.
	r.Group(func(r chi.Router) {
		r.Use(noStore, s.loopbackHost)
		page := ConsolePage()
		r.Get("/", page.ServeHTTP)
		r.Get("/console.css", page.ServeHTTP)
		r.Get("/console.js", page.ServeHTTP)
	})
	r.Group(func(r chi.Router) {
		r.Use(requireToken(s.opts.AdminToken, s.opts.Logger))
		r.Get("/readyz", s.handleReadyz)
		r.Method(http.MethodGet, "/metrics", s.opts.Metrics.Handler())
		r.Route("/api/v1", s.consoleAPI)
	})
	return r
}
