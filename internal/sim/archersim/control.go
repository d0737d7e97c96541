package archersim

import (
	"net/http"
	"slices"
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
	ID      int64          `json:"Id"`
	LevelID int64          `json:"LevelId"`
	Level   string         `json:"Level"`
	Created time.Time      `json:"Created"`
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

// FailNext makes the next n requests answer with the given HTTP status and
// an IIS-style HTML error page.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failNext = n
	s.faults.failStatus = status
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
