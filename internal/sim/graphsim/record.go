package graphsim

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Request is one request the server received, kept for assertions.
type Request struct {
	// Time is the simulator's clock when the request arrived.
	Time time.Time
	// Method is the HTTP method.
	Method string
	// Path is the URL path, still percent-encoded as sent.
	Path string
	// Query is the parsed query string.
	Query url.Values
	// Header holds the request headers.
	Header http.Header
	// Body is the request body after gzip decoding; form secrets are
	// replaced by "<redacted>".
	Body []byte
	// Gzipped reports whether the body arrived with Content-Encoding: gzip.
	Gzipped bool
}

// maxRequestBody bounds every request body the server reads (decoded).
const maxRequestBody = 4 << 20

var errBodyTooLarge = errors.New("request body too large")

// readBody reads and, when needed, gunzips the request body, bounded by limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, errBodyTooLarge
	}
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
		return raw, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("gunzip body: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, errBodyTooLarge
	}
	return data, nil
}

func parseForm(body []byte) (url.Values, error) {
	return url.ParseQuery(string(body))
}

// redactForm hides client secrets and assertions in a recorded form body.
func redactForm(body []byte) []byte {
	form, err := parseForm(body)
	if err != nil {
		return body
	}
	changed := false
	for _, k := range []string{"client_secret", "client_assertion"} {
		if form.Has(k) {
			form.Set(k, "<redacted>")
			changed = true
		}
	}
	if !changed {
		return body
	}
	return []byte(form.Encode())
}

// record appends a request to the log.
func (s *Server) record(r *http.Request, body []byte) {
	if s.opts.RecordLimit < 0 {
		return
	}
	req := Request{
		Method:  r.Method,
		Path:    r.URL.EscapedPath(),
		Query:   r.URL.Query(),
		Header:  r.Header.Clone(),
		Body:    append([]byte(nil), body...),
		Gzipped: strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip"),
	}
	s.mu.Lock()
	req.Time = s.nowLocked()
	if len(s.requests) >= s.opts.RecordLimit {
		n := copy(s.requests, s.requests[len(s.requests)/2:])
		clear(s.requests[n:])
		s.requests = s.requests[:n]
	}
	s.requests = append(s.requests, req)
	s.mu.Unlock()
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}
