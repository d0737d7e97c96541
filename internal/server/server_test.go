package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

const (
	tenant    = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	subID     = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
	secret    = "s3cr3t-client-state-0123456789abcdef"
	otherSub  = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	mailbox   = "phish@contoso.com"
	otherMbox = "abuse@contoso.com"
)

type testBundle struct {
	store *store.Store
	srv   *Server
	http  *httptest.Server // the public listener
	admin *httptest.Server // the admin listener
	logs  *logBuffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	log := zerolog.New(logs)
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, sub := range []subscriptions.Record{
		{ID: subID, Mailbox: mailbox, Folder: "Inbox", ClientState: secret, ExpiresAt: time.Now().Add(time.Hour)},
		{ID: otherSub, Mailbox: otherMbox, Folder: "Inbox", ClientState: "another-secret", ExpiresAt: time.Now().Add(time.Hour)},
	} {
		if err := st.SaveSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	queue, err := st.NewQueue(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{
		Subscriptions: NewSubscriptionIndex(st), Enqueuer: queue, TenantID: tenant, MaxBodyBytes: 64 << 10,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Public())
	t.Cleanup(hs.Close)
	as := httptest.NewServer(srv.Admin())
	t.Cleanup(as.Close)
	return &testBundle{store: st, srv: srv, http: hs, admin: as, logs: logs}
}

// logBuffer collects log lines written by server goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the logs contain s: the access log line is written
// after the response, so it may arrive after the client has read it.
func (w *logBuffer) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := w.String()
		if strings.Contains(logs, s) {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs never contained %q:\n%s", s, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustPrefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func (b *testBundle) post(t *testing.T, path, contentType string, body []byte) *http.Response {
	t.Helper()
	resp, err := http.Post(b.http.URL+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

type job struct {
	Kind string
	Args map[string]any
}

func (b *testBundle) jobs(t *testing.T) []job {
	t.Helper()
	rows, err := b.store.DB().Query(`SELECT kind, json(args) FROM river_job ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []job
	for rows.Next() {
		var j job
		var args []byte
		if err := rows.Scan(&j.Kind, &args); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(args, &j.Args); err != nil {
			t.Fatal(err)
		}
		out = append(out, j)
	}
	return out
}

// item builds one message notification in the exact shape Graph sends.
func item(sub, clientState, tenantID, messageID string) map[string]any {
	return map[string]any{
		"id":                             "lsgTZMr9KwAAA",
		"subscriptionId":                 sub,
		"subscriptionExpirationDateTime": "2026-12-01T22:11:09.952Z",
		"clientState":                    clientState,
		"changeType":                     "created",
		"resource":                       "Users/evil@attacker.example/Messages/" + messageID,
		"tenantId":                       tenantID,
		"resourceData": map[string]any{
			"@odata.type": "#Microsoft.Graph.Message",
			"@odata.id":   "Users/x/Messages/" + messageID,
			"@odata.etag": `W/"CQAAABYAAADk"`,
			"id":          messageID,
		},
	}
}

func batch(items ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"value": items})
	return b
}

func TestValidationHandshakeEchoesTheDecodedToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tokens := []string{
		"Validation: Testing client application reachability for subscription Request-Id: 877c1f65-0e4b-4b4a-9d2e-a01f0a6ad0b7",
		"<script>alert('x')</script>",
		"100% sure & done+more",
		"a/b?c=d#e",
		"",
	}
	for _, path := range []string{"/webhooks/graph", "/webhooks/graph/lifecycle"} {
		for _, tok := range tokens {
			t.Run(path+" "+tok, func(t *testing.T) {
				// Graph sends the token URL-encoded and a text/plain body;
				// the body must not matter.
				u := path + "?validationToken=" + url.QueryEscape(tok)
				resp := b.post(t, u, "text/plain; charset=utf-8", []byte("ignored {not json"))
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				if string(got) != tok {
					t.Errorf("echo %q, want %q", got, tok)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Error("missing nosniff")
				}
			})
		}
	}
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		body     []byte
		status   int
		wantJobs []string // mailbox/message of every job expected afterwards
		dropped  map[string]float64
	}{
		{
			name:     "valid notification is queued",
			body:     batch(item(subID, secret, tenant, "AAMkAGI1")),
			status:   http.StatusAccepted,
			wantJobs: []string{mailbox + "/AAMkAGI1"},
		},
		{
			name:    "clientState mismatch is dropped",
			body:    batch(item(subID, "wrong", tenant, "AAMkAGI1")),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropClientState: 1},
		},
		{
			name:    "clientState of another subscription is dropped",
			body:    batch(item(subID, "another-secret", tenant, "AAMkAGI1")),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropClientState: 1},
		},
		{
			name:    "unknown subscription is dropped",
			body:    batch(item("11111111-2222-3333-4444-555555555555", secret, tenant, "AAMkAGI1")),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropUnknownSubscription: 1},
		},
		{
			name:    "wrong tenant is dropped",
			body:    batch(item(subID, secret, "00000000-0000-0000-0000-000000000000", "AAMkAGI1")),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropTenant: 1},
		},
		{
			name: "mixed batch keeps only the valid items",
			body: batch(
				item(subID, secret, tenant, "AAMk-one"),
				item(subID, "wrong", tenant, "AAMk-two"),
				item(otherSub, "another-secret", tenant, "AAMk-three"),
				item(otherSub, "another-secret", "bad-tenant", "AAMk-four"),
				map[string]any{"subscriptionId": 42},
			),
			status:   http.StatusAccepted,
			wantJobs: []string{mailbox + "/AAMk-one", otherMbox + "/AAMk-three"},
			dropped:  map[string]float64{dropClientState: 1, dropTenant: 1, dropMalformed: 1},
		},
		{
			name:   "the mailbox comes from the subscription, not the resource",
			body:   batch(item(otherSub, "another-secret", tenant, "AAMk-x")),
			status: http.StatusAccepted, wantJobs: []string{otherMbox + "/AAMk-x"},
		},
		{
			name: "the same notification three times makes one job",
			body: batch(item(subID, secret, tenant, "AAMk-dup"), item(subID, secret, tenant, "AAMk-dup"),
				item(subID, secret, tenant, "AAMk-dup")),
			status:   http.StatusAccepted,
			wantJobs: []string{mailbox + "/AAMk-dup"},
		},
		{
			name:    "message id with spaces is malformed",
			body:    batch(item(subID, secret, tenant, "AAMk bad")),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropMalformed: 1},
		},
		{
			name: "deleted change type is not queued",
			body: batch(func() map[string]any {
				i := item(subID, secret, tenant, "AAMk-del")
				i["changeType"] = "deleted"
				return i
			}()),
			status:  http.StatusAccepted,
			dropped: map[string]float64{dropChangeType: 1},
		},
		{name: "malformed JSON", body: []byte(`{"value":[`), status: http.StatusBadRequest},
		{name: "no value array", body: []byte(`{"values":[]}`), status: http.StatusBadRequest},
		{name: "value is not an array", body: []byte(`{"value":{}}`), status: http.StatusBadRequest},
		{name: "JSON array at top level", body: []byte(`[]`), status: http.StatusBadRequest},
		{name: "empty value array", body: []byte(`{"value":[]}`), status: http.StatusAccepted},
		{name: "oversized body", body: batch(item(subID, secret, tenant, strings.Repeat("A", 100<<10))), status: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			resp := b.post(t, "/webhooks/graph", "application/json", tt.body)
			if resp.StatusCode != tt.status {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			var got []string
			for _, j := range b.jobs(t) {
				if j.Kind != "process_message" {
					t.Errorf("job kind %q", j.Kind)
				}
				got = append(got, fmt.Sprintf("%s/%s", j.Args["mailbox"], j.Args["message_id"]))
			}
			if strings.Join(got, ",") != strings.Join(tt.wantJobs, ",") {
				t.Errorf("jobs %v, want %v", got, tt.wantJobs)
			}
			for reason, want := range tt.dropped {
				if v := float64(b.srv.metrics.dropped(endpointNotifications, reason).Get()); v != want {
					t.Errorf("dropped{%s} = %v, want %v", reason, v, want)
				}
			}
		})
	}
}

func TestRedeliveryAcrossRequestsMakesOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 0; i < 3; i++ {
		if resp := b.post(t, "/webhooks/graph", "application/json", batch(item(subID, secret, tenant, "AAMk-retry"))); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d", i, resp.StatusCode)
		}
	}
	if n := len(b.jobs(t)); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
	if v := float64(b.srv.metrics.duplicates(endpointNotifications).Get()); v != 2 {
		t.Errorf("duplicates = %v, want 2", v)
	}
}

func TestDatabaseClosedAnswers503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_ = b.store.Close()
	resp := b.post(t, "/webhooks/graph", "application/json", batch(item(subID, secret, tenant, "AAMk-1")))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	ready, err := http.Get(b.admin.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = ready.Body.Close()
	if ready.StatusCode != http.StatusOK {
		// No checks were configured in this bundle: readiness itself is
		// covered by TestReadyz.
		t.Fatalf("readyz status %d", ready.StatusCode)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := func(event string) map[string]any {
		return map[string]any{
			"subscriptionId": subID, "subscriptionExpirationDateTime": "2026-12-01T11:00:00.0000000Z",
			"tenantId": tenant, "clientState": secret, "lifecycleEvent": event,
		}
	}
	resp := b.post(t, "/webhooks/graph/lifecycle", "application/json",
		batch(ev("reauthorizationRequired"), ev("missed"), ev("subscriptionRemoved"), ev("somethingNew"),
			func() map[string]any { e := ev("missed"); e["clientState"] = "forged"; return e }()))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got []string
	for _, j := range b.jobs(t) {
		got = append(got, j.Kind+":"+fmt.Sprint(j.Args["event"]))
	}
	want := "graph_lifecycle:reauthorizationRequired,graph_lifecycle:missed,graph_lifecycle:subscriptionRemoved"
	if strings.Join(got, ",") != want {
		t.Errorf("jobs %v, want %s", got, want)
	}
	if v := float64(b.srv.metrics.dropped(endpointLifecycle, dropUnknownEvent).Get()); v != 1 {
		t.Errorf("unknown events dropped = %v", v)
	}
	b.logs.waitFor(t, `"unknown_event":1`)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	failing := false
	srv, err := New(Options{Logger: zerolog.Nop(), Checks: []Check{
		{Name: "database", Fn: func(context.Context) (string, error) { return "reachable", nil }},
		{Name: "queue", Fn: func(context.Context) (string, error) {
			if failing {
				return "", fmt.Errorf("queue not started")
			}
			return "0 available", nil
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fail   bool
		status int
		queue  string
	}{{false, 200, "ok"}, {true, 503, "fail"}} {
		failing = tc.fail
		rec := httptest.NewRecorder()
		srv.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != tc.status {
			t.Errorf("fail=%v: status %d, want %d", tc.fail, rec.Code, tc.status)
		}
		var body readiness
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if body.Components["queue"].Status != tc.queue || body.Components["database"].Status != "ok" {
			t.Errorf("fail=%v: components %+v", tc.fail, body.Components)
		}
	}
}

func TestMetricsAndHealthz(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.post(t, "/webhooks/graph", "application/json", batch(item(subID, secret, tenant, "AAMk-m")))
	resp, err := http.Get(b.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`m2a_notifications_received_total{endpoint="notifications"} 1`,
		`m2a_notifications_accepted_total{endpoint="notifications"} 1`,
		`m2a_webhook_ack_seconds_count{endpoint="notifications",status="202"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	h, err := http.Get(b.http.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Body.Close()
	if h.StatusCode != 200 {
		t.Errorf("healthz %d", h.StatusCode)
	}
}

func TestAccessLogNeverHoldsBodiesOrTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.post(t, "/webhooks/graph?validationToken=tok-SENSITIVE", "text/plain", nil)
	b.post(t, "/webhooks/graph", "application/json", batch(item(subID, secret, tenant, "AAMk-log")))
	b.logs.waitFor(t, `"status":202`)
	logs := b.logs.waitFor(t, `"status":200`)
	for _, leak := range []string{"tok-SENSITIVE", secret} {
		if strings.Contains(logs, leak) {
			t.Errorf("log contains %q:\n%s", leak, logs)
		}
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	srv, err := New(Options{Logger: zerolog.New(&logs), Checks: []Check{
		{Name: "boom", Fn: func(context.Context) (string, error) { panic("boom") }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.Contains(logs.String(), "handler panicked") {
		t.Error("panic not logged")
	}
}

func TestClientAddressFromTrustedProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, xff, want string }{
		{"10.1.2.3:5555", "198.51.100.7", "198.51.100.7"},
		{"10.1.2.3:5555", "198.51.100.7, 10.9.9.9", "198.51.100.7"}, // a chain of trusted proxies
		{"10.1.2.3:5555", "forged, 198.51.100.7", "198.51.100.7"},   // the client's own entry is not believed
		{"203.0.113.9:5555", "198.51.100.7", "203.0.113.9"},         // untrusted peer: header ignored
	} {
		var logs logBuffer
		srv, err := New(Options{Logger: zerolog.New(&logs),
			TrustedProxies: mustPrefixes(t, "10.0.0.0/8")})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.RemoteAddr = tc.remote
		req.Header.Set("X-Forwarded-For", tc.xff)
		srv.Public().ServeHTTP(httptest.NewRecorder(), req)
		if !strings.Contains(logs.String(), `"client":"`+tc.want+`"`) {
			t.Errorf("remote %s: log %s, want client %s", tc.remote, logs.String(), tc.want)
		}
	}
}

// countingSubscriptions is a SubscriptionSource that counts its loads.
type countingSubscriptions struct {
	mu    sync.Mutex
	calls int
	subs  []subscriptions.Record
}

func (c *countingSubscriptions) Subscriptions(context.Context) ([]subscriptions.Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return append([]subscriptions.Record(nil), c.subs...), nil
}

func (c *countingSubscriptions) loads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestSubscriptionIndexReadsTheDatabaseRarely(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	src := &countingSubscriptions{subs: []subscriptions.Record{{ID: "a", ClientState: "x"}}}
	x := NewSubscriptionIndex(src)
	x.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if _, ok, err := x.lookup(ctx, "a"); err != nil || !ok {
			t.Fatal("a not found", err)
		}
		if _, ok, _ := x.lookup(ctx, fmt.Sprintf("forged-%d", i)); ok {
			t.Fatal("a forged id was found")
		}
	}
	if n := src.loads(); n != 1 {
		t.Fatalf("%d loads for 2000 lookups within a second, want 1", n)
	}
	// A new subscription appears: an unknown id reloads at most once a second.
	src.mu.Lock()
	src.subs = append(src.subs, subscriptions.Record{ID: "b"})
	src.mu.Unlock()
	if _, ok, _ := x.lookup(ctx, "b"); ok {
		t.Fatal("b found before the minimum gap")
	}
	now = now.Add(1100 * time.Millisecond)
	if _, ok, _ := x.lookup(ctx, "b"); !ok {
		t.Fatal("b not found after the gap")
	}
	// A deletion is seen at once when the server is told.
	src.mu.Lock()
	src.subs = src.subs[1:]
	src.mu.Unlock()
	x.Invalidate()
	if _, ok, _ := x.lookup(ctx, "a"); ok {
		t.Fatal("a deleted subscription is still accepted after invalidate")
	}
	// And without being told, within maxAge.
	src.mu.Lock()
	src.subs = nil
	src.mu.Unlock()
	now = now.Add(31 * time.Second)
	if _, ok, _ := x.lookup(ctx, "b"); ok {
		t.Fatal("a deleted subscription outlived maxAge")
	}
}

func TestPublicListenerServesOnlyTheWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/metrics", "/readyz", "/", "/debug/pprof/", "/webhooks/graph/other"} {
		resp, err := http.Get(b.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/metrics", "/readyz"} {
		resp, err := http.Get(b.admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestAdminTokenIsRequiredWhenSet(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef0123456789abcdef"
	srv, err := New(Options{Logger: zerolog.Nop(), AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer " + token + "x", http.StatusUnauthorized},
		{"Basic " + token, http.StatusUnauthorized},
		{"Bearer " + token, http.StatusOK},
	} {
		for _, path := range []string{"/readyz", "/metrics"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			srv.Admin().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s with %q: %d, want %d", path, tc.auth, rec.Code, tc.want)
			}
		}
	}
}

func TestAnOverlongValidationTokenIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	long := strings.Repeat("a", maxValidationToken+1)
	resp := b.post(t, "/webhooks/graph?validationToken="+long, "text/plain", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	ok := strings.Repeat("a", maxValidationToken)
	resp = b.post(t, "/webhooks/graph?validationToken="+ok, "text/plain", nil)
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != ok {
		t.Fatalf("a 1 KiB token: status %d", resp.StatusCode)
	}
}

// forgedBatch is a body of n items naming subscriptions that do not exist.
func forgedBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"value":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"subscriptionId":"x%d"}`, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func TestForgedTrafficCostsNoDatabaseReadAndFewLogLines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	queue, err := st.NewQueue(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := &countingSubscriptions{subs: []subscriptions.Record{{ID: subID, Mailbox: mailbox, ClientState: secret}}}
	var logs logBuffer
	srv, err := New(Options{Subscriptions: NewSubscriptionIndex(src), Enqueuer: queue, TenantID: tenant,
		Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Public())
	t.Cleanup(hs.Close)
	post := func(body []byte) int {
		resp, err := http.Post(hs.URL+"/webhooks/graph", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// Batches within the item limit: every item dropped from memory.
	for i := 0; i < 20; i++ {
		if code := post(forgedBatch(DefaultMaxBatchItems)); code != http.StatusAccepted {
			t.Fatalf("forged batch: %d", code)
		}
	}
	// 1 MiB of forged items: refused whole, unread by the database.
	big := forgedBatch(37000)
	if len(big) > 1<<20 || len(big) < 1<<20-100<<10 {
		t.Fatalf("the forged body is %d bytes, not about 1 MiB", len(big))
	}
	if code := post(big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MiB forged batch: %d, want 413", code)
	}
	if n := src.loads(); n > 2 {
		t.Errorf("%d subscription loads for 20,000 forged items; want at most 2", n)
	}
	if v := float64(srv.metrics.dropped(endpointNotifications, dropUnknownSubscription).Get()); v != 20*DefaultMaxBatchItems {
		t.Errorf("dropped{unknown_subscription} = %v", v)
	}
	// The legitimate notification right after is queued.
	if code := post(batch(item(subID, secret, tenant, "AAMk-real"))); code != http.StatusAccepted {
		t.Fatalf("real notification: %d", code)
	}
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM river_job`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d jobs after the flood, want the real one: %v", n, err)
	}
	// A summary line, not one line per item.
	lines := strings.Count(logs.String(), "notification items dropped")
	if lines < 1 || lines > 3 {
		t.Errorf("%d summary lines for 21 forged requests within a second, want 1..3", lines)
	}
	if !strings.Contains(logs.String(), `"unknown_subscription":1000`) {
		t.Errorf("the summary does not count by reason:\n%s", logs.String())
	}
}
