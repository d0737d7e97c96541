package subscriptions_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

func TestNewRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		edit func(*subscriptions.Config)
		want string
	}{
		{"no mailbox", func(c *subscriptions.Config) { c.Mailboxes = nil }, "no mailbox"},
		{"empty mailbox", func(c *subscriptions.Config) { c.Mailboxes = []string{""} }, "empty"},
		{"padded mailbox", func(c *subscriptions.Config) { c.Mailboxes = []string{" a@b.c"} }, "spaces"},
		{"path in mailbox", func(c *subscriptions.Config) { c.Mailboxes = []string{"a@b.c/../../x"} }, "user id or UPN"},
		{"quote in mailbox", func(c *subscriptions.Config) { c.Mailboxes = []string{"a'b@c.d"} }, "user id or UPN"},
		{"duplicate mailbox", func(c *subscriptions.Config) { c.Mailboxes = []string{"a@b.c", "A@B.C"} }, "listed twice"},
		{"quote in folder", func(c *subscriptions.Config) { c.Folder = "Inbox')/x" }, "folder"},
		{"no notification URL", func(c *subscriptions.Config) { c.NotificationURL = "" }, "notification URL: missing"},
		{"http notification URL", func(c *subscriptions.Config) { c.NotificationURL = "http://m2a.example.com/x" }, "https://"},
		{"relative lifecycle URL", func(c *subscriptions.Config) { c.LifecycleURL = "/webhooks/graph/lifecycle" }, "no host"},
		{"bad URL", func(c *subscriptions.Config) { c.LifecycleURL = "https://[::1" }, "not a URL"},
		{"lifetime too short", func(c *subscriptions.Config) { c.MaxLifetime = time.Minute }, "between"},
		{"lifetime too long", func(c *subscriptions.Config) { c.MaxLifetime = 8 * 24 * time.Hour }, "between"},
		{"negative interval", func(c *subscriptions.Config) { c.ResyncInterval = -time.Second }, "must be positive"},
		{"retry bounds crossed", func(c *subscriptions.Config) { c.RetryMin, c.RetryMax = time.Hour, time.Minute }, "shorter than the minimum"},
		{"negative pages", func(c *subscriptions.Config) { c.MaxDeltaPages = -1 }, "pages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig()
			c.edit(&cfg)
			clock := subscriptionstest.NewClock(t0)
			_, err := subscriptions.New(cfg, subscriptionstest.NewGraph(clock), subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{Clock: clock})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestNewReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := subscriptions.New(subscriptions.Config{MaxLifetime: time.Minute}, subscriptionstest.NewGraph(subscriptionstest.NewClock(t0)),
		subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{})
	if err == nil {
		t.Fatal("New accepted an empty configuration")
	}
	for _, want := range []string{"no mailbox", "notification URL", "lifecycle URL", "maximum lifetime"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNewNeedsItsCollaborators(t *testing.T) {
	t.Parallel()
	if _, err := subscriptions.New(baseConfig(), nil, nil, nil, subscriptions.Options{}); err == nil {
		t.Fatal("New accepted nil collaborators")
	}
}

func TestHTTPURLsOnlyWhenAllowed(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.NotificationURL, cfg.LifecycleURL, cfg.AllowHTTP = "http://127.0.0.1:8080/webhooks/graph", "http://127.0.0.1:8080/webhooks/graph/lifecycle", true
	clock := subscriptionstest.NewClock(t0)
	if _, err := subscriptions.New(cfg, subscriptionstest.NewGraph(clock), subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{Clock: clock}); err != nil {
		t.Fatal(err)
	}
}

func TestRandomSourceFailureIsAnError(t *testing.T) {
	t.Parallel()
	clock := subscriptionstest.NewClock(t0)
	// Enough bytes for the holder name, then nothing: the clientState
	// cannot be drawn and no subscription is created without one.
	m, err := subscriptions.New(baseConfig(), subscriptionstest.NewGraph(clock), subscriptionstest.NewStore(),
		subscriptionstest.NewQueue(), subscriptions.Options{Clock: clock, Rand: bytes.NewReader(make([]byte, 4))})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.ReconcileOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "clientState") || !rep.Managed {
		t.Fatalf("ReconcileOnce = %+v, %v", rep, err)
	}
}
