package subscriptions

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Limits and defaults of the configuration.
const (
	// DefaultMaxLifetime is the default requested subscription lifetime:
	// 10,000 minutes, safely under the 10,070 minutes live Graph accepts
	// for mail.
	DefaultMaxLifetime = 10000 * time.Minute
	// MinLifetime is the shortest lifetime Graph grants; shorter requests
	// are raised to it.
	MinLifetime = 45 * time.Minute
	// LimitLifetime is the longest lifetime live Graph accepts for mail:
	// 10,070 minutes (it refuses the documented 10,080).
	LimitLifetime = 10070 * time.Minute
	// DefaultFolder is the folder watched when none is configured.
	DefaultFolder = "Inbox"
	// DefaultResyncInterval is the period of the backstop resync.
	DefaultResyncInterval = 15 * time.Minute
	// DefaultFullResyncWindow bounds a full resync after an expired delta
	// link: messages received longer ago are not queued again.
	DefaultFullResyncWindow = 72 * time.Hour
	// DefaultLeaseTTL is how long a leader's lease lasts unless extended.
	DefaultLeaseTTL = 30 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the backoff of failed
	// Graph calls.
	DefaultRetryMin = 30 * time.Second
	DefaultRetryMax = 15 * time.Minute
	// DefaultMaxDeltaPages bounds one resync round.
	DefaultMaxDeltaPages = 1000
	// ReauthorizeGap is the least time between two reauthorizing calls
	// (reauthorize or renew) on one subscription, as Graph asks.
	ReauthorizeGap = 10 * time.Minute
	// LeaseName names the lease the Managers of one database compete for.
	LeaseName = "subscriptions"
)

// Config says which folders to watch and where Graph sends notifications.
type Config struct {
	// Mailboxes are the user ids or UPNs to watch; at least one, no repeats
	// (compared without case).
	Mailboxes []string
	// Folder is the watched folder of every mailbox, a well-known name or
	// a folder id; default Inbox.
	Folder string
	// NotificationURL is the HTTPS URL that receives change notifications,
	// e.g. https://mail2archer.example.com/webhooks/graph.
	NotificationURL string
	// LifecycleURL is the HTTPS URL that receives lifecycle events, e.g.
	// https://mail2archer.example.com/webhooks/graph/lifecycle.
	LifecycleURL string
	// AllowHTTP accepts http:// URLs (tests and simulators only: Graph
	// itself requires HTTPS).
	AllowHTTP bool
	// MaxLifetime is the lifetime requested on creation and renewal;
	// default 10,000 minutes, between 45 minutes and 10,070 minutes.
	MaxLifetime time.Duration
	// ResyncInterval is the period of the backstop resync; default 15
	// minutes.
	ResyncInterval time.Duration
	// InitialSyncSince bounds the first resync of a folder that has no
	// delta link yet: only messages received at or after it are queued.
	// Zero means the time this Manager first saw the mailbox, kept in the
	// Store so it is the same after every restart: the mailbox's history is
	// never backfilled by accident.
	InitialSyncSince time.Time
	// FullResyncWindow bounds the full round that follows an expired delta
	// link: messages received earlier than this before now are not queued;
	// default 72 hours. The bound is never earlier than the initial sync's.
	FullResyncWindow time.Duration
	// LeaseTTL is the leader's lease; it is extended every third of it,
	// and a standby takes over within it when the leader dies; default 30
	// seconds.
	LeaseTTL time.Duration
	// RetryMin and RetryMax bound the exponential backoff of failed
	// creations, renewals and resyncs; default 30 seconds and 15 minutes.
	RetryMin, RetryMax time.Duration
	// MaxDeltaPages bounds the pages of one resync round; default 1,000.
	MaxDeltaPages int
	// Holder names this replica in the lease; default host name plus a
	// random suffix.
	Holder string
}

// Options are the Manager's collaborators that are not part of its
// configuration. The zero value is usable.
type Options struct {
	// Clock is the time source; default the system clock.
	Clock Clock
	// Logger receives the Manager's logs; nil discards them.
	Logger *slog.Logger
	// OnEvent, when set, receives every Event: each creation, renewal and
	// reauthorization with its outcome, each lifecycle event acted on, each
	// resync round and each change of leadership. It is called from the
	// Manager's goroutines, possibly from several at once, and must return
	// quickly without blocking: the Manager waits for it.
	OnEvent func(Event)
	// Rand is the source of clientState secrets and jitter; default
	// crypto/rand.
	Rand io.Reader
}

func (c *Config) withDefaults() Config {
	out := *c
	out.Mailboxes = append([]string(nil), c.Mailboxes...)
	if out.Folder == "" {
		out.Folder = DefaultFolder
	}
	if out.MaxLifetime == 0 {
		out.MaxLifetime = DefaultMaxLifetime
	}
	if out.ResyncInterval == 0 {
		out.ResyncInterval = DefaultResyncInterval
	}
	if out.FullResyncWindow == 0 {
		out.FullResyncWindow = DefaultFullResyncWindow
	}
	if out.LeaseTTL == 0 {
		out.LeaseTTL = DefaultLeaseTTL
	}
	if out.RetryMin == 0 {
		out.RetryMin = DefaultRetryMin
	}
	if out.RetryMax == 0 {
		out.RetryMax = DefaultRetryMax
	}
	if out.MaxDeltaPages == 0 {
		out.MaxDeltaPages = DefaultMaxDeltaPages
	}
	return out
}

// validate reports every problem of a defaulted configuration at once.
func (c *Config) validate() error {
	var errs []error
	if len(c.Mailboxes) == 0 {
		errs = append(errs, errors.New("no mailbox configured"))
	}
	seen := map[string]bool{}
	for _, mb := range c.Mailboxes {
		switch {
		case strings.TrimSpace(mb) != mb || mb == "":
			errs = append(errs, fmt.Errorf("mailbox %q: empty or surrounded by spaces", mb))
		case strings.ContainsAny(mb, "/?#'\\ \t\r\n"):
			errs = append(errs, fmt.Errorf("mailbox %q: must be a user id or UPN", mb))
		case seen[strings.ToLower(mb)]:
			errs = append(errs, fmt.Errorf("mailbox %q: listed twice", mb))
		}
		seen[strings.ToLower(mb)] = true
	}
	if strings.ContainsAny(c.Folder, "/?#'\\\t\r\n") || strings.TrimSpace(c.Folder) != c.Folder {
		errs = append(errs, fmt.Errorf("folder %q: must be a well-known folder name or a folder id", c.Folder))
	}
	for _, u := range []struct{ name, v string }{{"notification URL", c.NotificationURL}, {"lifecycle URL", c.LifecycleURL}} {
		if err := checkURL(u.v, c.AllowHTTP); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if c.MaxLifetime < MinLifetime || c.MaxLifetime > LimitLifetime {
		errs = append(errs, fmt.Errorf("maximum lifetime %s: must be between %s and %s", c.MaxLifetime, MinLifetime, LimitLifetime))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"resync interval", c.ResyncInterval}, {"full resync window", c.FullResyncWindow}, {"lease TTL", c.LeaseTTL},
		{"minimum retry delay", c.RetryMin}, {"maximum retry delay", c.RetryMax}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", d.name, d.v))
		}
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("maximum retry delay %s is shorter than the minimum %s", c.RetryMax, c.RetryMin))
	}
	if c.LeaseTTL > 0 && c.LeaseTTL < 3*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease TTL %s: too short", c.LeaseTTL))
	}
	if c.MaxDeltaPages < 0 {
		errs = append(errs, fmt.Errorf("maximum delta pages %d: must be positive", c.MaxDeltaPages))
	}
	if len(errs) > 0 {
		return fmt.Errorf("subscriptions configuration: %w", errors.Join(errs...))
	}
	return nil
}

func checkURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		return fmt.Errorf("%q must be https:// (Graph delivers only over HTTPS)", raw)
	}
	return nil
}
