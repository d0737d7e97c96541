package archersim

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Request is one recorded request.
type Request struct {
	Time time.Time
	// Method is the HTTP verb on the wire; EffectiveMethod honours
	// X-Http-Method-Override.
	Method          string
	EffectiveMethod string
	Path            string
	RawQuery        string
	Header          http.Header
	// Body holds at most Options.MaxRecordedBody bytes of the body.
	Body []byte
}

// Record is a read-only copy of a stored content record, with field values
// rendered readably and keyed by field name.
type Record struct {
	ID      int64     `json:"Id"`
	LevelID int64     `json:"LevelId"`
	Level   string    `json:"Level"`
	Created time.Time `json:"Created"`
	// Updated is the time of the last successful create or update.
	Updated time.Time      `json:"Updated"`
	Fields  map[string]any `json:"Fields"`
}

// Attachment is a read-only copy of a stored attachment.
type Attachment struct {
	ID   int64
	Name string
	Data []byte
}

// ExpireSessions ends every session at once, as an idle timeout would.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// ExpireSessionsAt ends every session when the server receives its n-th
// request from now (n = 1 is the next request), so a test can expire the
// session in the middle of a burst of calls.
func (s *Server) ExpireSessionsAt(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.expireAt = s.callCount + max(n, 1)
}

// RevokeSession ends one session; it reports whether the token was active.
func (s *Server) RevokeSession(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found := s.sessions[token]
	delete(s.sessions, token)
	return found
}

// ActiveSessions returns the number of sessions that have not been ended.
// Sessions past their idle timeout count until they are next presented.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Failure describes the answer of a request made to fail by FailNextWith.
type Failure struct {
	// Status is the HTTP status code; one outside 100–599 becomes 500.
	Status int
	// RetryAfter, when not empty, is sent verbatim as the Retry-After
	// header: delay-seconds such as "7", or an HTTP date.
	RetryAfter string
	// Body selects the body of the answer.
	Body FailureBody
	// PathSuffix, when not empty, limits the failure to requests whose
	// path ends with it (case-insensitive), such as "/core/content" for
	// record creates and updates; other requests are answered normally and
	// do not count.
	PathSuffix string
}

// FailureBody selects the body of an injected failure.
type FailureBody int

const (
	// FailureIISPage is the HTML error page IIS serves, the default.
	FailureIISPage FailureBody = iota
	// FailureWebAPIMessage is ASP.NET Web API's bare error object,
	// {"Message":"An error has occurred."}: JSON, but no Archer wrapper and
	// no IsSuccessful. Archer's REST API answers unhandled errors this way.
	FailureWebAPIMessage
	// FailureValidation is Archer's answer to a record it refuses: the
	// wrapper with IsSuccessful false and a validation message naming a
	// required field ("The Incident Summary field is a required field."),
	// with status 200 unless Status says otherwise.
	FailureValidation
)

// FailNext makes the next n requests answer with the given HTTP status and
// an IIS-style HTML error page.
func (s *Server) FailNext(n, status int) {
	s.FailNextWith(n, Failure{Status: status})
}

// FailNextRetryAfter makes the next n requests answer with the given HTTP
// status (429 or 503, typically), an IIS-style HTML error page and a
// Retry-After header of the given number of seconds.
func (s *Server) FailNextRetryAfter(n, status, seconds int) {
	s.FailNextWith(n, Failure{Status: status, RetryAfter: strconv.Itoa(seconds)})
}

// FailNextWith makes the next n requests answer as f describes, before any
// other handling. It replaces a failure still pending; n = 0 cancels it.
func (s *Server) FailNextWith(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failNext = max(n, 0)
	s.faults.failure = f
}

// StringBooleans makes every Archer wrapper (REST API answers, including
// each element of list answers) carry IsSuccessful as the string "true" or
// "false" instead of a JSON boolean, as some Archer instances answer.
func (s *Server) StringBooleans(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.quirks.stringBooleans = on
}

// OmitAliases makes the server behave as if no level and no field had an
// Alias: the metadata endpoints leave the Alias property out of levels and
// field definitions, and the Content API, whose endpoints are named by level
// alias, lists no endpoint and finds no level (404), as Archer does for a
// level it has no alias for.
func (s *Server) OmitAliases(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.quirks.omitAliases = on
}

// ForbidContentAPI makes the Content API behave as for an API user without
// read rights on the levels: the endpoint list is empty and a read of a
// level answers 403. The REST API is unaffected. See serveContentAPI for
// what the Archer documentation says and what it leaves open.
func (s *Server) ForbidContentAPI(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.quirks.forbidContentAPI = on
}

// ContentAPICookieOnly makes the Content API accept the session only as the
// __ArcherSessionCookie__ cookie, as the Archer 2024.11 Content API
// documentation shows it, and answer 401 to a request that carries it only
// in the "Authorization: Archer session-id=…" header the 6.x documentation
// shows. When off (the default) the Content API accepts either. The REST
// API always takes the header.
func (s *Server) ContentAPICookieOnly(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.quirks.cookieOnly = on
}

// UnauthorizedAt makes the n-th request from now (n = 1 is the next one)
// answer 401 even though its session is valid.
func (s *Server) UnauthorizedAt(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.unauthorizedAt = s.callCount + max(n, 1)
}

// SetLatency delays every later request by d before it is handled; the delay
// ends early when the client gives up. No lock is held while waiting.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = d
}

// HTMLRedirect makes every API request answer 200 with the HTML page Archer
// serves when SSO intercepts the call or the URL is wrong.
func (s *Server) HTMLRedirect(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.htmlRedirect = on
}

// Requests returns a copy of every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// LoginCount returns the number of successful logins.
func (s *Server) LoginCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loginCount
}

// Records returns copies of all stored records in creation order, including
// the fixture's seeded records.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.viewRecord(s.records[id]))
	}
	return out
}

// Attachment returns a copy of a stored attachment.
func (s *Server) Attachment(id int64) (Attachment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.attachments[id]
	if a == nil {
		return Attachment{}, false
	}
	return Attachment{ID: a.ID, Name: a.Name, Data: slices.Clone(a.Data)}, true
}

// viewRecord renders a record for Records and the views. s.mu must be held.
func (s *Server) viewRecord(rec *record) Record {
	level := s.md.levels[rec.LevelID]
	r := Record{ID: rec.ID, LevelID: rec.LevelID, Level: level.Name, Created: rec.Created, Updated: rec.Updated, Fields: map[string]any{}}
	for _, fm := range level.fields {
		if !fm.active {
			continue
		}
		if v := s.plainValue(fm, rec); v != nil {
			r.Fields[fm.Name] = v
		}
	}
	return r
}

// DeleteAttachment drops a stored attachment, for long benchmarks that
// would otherwise keep every upload in memory. It reports whether the id
// existed.
func (s *Server) DeleteAttachment(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found := s.attachments[id]
	delete(s.attachments, id)
	return found
}

// SetPassword changes (or creates) a user's password, as an administrator
// resetting or unlocking the account would. Sessions already open stay valid.
func (s *Server) SetPassword(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	users := make(map[string]string, len(s.opts.Users)+1)
	for u, p := range s.opts.Users {
		users[u] = p
	}
	users[user] = password
	s.opts.Users = users
}

// OnCreate sets a function called after a record is created and stored, and
// before Archer's answer is written: crash tests kill the client there, the
// worst moment for exactly-once. Nil removes it.
func (s *Server) OnCreate(fn func(id int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCreate = fn
}

// OnUpdate sets a function called after a record update is stored, and
// before Archer's answer is written: the moment at which a crash leaves
// Archer changed and the client unaware. Nil removes it.
func (s *Server) OnUpdate(fn func(id int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onUpdate = fn
}
