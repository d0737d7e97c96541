// Package archersim is a protocol-faithful simulator of the Archer IRM REST
// API (login, metadata, content, attachments) and of the Content API's OData
// level endpoints. Tests, the sandbox and benchmarks use it in place of a real
// Archer: it serves the same handlers under {virtual directory}/api and
// {virtual directory}/platformapi, honours X-Http-Method-Override, answers in
// Archer's wrapper shapes (including HTTP 200 with IsSuccessful:false), and
// offers control methods to expire sessions, inject faults and switch on
// Archer's unusual but real answers. Its /sim/records page renders rich text
// fields as Archer does, inside sandboxed frames, without a template engine.
package archersim

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultIdleTimeout is the session idle timeout used when Options leaves it
// zero; it matches Archer's default security parameter.
const DefaultIdleTimeout = 10 * time.Minute

// DefaultInstance is the instance name accepted when Options leaves it empty.
const DefaultInstance = "Default"

// DefaultUsers are the credentials accepted when Options.Users is nil.
func DefaultUsers() map[string]string {
	return map[string]string{"mail2archer": "mail2archer-sandbox"}
}

// Options configures a Server.
type Options struct {
	// VirtualDir is the path prefix of the Archer web application, for
	// example "/RSAArcher" or "/Archer". Empty serves at the root. Matching
	// is case-insensitive, as on IIS.
	VirtualDir string
	// Fixture holds the metadata and seed records; nil uses DefaultFixture.
	Fixture *Fixture
	// IdleTimeout ends a session that has not been used for this long; it
	// slides on every call. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// SingleSession revokes a user's older sessions when the user logs in
	// again, as instances restricting active sessions do.
	SingleSession bool
	// Strict turns Archer's documented silent acceptance (bad IP strings,
	// unknown content, values, users or attachment ids) into validation
	// messages, for negative tests.
	Strict bool
	// Clock returns the current time; nil uses time.Now.
	Clock func() time.Time
	// Instance is the instance name that logins must name; empty means
	// DefaultInstance.
	Instance string
	// Users maps user names to passwords; nil uses DefaultUsers.
	Users map[string]string
	// MaxAttachmentBytes caps the decoded size of one attachment; zero means
	// 100 MiB.
	MaxAttachmentBytes int64
	// MaxRecordedBody caps how many body bytes each recorded request keeps;
	// zero means 64 KiB.
	MaxRecordedBody int
	// Logger receives one debug line per request; the zero logger is silent.
	Logger zerolog.Logger
}

// Server is the simulated Archer. It is an http.Handler and safe for
// concurrent use. Its control methods may be called while requests run.
type Server struct {
	opts  Options
	clock func() time.Time
	log   zerolog.Logger
	vdir  string // lower-case, no trailing slash

	mu            sync.Mutex
	md            *metadata
	records       map[int64]*record
	order         []int64
	nextContentID int64
	attachments   map[int64]*attachment
	nextAttachID  int64
	sessions      map[string]*session
	loginCount    int
	requests      []Request
	callCount     int
	faults        faults
	onCreate      func(id int64)
	onUpdate      func(id int64)
}

type faults struct {
	failNext       int
	failure        Failure
	unauthorizedAt int // absolute call number that answers 401; 0 = off
	expireAt       int // absolute call number at which all sessions expire
	latency        time.Duration
	htmlRedirect   bool
	quirks         quirks
}

// quirks are the switches for Archer's unusual but real answers; record
// copies them into each request, so one request sees one consistent set.
type quirks struct {
	stringBooleans   bool // IsSuccessful as "true"/"false"
	omitAliases      bool // levels and fields without Alias
	forbidContentAPI bool // Content API: 403, no endpoints listed
	cookieOnly       bool // Content API: only the session cookie
}

type session struct {
	token    string
	user     string
	lastUsed time.Time
}

// New builds a Server from opts. It returns an error when the fixture's seed
// records do not fit its metadata.
func New(opts Options) (*Server, error) {
	if opts.Fixture == nil {
		opts.Fixture = DefaultFixture()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Instance == "" {
		opts.Instance = DefaultInstance
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers()
	}
	if opts.MaxAttachmentBytes <= 0 {
		opts.MaxAttachmentBytes = 100 << 20
	}
	if opts.MaxRecordedBody <= 0 {
		opts.MaxRecordedBody = 64 << 10
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	s := &Server{
		opts:          opts,
		clock:         clock,
		log:           opts.Logger.With().Str("component", "archersim").Logger(),
		vdir:          strings.TrimSuffix(strings.ToLower("/"+strings.Trim(opts.VirtualDir, "/")), "/"),
		records:       map[int64]*record{},
		attachments:   map[int64]*attachment{},
		sessions:      map[string]*session{},
		nextContentID: opts.Fixture.FirstContentID,
		nextAttachID:  opts.Fixture.FirstAttachmentID,
	}
	if s.nextContentID <= 0 {
		s.nextContentID = 239643
	}
	if s.nextAttachID <= 0 {
		s.nextAttachID = 901
	}
	s.md = buildMetadata(opts.Fixture)
	if err := s.seed(opts.Fixture.Records); err != nil {
		return nil, err
	}
	return s, nil
}

// newToken returns a 32-character upper-case hex token like Archer's.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// ServeHTTP routes a request. Paths are matched case-insensitively below the
// virtual directory; /sim/records and /sim/records.json are the read-only
// views and are served outside it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lower := strings.ToLower(r.URL.Path)
	switch lower {
	case "/sim/records", "/sim/records/":
		s.serveRecordsHTML(w, r)
		return
	case "/sim/records.json":
		s.serveRecordsJSON(w, r)
		return
	}

	method := r.Method
	if o := r.Header.Get("X-Http-Method-Override"); o != "" {
		method = strings.ToUpper(strings.TrimSpace(o))
	}
	body, bodyReader, err := s.prepareBody(r)
	if err != nil {
		writeWrapperError(w, http.StatusBadRequest, "Request", "ValidationMessageTemplates:InvalidRequest", "The request body could not be read.")
		return
	}
	call, fault := s.record(r, method, body)
	s.log.Debug().Str("method", r.Method).Str("effective_method", method).Str("path", r.URL.Path).Int("call", call).Msg("request")

	if fault.latency > 0 {
		t := time.NewTimer(fault.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fault.failure != nil {
		writeFailure(w, *fault.failure)
		return
	}
	if fault.quirks.stringBooleans {
		w = &answerWriter{ResponseWriter: w, stringBooleans: true}
	}
	if fault.htmlRedirect {
		writeHTMLRedirect(w)
		return
	}

	// orig keeps the original casing for the Content API, whose level
	// aliases are case-sensitive.
	orig, ok := s.stripVirtualDir(r.URL.Path)
	if !ok {
		writeIISError(w, http.StatusNotFound)
		return
	}
	req := &apiRequest{w: w, r: r, method: method, body: body, bodyReader: bodyReader, unauthorized: fault.unauthorized, quirks: fault.quirks}
	if strings.EqualFold(orig, "/contentapi") {
		s.serveContentAPI(req, "")
		return
	}
	if alias, ok := cutPrefixFold(orig, "/contentapi/"); ok {
		s.serveContentAPI(req, alias)
		return
	}
	for _, prefix := range []string{"/api/core/", "/platformapi/core/"} {
		if p, ok := cutPrefixFold(orig, prefix); ok {
			s.serveREST(req, strings.ToLower(p))
			return
		}
	}
	writeIISError(w, http.StatusNotFound)
}

// cutPrefixFold removes prefix from s, compared ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// stripVirtualDir removes the virtual directory, compared ignoring case,
// and returns the rest of the path in its original casing.
func (s *Server) stripVirtualDir(path string) (string, bool) {
	if s.vdir == "" {
		return path, true
	}
	n := len(s.vdir)
	if len(path) < n || !strings.EqualFold(path[:n], s.vdir) {
		return "", false
	}
	switch {
	case len(path) == n:
		return "/", true
	case path[n] == '/':
		return path[n:], true
	}
	return "", false
}

type appliedFault struct {
	failure      *Failure
	latency      time.Duration
	htmlRedirect bool
	unauthorized bool
	quirks       quirks
}

// record stores the request, counts the call and decides which faults apply.
// It expires sessions when the configured call number is reached.
func (s *Server) record(r *http.Request, method string, body []byte) (int, appliedFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callCount++
	n := s.callCount
	kept := body
	if len(kept) > s.opts.MaxRecordedBody {
		kept = kept[:s.opts.MaxRecordedBody]
	}
	s.requests = append(s.requests, Request{
		Time:            s.clock(),
		Method:          r.Method,
		EffectiveMethod: method,
		Path:            r.URL.Path,
		RawQuery:        r.URL.RawQuery,
		Header:          r.Header.Clone(),
		Body:            append([]byte(nil), kept...),
	})
	var f appliedFault
	f.latency = s.faults.latency
	f.htmlRedirect = s.faults.htmlRedirect
	f.quirks = s.faults.quirks
	if s.faults.failNext > 0 && (s.faults.failure.PathSuffix == "" ||
		strings.HasSuffix(strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")), strings.ToLower(s.faults.failure.PathSuffix))) {
		s.faults.failNext--
		failure := s.faults.failure
		f.failure = &failure
	}
	if s.faults.expireAt != 0 && n >= s.faults.expireAt {
		s.faults.expireAt = 0
		clear(s.sessions)
	}
	if s.faults.unauthorizedAt != 0 && n >= s.faults.unauthorizedAt {
		s.faults.unauthorizedAt = 0
		f.unauthorized = true
	}
	return n, f
}

// apiRequest carries one request through the handlers.
type apiRequest struct {
	w            http.ResponseWriter
	r            *http.Request
	method       string
	body         []byte
	bodyReader   *bodyReader // non-nil only for streamed attachment uploads
	unauthorized bool
	user         string
	quirks       quirks
}

// sessionCookie is the cookie that carries the session token to the Content
// API. The Archer 2024.11 Content API documentation ("Content Save",
// help.archerirm.cloud/api_2024_11/en-us/content/api/contentapi/contentapi_content_save.htm)
// lists the session as a parameter rendered "_ArcherSessionCookie_" and its
// sample request sends "Cookie: ArcherSessionCookie = E5E1…"; clients in use
// (a Python Content API client, a k6 load script and a PHP script in public
// repositories) send "Cookie: __ArcherSessionCookie__=<token>", the name the
// simulator takes. The 6.x Content API documentation ("Get Level Metadata",
// help.archerirm.cloud/platform_612/en-us/content/api/contentapi/contentapi_get_level_metadata.htm)
// names the "Archer session-id" instead: the REST API's
// "Authorization: Archer session-id=…" header.
const sessionCookie = "__ArcherSessionCookie__"

// sessionSource says where a request may carry its session token.
type sessionSource int

const (
	sessionFromHeader         sessionSource = iota // the REST API
	sessionFromHeaderOrCookie                      // the Content API by default
	sessionFromCookie                              // the Content API with ContentAPICookieOnly
)

// authenticate checks the session header and slides the idle timeout. It
// writes the 401 answer itself and reports false when the caller must stop.
func (s *Server) authenticate(req *apiRequest) bool {
	return s.authenticateFrom(req, sessionFromHeader)
}

// authenticateFrom is authenticate with the token taken from the places src
// allows.
func (s *Server) authenticateFrom(req *apiRequest, src sessionSource) bool {
	var token string
	var ok bool
	if src != sessionFromCookie {
		token, ok = parseSessionHeader(req.r.Header.Get("Authorization"))
	}
	if !ok && src != sessionFromHeader {
		if c, err := req.r.Cookie(sessionCookie); err == nil && c.Value != "" {
			token, ok = c.Value, true
		}
	}
	if req.unauthorized {
		ok = false
	}
	if ok {
		s.mu.Lock()
		sess := s.sessions[token]
		now := s.clock()
		if sess != nil && now.Sub(sess.lastUsed) >= s.opts.IdleTimeout {
			delete(s.sessions, token)
			sess = nil
		}
		if sess != nil {
			sess.lastUsed = now
			req.user = sess.user
		}
		s.mu.Unlock()
		ok = sess != nil
	}
	if !ok {
		writeJSON(req.w, http.StatusUnauthorized, map[string]any{"Message": "Authorization has been denied for this request."})
		return false
	}
	return true
}

// parseSessionHeader accepts `Archer session-id=TOKEN` with or without
// quotes around the token, case-insensitively.
func parseSessionHeader(h string) (string, bool) {
	h = strings.TrimSpace(h)
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Archer") {
		return "", false
	}
	key, val, ok := strings.Cut(strings.TrimSpace(rest), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(key), "session-id") {
		return "", false
	}
	val = strings.TrimSpace(val)
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	if val == "" || strings.ContainsAny(val, "\" ,;") {
		return "", false
	}
	return val, true
}

// serveREST dispatches the platform REST API below {prefix}/core/.
func (s *Server) serveREST(req *apiRequest, p string) {
	p = strings.TrimSuffix(p, "/")
	seg := strings.Split(p, "/")
	switch {
	case p == "security/login":
		s.handleLogin(req)
		return
	}
	if !s.authenticate(req) {
		return
	}
	switch {
	case p == "security/logout":
		s.handleLogout(req)
	case len(seg) >= 2 && seg[0] == "system":
		s.serveMetadata(req, seg[1:])
	case seg[0] == "content":
		s.serveContent(req, seg[1:])
	default:
		writeIISError(req.w, http.StatusNotFound)
	}
}
