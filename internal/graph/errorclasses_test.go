package graph

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/mail2archer/mail2archer/subscriptions"
)

func deliver(t *testing.T, b *bundle) graphsim.Message {
	t.Helper()
	id, err := b.sim.Deliver(testMailbox, "inbox", report(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.sim.Message(testMailbox, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T) is not a *graph.Error", err, err)
	}
	return ge
}

func TestErrorClassesFromSimulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    graphsim.Options
		prepare func(t *testing.T, b *bundle)
		call    func(b *bundle, id string) error
		class   Class
		status  int
		check   func(t *testing.T, e *Error)
	}{
		{
			name:    "throttled with Retry-After",
			opts:    graphsim.Options{Budget: 1, BudgetWindow: 10 * time.Minute},
			prepare: func(t *testing.T, b *bundle) {},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassRetryAfter, status: 429,
			check: func(t *testing.T, e *Error) {
				if e.RetryAfter != 10*time.Minute {
					t.Errorf("RetryAfter = %v, want the window's remaining 10m", e.RetryAfter)
				}
			},
		},
		{
			name: "503 without Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Status: 503})
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassTransient, status: 503,
		},
		{
			name: "504 on delta",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteDelta, Status: 504})
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.Delta(ctx, testMailbox, "inbox", "", time.Time{})
				return err
			},
			class: ClassTransient, status: 504,
		},
		{
			name: "message gone",
			prepare: func(t *testing.T, b *bundle) {
				m := deliver(t, b)
				if err := b.sim.RemoveMessage(testMailbox, m.ImmutableID); err != nil {
					t.Fatal(err)
				}
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, "AAkALgAAAAAAHYQDEapmEc2byACqACgone", io.Discard)
				return err
			},
			class: ClassNotFound, status: 404,
			check: func(t *testing.T, e *Error) {
				if e.Code != "ErrorItemNotFound" {
					t.Errorf("code %s", e.Code)
				}
				if errors.Is(e, subscriptions.ErrNotFound) || errors.Is(e, subscriptions.ErrDeltaExpired) {
					t.Errorf("a message that is gone reads as a subscription or delta failure: %v", e)
				}
			},
		},
		{
			name: "no access to the mailbox",
			prepare: func(t *testing.T, b *bundle) {
				_ = b.sim.SetAccess(testMailbox, graphsim.AccessNone)
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassPermission, status: 403,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "lacks Mail.Read on mailbox phish@contoso.com") {
					t.Errorf("message %q is not actionable", e.Message)
				}
			},
		},
		{
			name: "write-back without Mail.ReadWrite",
			prepare: func(t *testing.T, b *bundle) {
				_ = b.sim.SetAccess(testMailbox, graphsim.AccessRead)
			},
			call: func(b *bundle, id string) error {
				return b.client.Categorize(ctx, testMailbox, id, []string{"Archer 1"})
			},
			class: ClassPermission, status: 403,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "lacks Mail.ReadWrite on mailbox phish@contoso.com") {
					t.Errorf("message %q is not actionable", e.Message)
				}
			},
		},
		{
			name: "unknown mailbox",
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, "nobody@contoso.com", id, io.Discard)
				return err
			},
			class: ClassPermission, status: 404,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "nobody@contoso.com does not exist") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
		{
			name: "token endpoint rejects the secret",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteToken, Status: 401, Code: "invalid_client", Message: "AADSTS7000215: Invalid client secret provided."})
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.ListSubscriptions(ctx)
				return err
			},
			class: ClassPermission, status: 401,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "credential") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
		{
			name: "Graph rejects the token",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Status: 401})
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassPermission, status: 401,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "rejected the access token") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
		{
			name: "delta needs a full resync",
			prepare: func(t *testing.T, b *bundle) {
				page, err := b.client.Delta(ctx, testMailbox, "inbox", "", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				b.sim.ExpireDeltaLinks(graphsim.ResyncRequired)
				b.hook.last = page.DeltaLink
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.Delta(ctx, testMailbox, "inbox", b.hook.last, time.Time{})
				return err
			},
			class: ClassNotFound, status: 410,
			check: func(t *testing.T, e *Error) {
				if !errors.Is(e, subscriptions.ErrDeltaExpired) {
					t.Errorf("%v does not match subscriptions.ErrDeltaExpired", e)
				}
			},
		},
		{
			name: "Graph unreachable",
			prepare: func(t *testing.T, b *bundle) {
				if _, err := b.client.ListSubscriptions(ctx); err != nil {
					t.Fatal(err)
				}
				b.srv.Close()
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassTransient,
		},
		{
			name: "token endpoint unreachable",
			call: func(b *bundle, id string) error {
				dead := httptest.NewTLSServer(http.NotFoundHandler())
				dead.Close()
				c, err := New(Config{TenantID: testTenant, ClientID: testApp, ClientSecret: testSecret,
					BaseURL: b.srv.URL + "/v1.0", AuthorityHost: dead.URL, HTTPClient: b.srv.Client(), MaxRetries: -1}, nopLog())
				if err != nil {
					return err
				}
				_, err = c.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassTransient,
		},
		{
			name: "subscription quota",
			opts: graphsim.Options{MaxSubscriptionsPerMailbox: 1},
			prepare: func(t *testing.T, b *bundle) {
				b.subscribe(t)
			},
			call: func(b *bundle, id string) error {
				_, err := b.client.CreateSubscription(ctx, subscriptions.Request{Mailbox: testMailbox, Folder: "archive",
					NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour)})
				return err
			},
			class: ClassPermission, status: 403,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "subscription quota") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
		{
			name: "expiry beyond the maximum",
			call: func(b *bundle, id string) error {
				_, err := b.client.CreateSubscription(ctx, subscriptions.Request{Mailbox: testMailbox, Folder: "inbox",
					NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(10080 * time.Minute)})
				return err
			},
			class: ClassPermanent, status: 400,
			check: func(t *testing.T, e *Error) {
				if e.Code != "ExtensionError" || !strings.Contains(e.Message, "10070 minutes") {
					t.Errorf("got %s %q", e.Code, e.Message)
				}
			},
		},
		{
			name: "notification URL fails validation",
			call: func(b *bundle, id string) error {
				bad := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
				_, err := b.client.CreateSubscription(ctx, subscriptions.Request{Mailbox: testMailbox, Folder: "inbox",
					NotificationURL: bad, ExpiresAt: b.sim.Now().Add(time.Hour)})
				return err
			},
			class: ClassPermission, status: 400,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "could not validate the notification URL") || !strings.Contains(e.Message, "Forbidden") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
		{
			name: "message larger than the cap",
			call: func(b *bundle, id string) error {
				small, err := New(Config{TenantID: testTenant, ClientID: testApp, ClientSecret: testSecret,
					BaseURL: b.srv.URL + "/v1.0", AuthorityHost: b.srv.URL, HTTPClient: b.srv.Client(), MaxMIMEBytes: 100, MaxRetries: -1}, nopLog())
				if err != nil {
					return err
				}
				_, err = small.FetchMessage(ctx, testMailbox, id, io.Discard)
				return err
			},
			class: ClassPermanent,
			check: func(t *testing.T, e *Error) {
				if !strings.Contains(e.Message, "larger than the configured limit of 100 bytes") {
					t.Errorf("message %q", e.Message)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts)
			m := deliver(t, b)
			if tt.prepare != nil {
				tt.prepare(t, b)
			}
			err := tt.call(b, m.ImmutableID)
			if err == nil {
				t.Fatal("expected an error")
			}
			e := asError(t, err)
			if e.Class != tt.class || (tt.status != 0 && e.Status != tt.status) {
				t.Fatalf("got class %v status %d (%v), want %v %d", e.Class, e.Status, err, tt.class, tt.status)
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

func TestSDKRetriesHonourRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{}, func(c *Config) { c.MaxRetries = 2 })
	m := deliver(t, b)
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Status: 429, RetryAfter: time.Second, Times: 1})
	start := time.Now()
	if _, err := b.client.FetchMessage(context.Background(), testMailbox, m.ImmutableID, io.Discard); err != nil {
		t.Fatalf("the SDK should have retried the 429: %v", err)
	}
	if time.Since(start) < time.Second {
		t.Error("the retry did not wait for Retry-After")
	}
	gets := 0
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/messages/") && !strings.HasSuffix(r.Path, "$value") {
			gets++
		}
	}
	if gets != 2 {
		t.Errorf("message GETs = %d, want 2", gets)
	}

	// A wait longer than MaxRetryAfter is handed to the caller at once.
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Status: 429, RetryAfter: 2 * time.Minute})
	start = time.Now()
	_, err := b.client.FetchMessage(context.Background(), testMailbox, m.ImmutableID, io.Discard)
	if d, ok := RetryAfter(err); !ok || d != 2*time.Minute {
		t.Errorf("got %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the SDK waited out a long Retry-After")
	}
}

func TestMailboxConcurrencyStaysWithinGraphLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	m := deliver(t, b)
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Latency: 100 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.client.FetchMessage(context.Background(), testMailbox, m.ImmutableID, io.Discard)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("12 concurrent fetches against a 4-concurrency mailbox: %v", err)
		}
	}
}
