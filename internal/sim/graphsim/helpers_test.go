package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// bundle is a simulator on httptest with a valid token.
type bundle struct {
	sim   *Server
	srv   *httptest.Server
	token string
	clock *fakeClock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func setup(t *testing.T, opts Options) *bundle {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	opts.AllowHTTP = true
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 10 * time.Millisecond
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	sim.AddMailbox("phish@contoso.com")
	return &bundle{sim: sim, srv: srv, token: sim.IssueToken(), clock: clock}
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

func (r response) errorCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (b *bundle) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	case string:
		rd = strings.NewReader(v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = b.srv.URL + path
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// endpoint is a webhook receiver that answers the validation handshake and
// records notifications.
type endpoint struct {
	srv *httptest.Server

	mu          sync.Mutex
	validations []string
	posts       [][]byte
	got         chan []byte
	// status answers notifications; 202 by default.
	status int
}

func newEndpoint(t *testing.T, validate http.HandlerFunc) *endpoint {
	t.Helper()
	e := &endpoint{got: make(chan []byte, 100), status: http.StatusAccepted}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); r.URL.Query().Has("validationToken") {
			e.mu.Lock()
			e.validations = append(e.validations, tok)
			e.mu.Unlock()
			if validate != nil {
				validate(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, tok)
			return
		}
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.posts = append(e.posts, body)
		status := e.status
		e.mu.Unlock()
		w.WriteHeader(status)
		e.got <- body
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) setStatus(s int) {
	e.mu.Lock()
	e.status = s
	e.mu.Unlock()
}

func (e *endpoint) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case body := <-e.got:
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("notification is not JSON: %s", body)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
		return nil
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
}

func (b *bundle) subscribe(t *testing.T, e *endpoint, extra map[string]any, headers ...string) map[string]any {
	t.Helper()
	body := map[string]any{
		"changeType":         "created",
		"notificationUrl":    e.srv.URL + "/webhooks/graph?tenant=a",
		"resource":           "users/phish@contoso.com/mailFolders('inbox')/messages",
		"expirationDateTime": b.sim.Now().Add(2 * time.Hour).Format(time.RFC3339),
		"clientState":        "s3cret",
	}
	for k, v := range extra {
		if v == nil {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	r := b.do(t, "POST", "/v1.0/subscriptions", body, headers...)
	if r.status != http.StatusCreated {
		t.Fatalf("create subscription: %d %s", r.status, r.body)
	}
	return r.json(t)
}

func newTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newBenchServer(b *testing.B, h http.Handler) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv
}

func benchDo(b *testing.B, base, token, method, path string, body any) int {
	b.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func benchMIME(b *testing.B) []byte {
	b.Helper()
	data, err := os.ReadFile("testdata/report.eml")
	if err != nil {
		b.Fatal(err)
	}
	return bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
}

func httptestTLS(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}
