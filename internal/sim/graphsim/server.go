// Package graphsim is a protocol-faithful simulator of the parts of
// Microsoft Graph that mail2archer uses: an Entra ID token endpoint for the
// client-credentials flow, change-notification subscriptions with the real
// validation handshake, notification and lifecycle delivery, message reads
// ($select, attachments, $value), folder delta queries, mailbox write-back,
// sendMail and Outlook's per-mailbox throttling.
//
// A Server is an http.Handler: tests mount it on httptest (TLS when the real
// azidentity credential is used, since the authority must be https), the
// sandbox serves it on its own port. Messages are stored as raw MIME and
// their Graph view is derived from it. The control methods (AddMailbox,
// Deliver, Lifecycle, SetFaults, Advance, SentMessages, ...) drive it from
// Go; GET /sim/sent.json lists the messages sent through sendMail.
package graphsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Options configures a Server. The zero value is usable: it simulates one
// tenant with one application, requires https notification URLs and uses
// Graph's documented limits.
type Options struct {
	// TenantID is the tenant's id; a random GUID when empty.
	TenantID string
	// AppID is the application (client) id allowed to obtain tokens; a
	// random GUID when empty.
	AppID string
	// ClientSecret, when non-empty, is the only secret the token endpoint
	// accepts. When empty any secret is accepted.
	ClientSecret string
	// AnyBearer accepts any non-empty bearer token on Graph calls instead of
	// only tokens issued by the token endpoint or IssueToken.
	AnyBearer bool
	// AppRoles are the application permissions Entra ID granted the app,
	// carried in the roles claim of every token issued: nil means
	// Mail.Read, Mail.ReadWrite and Mail.Send; an empty non-nil list
	// means none. Only sendMail checks them (it needs Mail.Send); what
	// each mailbox allows is set with SetAccess.
	AppRoles []string
	// AllowHTTP accepts http:// notification and lifecycle URLs (tests).
	AllowHTTP bool
	// MaxExpiry is the longest subscription lifetime accepted; default
	// 10,070 minutes, the limit live Graph enforces.
	MaxExpiry time.Duration
	// MaxSubscriptionsPerMailbox is the quota across apps; default 1,000.
	MaxSubscriptionsPerMailbox int
	// Clock is the time source for subscription expiries,
	// receivedDateTime and the throttling window; default time.Now.
	// Advance moves it forward. Access tokens, delivery retries and
	// timeouts follow the wall clock.
	Clock func() time.Time
	// HTTPClient sends validation requests and notifications; default a
	// plain client. Its Timeout is ignored: the protocol timeouts apply.
	HTTPClient *http.Client
	// ValidationTimeout bounds each validation request; default 10 s.
	ValidationTimeout time.Duration
	// DeliveryTimeout bounds the first delivery attempt; default 3 s.
	DeliveryTimeout time.Duration
	// RetryTimeout bounds each retry of a delivery; default 10 s.
	RetryTimeout time.Duration
	// RetryWindow is how long a failing delivery is retried before it is
	// dropped; default 4 h. Measured on the real clock.
	RetryWindow time.Duration
	// RetryBackoff is the first delay between delivery attempts, doubled
	// each time up to RetryWindow/4; default 1 s.
	RetryBackoff time.Duration
	// EndpointStates emulates Graph's per-endpoint states: when more than
	// 10% of first attempts in EndpointWindow time out, the endpoint is
	// "slow" and new notifications wait SlowDelay; when more than 15% of
	// retries time out, it is "drop": new notifications are discarded and
	// each affected subscription gets one "missed" lifecycle event. Both
	// states last EndpointWindow. Measured on the wall clock.
	EndpointStates bool
	// EndpointWindow is the observation window and state duration; default
	// 10 minutes.
	EndpointWindow time.Duration
	// SlowDelay delays notifications to a slow endpoint; default 10 minutes.
	SlowDelay time.Duration
	// Budget is the number of requests per app and mailbox in each
	// BudgetWindow; default 10,000 per 10 minutes.
	Budget int
	// BudgetWindow is the throttling window; default 10 minutes.
	BudgetWindow time.Duration
	// Concurrency is the number of concurrent requests per app and mailbox;
	// default 4.
	Concurrency int
	// SubscriptionBudgetScale multiplies Graph's per-app budgets on the
	// subscription API (per 20 s: 500 POST/PATCH/DELETE, 1,000
	// reauthorize, 500 GET by id, 25 GET list); zero means 1, negative
	// turns them off.
	SubscriptionBudgetScale float64
	// PageSize is the default page size of delta and subscription lists;
	// default 10.
	PageSize int
	// RecordLimit caps the recorded requests (the oldest are forgotten);
	// default 10,000, negative disables recording.
	RecordLimit int
	// DeltaStates caps the delta links kept, like Outlook's token cache: the
	// oldest are evicted and then answer SyncStateNotFound; default 10,000.
	DeltaStates int
	// Seed makes reordering deterministic; zero picks a random seed.
	Seed uint64
	// Logger receives the simulator's own diagnostics.
	Logger zerolog.Logger
}

// Server is the simulated Graph service. Create it with New, serve it as an
// http.Handler and stop it with Close. All methods are safe for concurrent
// use.
type Server struct {
	opts   Options
	log    zerolog.Logger
	client *http.Client

	mu        sync.Mutex
	offset    time.Duration
	mailboxes map[string]*mailbox // by lower-case UPN and by user id
	boxList   []*mailbox
	subs      map[string]*subscription
	tokens    map[string]grant
	deltas    map[string]*deltaSession
	deltaFIFO []string
	requests  []Request
	faults    []*faultRule
	behavior  Behavior
	throttle  map[string]*throttleState
	subRates  map[Route]*throttleState
	endpoints map[string]*endpointState
	rng       *rand.Rand
	seq       int64
	gzip415   bool
	sent      []SentMessage

	deliveries deliveryTracker
	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closed     bool
}

// New returns a Server with the given options and their defaults applied.
func New(opts Options) *Server {
	if opts.TenantID == "" {
		opts.TenantID = newGUID()
	}
	if opts.AppRoles == nil {
		opts.AppRoles = defaultAppRoles
	}
	opts.AppRoles = slices.Clone(opts.AppRoles)
	if opts.AppID == "" {
		opts.AppID = newGUID()
	}
	if opts.MaxExpiry <= 0 {
		opts.MaxExpiry = 10070 * time.Minute
	}
	if opts.MaxSubscriptionsPerMailbox <= 0 {
		opts.MaxSubscriptionsPerMailbox = 1000
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.ValidationTimeout <= 0 {
		opts.ValidationTimeout = 10 * time.Second
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = 3 * time.Second
	}
	if opts.RetryTimeout <= 0 {
		opts.RetryTimeout = 10 * time.Second
	}
	if opts.RetryWindow <= 0 {
		opts.RetryWindow = 4 * time.Hour
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.Budget <= 0 {
		opts.Budget = 10000
	}
	if opts.BudgetWindow <= 0 {
		opts.BudgetWindow = 10 * time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 10
	}
	if opts.EndpointWindow <= 0 {
		opts.EndpointWindow = 10 * time.Minute
	}
	if opts.SlowDelay <= 0 {
		opts.SlowDelay = 10 * time.Minute
	}
	if opts.SubscriptionBudgetScale == 0 {
		opts.SubscriptionBudgetScale = 1
	}
	if opts.RecordLimit == 0 {
		opts.RecordLimit = 10000
	}
	if opts.DeltaStates <= 0 {
		opts.DeltaStates = 10000
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		c.Timeout = 0
		client = &c
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		log:       opts.Logger.With().Str("component", "graphsim").Logger(),
		client:    client,
		mailboxes: map[string]*mailbox{},
		subs:      map[string]*subscription{},
		tokens:    map[string]grant{},
		deltas:    map[string]*deltaSession{},
		throttle:  map[string]*throttleState{},
		subRates:  map[Route]*throttleState{},
		endpoints: map[string]*endpointState{},
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ctx:       ctx,
		cancel:    cancel,
	}
	s.deliveries.init()
	return s
}

// TenantID returns the simulated tenant's id.
func (s *Server) TenantID() string { return s.opts.TenantID }

// AppID returns the simulated application's client id.
func (s *Server) AppID() string { return s.opts.AppID }

// Close stops every delivery and validation in progress and waits for their
// goroutines. The handler keeps answering requests afterwards, but no
// notification is sent any more.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// now is the simulated time: the clock plus everything Advance added.
func (s *Server) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time {
	return s.opts.Clock().Add(s.offset).UTC()
}

// Now returns the simulator's current time.
func (s *Server) Now() time.Time { return s.now() }

// Advance moves the simulator's clock forward by d. Subscriptions whose
// expiry passes are gone afterwards, and the throttling window may roll over.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// Reject415 makes the server answer 415 to gzip-compressed request bodies,
// which exercises the SDK's uncompressed resend.
func (s *Server) Reject415(on bool) {
	s.mu.Lock()
	s.gzip415 = on
	s.mu.Unlock()
}

// ServeHTTP routes token-endpoint and Graph requests, and serves the
// read-only view /sim/sent.json without authentication.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case strings.EqualFold(path, "/sim/sent.json"):
		s.serveSentJSON(w, r)
	case strings.HasPrefix(path, "/v1.0/"):
		s.serveGraph(w, r)
	case strings.HasSuffix(path, "/v2.0/.well-known/openid-configuration"):
		s.serveOpenIDConfig(w, r)
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		s.serveToken(w, r)
	default:
		writeError(w, http.StatusNotFound, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", firstSegment(path)))
	}
}

func firstSegment(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// errClosed is returned by control methods once Close was called.
var errClosed = errors.New("graphsim: server closed")
