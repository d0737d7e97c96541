package archer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/outcome"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestARefusedLoginIsTriedAtMostOncePerBackoff(t *testing.T) {
	t.Parallel()
	var logins atomic.Int32
	var refuse atomic.Bool
	refuse.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/security/login") {
			logins.Add(1)
			if refuse.Load() {
				_, _ = io.WriteString(w, notesLoginFailure)
				return
			}
			_, _ = io.WriteString(w, notesLoginOK)
			return
		}
		_, _ = io.WriteString(w, `[{"Links":[],"RequestedObject":{"Id":75,"Name":"X"},"IsSuccessful":true,"ValidationMessages":[]}]`)
	}))
	t.Cleanup(srv.Close)
	clock := &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	c, err := New(Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "wrong", Now: clock.Now}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A thousand calls within the minute reach Archer's login once.
	for i := 0; i < 1000; i++ {
		err := c.Ping(ctx)
		if !errors.Is(err, ErrLogin) || Decide(err).Action != outcome.WaitOperator {
			t.Fatalf("call %d: %v", i, err)
		}
		if i%100 == 0 {
			clock.Advance(time.Second)
		}
	}
	if n := logins.Load(); n != 1 {
		t.Fatalf("%d logins within the backoff, want 1", n)
	}
	clock.Advance(DefaultLoginBackoff)
	if err := c.Ping(ctx); !errors.Is(err, ErrLogin) {
		t.Fatalf("after the backoff: %v", err)
	}
	if n := logins.Load(); n != 2 {
		t.Fatalf("%d logins after one backoff, want 2", n)
	}
	// The account is fixed: the next login after the backoff succeeds and
	// clears the refusal for good.
	refuse.Store(false)
	clock.Advance(DefaultLoginBackoff)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("after the fix: %v", err)
	}
	if err := c.Ping(ctx); err != nil || logins.Load() != 3 {
		t.Fatalf("second call after the fix: %v, %d logins", err, logins.Load())
	}
}

func TestATransientLoginFailureIsNotBackedOff(t *testing.T) {
	t.Parallel()
	var logins atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/security/login") {
			if logins.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, notesLoginOK)
			return
		}
		_, _ = io.WriteString(w, `[]`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "p"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); Decide(err).Action != outcome.Retry {
		t.Fatalf("first: %v", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("second: %v", err)
	}
}

func TestIsSuccessfulMayBeAString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body    string
		wantErr bool
	}{
		{`{"RequestedObject":{"Id":7},"IsSuccessful":"true"}`, false},
		{`{"RequestedObject":{"Id":7},"IsSuccessful":"True"}`, false},
		{`{"RequestedObject":null,"IsSuccessful":"false","ValidationMessages":[{"ResourcedMessage":"No."}]}`, true},
		{`{"RequestedObject":{"Id":7},"IsSuccessful":"yes"}`, true},
		{`{"Message":"An error has occurred."}`, true},
	}
	for _, tc := range cases {
		var out struct{ Id int64 }
		err := decodeWrapper("create", []byte(tc.body), &out, nil)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.body, err)
		}
		if err == nil && out.Id != 7 {
			t.Errorf("%s: id %d", tc.body, out.Id)
		}
	}
}

func TestContentAPILookupSendsTheSessionBothWays(t *testing.T) {
	t.Parallel()
	var sawHeader, sawCookie atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/security/login"):
			_, _ = io.WriteString(w, notesLoginOK)
		case strings.Contains(r.URL.Path, "/contentapi/"):
			sawHeader.Store(strings.Contains(r.Header.Get("Authorization"), "C204E18D0ED58E288533F39C455A36E8"))
			ck, err := r.Cookie("__ArcherSessionCookie__")
			sawCookie.Store(err == nil && ck.Value == "C204E18D0ED58E288533F39C455A36E8")
			_, _ = io.WriteString(w, `{"value":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "p"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	lvl := &Level{ID: 1, Alias: "Incidents"}
	f := Field{ID: 2, Name: "Key", Alias: "Key", Type: FieldText}
	ids, err := c.FindByField(context.Background(), nil, lvl, f, "k")
	if err != nil || len(ids) != 0 {
		t.Fatalf("find: %v %v", ids, err)
	}
	if !sawHeader.Load() || !sawCookie.Load() {
		t.Fatalf("header %v cookie %v", sawHeader.Load(), sawCookie.Load())
	}
}

func TestAnUnusableContentAPIWaitsForAnOperator(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/security/login"):
			_, _ = io.WriteString(w, notesLoginOK)
		case strings.Contains(r.URL.Path, "/contentapi/Forbidden"):
			w.WriteHeader(http.StatusForbidden)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "p"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	key := Field{ID: 2, Name: "Key", Alias: "Key", Type: FieldText}
	cases := []struct {
		name  string
		level *Level
		field Field
	}{
		{"forbidden", &Level{Alias: "Forbidden"}, key},
		{"no endpoint", &Level{Alias: "Missing"}, key},
		{"level without alias", &Level{ID: 3}, key},
		{"field without alias", &Level{Alias: "Forbidden"}, Field{ID: 2, Name: "Key", Type: FieldText}},
	}
	for _, tc := range cases {
		_, err := c.FindByField(context.Background(), nil, tc.level, tc.field, "k")
		if !errors.Is(err, ErrNoContentAPI) || Decide(err).Action != outcome.WaitOperator {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
