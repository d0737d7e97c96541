package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/console"
)

// fakeConsole answers from fixed data and records the calls.
type fakeConsole struct {
	mu      sync.Mutex
	calls   []string
	filters []console.Filter
}

func (f *fakeConsole) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeConsole) Reports(_ context.Context, flt console.Filter) ([]console.Report, error) {
	f.mu.Lock()
	f.filters = append(f.filters, flt)
	f.mu.Unlock()
	if flt.State == "bogus" {
		return nil, fmt.Errorf("list reports: state bogus: %w", console.ErrInvalid)
	}
	return []console.Report{{Mailbox: "phish@contoso.com", MessageID: "AAMk/1=", State: console.StateFailed, Reason: "archer_validation"}}, nil
}

func (f *fakeConsole) History(_ context.Context, mailbox, id string) (console.Report, []console.Attempt, error) {
	f.record("history %s %s", mailbox, id)
	if id == "missing" {
		return console.Report{}, nil, fmt.Errorf("history: %w", console.ErrNotFound)
	}
	return console.Report{Mailbox: mailbox, MessageID: id}, []console.Attempt{{JobID: 7, Kind: "process_message"}}, nil
}

func (f *fakeConsole) Retry(_ context.Context, id int64) (string, error) {
	f.record("retry %d", id)
	if id == 9 {
		return "", fmt.Errorf("retry job 9: it is running now: %w", console.ErrConflict)
	}
	return fmt.Sprintf("job %d will run shortly", id), nil
}

func (f *fakeConsole) Cancel(_ context.Context, id int64) (string, error) {
	f.record("cancel %d", id)
	if id == 404 {
		return "", fmt.Errorf("cancel job 404: %w", console.ErrNotFound)
	}
	return fmt.Sprintf("job %d is cancelled", id), nil
}

func (f *fakeConsole) Replay(_ context.Context, mailbox, id string) (string, error) {
	f.record("replay %s %s", mailbox, id)
	return "queued job 12", nil
}

func (f *fakeConsole) Subscriptions() []console.Subscription {
	return []console.Subscription{{Mailbox: "phish@contoso.com", Folder: "inbox", ExpiresInSeconds: 3600, Leader: true}}
}

func (f *fakeConsole) Resync(_ context.Context, mailbox string) (string, error) {
	f.record("resync %s", mailbox)
	if mailbox == "broken@contoso.com" {
		return "", fmt.Errorf("resync %s: graph: 503", mailbox)
	}
	return "resync queued 0 new message(s)", nil
}

func (f *fakeConsole) QueueCounts(context.Context) (map[string]int, error) {
	return map[string]int{"available": 3, "cancelled": 1}, nil
}

func (f *fakeConsole) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func consoleServer(t *testing.T, token string, logs *logBuffer) (*Server, *fakeConsole) {
	t.Helper()
	fc := &fakeConsole{}
	srv, err := New(Options{Logger: zerolog.New(logs), AdminToken: token, Console: fc,
		Checks: []Check{{Name: "archer", Fn: func(context.Context) (string, error) { return "answering", nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, fc
}

func TestConsoleAPI(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	srv, fc := consoleServer(t, "", &logs)
	tests := []struct {
		name, method, path, contentType, body string
		host                                  string
		want                                  int
		contains, call                        string
	}{
		{"reports", "GET", "/api/v1/reports?state=failed&q=docu&limit=20", "", "", "", 200, `"reason":"archer_validation"`, ""},
		{"reports: bad state", "GET", "/api/v1/reports?state=bogus", "", "", "", 400, "bogus", ""},
		{"reports: bad limit", "GET", "/api/v1/reports?limit=ten", "", "", "", 400, "limit", ""},
		{"history, escaped id", "GET", "/api/v1/reports/phish@contoso.com/AAMk%2F1%3D", "", "", "", 200, `"kind":"process_message"`, "history phish@contoso.com AAMk/1="},
		{"history: unknown", "GET", "/api/v1/reports/phish@contoso.com/missing", "", "", "", 404, "not found", ""},
		{"subscriptions", "GET", "/api/v1/subscriptions", "", "", "", 200, `"expires_in_seconds":3600`, ""},
		{"status", "GET", "/api/v1/status", "", "", "", 200, `"available":3`, ""},
		{"retry", "POST", "/api/v1/jobs/5/retry", "application/json", "{}", "", 200, `"done":"job 5 will run shortly"`, "retry 5"},
		{"retry: running", "POST", "/api/v1/jobs/9/retry", "application/json", "{}", "", 409, "running", "retry 9"},
		{"retry: bad id", "POST", "/api/v1/jobs/x/retry", "application/json", "{}", "", 400, "positive", ""},
		{"retry: a form", "POST", "/api/v1/jobs/5/retry", "application/x-www-form-urlencoded", "a=b", "", 415, "JSON", ""},
		{"retry: no type", "POST", "/api/v1/jobs/5/retry", "", "", "", 415, "JSON", ""},
		{"retry: GET", "GET", "/api/v1/jobs/5/retry", "", "", "", 405, "method", ""},
		{"cancel", "POST", "/api/v1/jobs/6/cancel", "application/json; charset=utf-8", "", "", 200, "cancelled", "cancel 6"},
		{"cancel: unknown", "POST", "/api/v1/jobs/404/cancel", "application/json", "", "", 404, "not found", "cancel 404"},
		{"replay", "POST", "/api/v1/reports/replay", "application/json", `{"mailbox":"phish@contoso.com","message_id":"AAMk1"}`, "", 200, "queued job 12", "replay phish@contoso.com AAMk1"},
		{"replay: unknown field", "POST", "/api/v1/reports/replay", "application/json", `{"mailbox":"a","id":"b"}`, "", 400, "documented fields", ""},
		{"replay: not JSON", "POST", "/api/v1/reports/replay", "application/json", `mailbox=a`, "", 400, "JSON object", ""},
		{"resync", "POST", "/api/v1/subscriptions/resync", "application/json", `{"mailbox":"phish@contoso.com"}`, "", 200, "resync queued", "resync phish@contoso.com"},
		{"resync: fails", "POST", "/api/v1/subscriptions/resync", "application/json", `{"mailbox":"broken@contoso.com"}`, "", 500, "graph: 503", "resync broken@contoso.com"},
		{"a rebound host name", "GET", "/api/v1/reports", "", "", "attacker.example:9090", 421, "localhost", ""},
		{"the page under a rebound name", "GET", "/", "", "", "attacker.example", 421, "localhost", ""},
		{"the page", "GET", "/", "", "", "localhost:9090", 200, "<!doctype html>", ""},
		{"an IPv6 loopback host", "GET", "/api/v1/status", "", "", "[::1]:9090", 200, `"ready":true`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Host = "127.0.0.1:9090"
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			srv.Admin().ServeHTTP(rec, req)
			if rec.Code != tt.want || !strings.Contains(strings.ToLower(rec.Body.String()), strings.ToLower(tt.contains)) {
				t.Errorf("%s %s: %d %s; want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.want, tt.contains)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			if tt.call != "" {
				calls := fc.Calls()
				if len(calls) == 0 || calls[len(calls)-1] != tt.call {
					t.Errorf("calls %v; want the last to be %q", calls, tt.call)
				}
			}
		})
	}
	if want := (console.Filter{State: "failed", Query: "docu", Limit: 20}); fc.filters[0] != want {
		t.Errorf("the first list asked for %+v, want %+v", fc.filters[0], want)
	}
	if len(fc.filters) != 2 {
		// The list and the bad state; a bad limit and the rebound host
		// name never reach the console.
		t.Errorf("the console listed %d times: %+v", len(fc.filters), fc.filters)
	}

	// Every action is logged with who asked and what.
	var sawRetry bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["message"] != "operator action" {
			continue
		}
		if e["caller"] != "loopback" || e["action"] == nil || e["result"] == nil && e["error"] == nil {
			t.Errorf("action log line lacks who or what: %s", line)
		}
		if e["action"] == "retry" && e["job_id"] == float64(5) {
			sawRetry = true
		}
	}
	if !sawRetry {
		t.Errorf("no log line for the retry of job 5:\n%s", logs.String())
	}
}

func TestConsoleFollowsTheAdminToken(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef0123456789abcdef"
	var logs logBuffer
	srv, fc := consoleServer(t, token, &logs)
	do := func(method, path, auth string) int {
		req := httptest.NewRequest(method, path, strings.NewReader("{}"))
		req.Host = "mail2archer:9090" // the compose network's name: fine with a token
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		srv.Admin().ServeHTTP(rec, req)
		return rec.Code
	}
	// The page holds no data: it loads without the token and asks for it.
	if got := do("GET", "/", ""); got != 200 {
		t.Errorf("the page without the token: %d", got)
	}
	for _, path := range []string{"/api/v1/reports", "/api/v1/status", "/api/v1/subscriptions"} {
		if got := do("GET", path, ""); got != 401 {
			t.Errorf("GET %s without the token: %d", path, got)
		}
		if got := do("GET", path, token); got != 200 {
			t.Errorf("GET %s with the token: %d", path, got)
		}
	}
	if got := do("POST", "/api/v1/jobs/5/retry", "wrong"); got != 401 {
		t.Errorf("retry with a wrong token: %d", got)
	}
	if len(fc.Calls()) != 0 {
		t.Errorf("refused requests reached the console: %v", fc.Calls())
	}
	if got := do("POST", "/api/v1/jobs/5/retry", token); got != 200 {
		t.Errorf("retry with the token: %d", got)
	}
	if !strings.Contains(logs.String(), `"caller":"token"`) {
		t.Errorf("the action is not logged as the token's:\n%s", logs.String())
	}
}

func TestConsoleAPIWithoutAConsoleIsUnavailable(t *testing.T) {
	t.Parallel()
	srv, err := New(Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/v1/reports", nil)
	req.Host = "127.0.0.1"
	rec := httptest.NewRecorder()
	srv.Admin().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
}
