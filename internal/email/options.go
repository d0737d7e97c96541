package email

import (
	"errors"
	"strings"
	"time"
)

// The bounds. Analyze wraps them with context; test with errors.Is.
var (
	// ErrTooLarge means the raw message exceeds Options.MaxBytes.
	ErrTooLarge = errors.New("message too large")
	// ErrTooDeep means MIME parts or attached emails nest deeper than
	// Options.MaxDepth.
	ErrTooDeep = errors.New("message nested too deeply")
	// ErrTooManyParts means the message has more MIME parts than
	// Options.MaxParts.
	ErrTooManyParts = errors.New("message has too many parts")
	// ErrTimeout means the analysis took longer than Options.Timeout.
	ErrTimeout = errors.New("message analysis timed out")
)

// Defaults applied by DefaultOptions and to zero fields of Options.
const (
	DefaultMaxBytes = 50 << 20
	DefaultMaxDepth = 10
	DefaultMaxParts = 500
	DefaultTimeout  = 10 * time.Second
)

// Options bound the work Analyze does and configure the indicators. A zero
// field takes its default.
type Options struct {
	// InternalDomains are the organisation's own domains: senders and links
	// imitating them are flagged as lookalikes, a sender outside them is an
	// external sender (Signals.ExternalSender), a message from outside them
	// is never read as a colleague's inline forward, and relays named in
	// them are not taken for the connecting host.
	InternalDomains []string
	// MaxBytes is the largest raw message accepted (default 50 MiB).
	MaxBytes int64
	// MaxDepth bounds the nesting of multipart containers within one email
	// and of emails attached to emails (default 10).
	MaxDepth int
	// MaxParts bounds the MIME parts of the message and all attached emails
	// together (default 500).
	MaxParts int
	// Timeout bounds the whole analysis (default 10 s). It is checked between
	// stages; a single stage is bounded by MaxBytes.
	Timeout time.Duration
}

// DefaultOptions returns the default bounds and no internal domains.
func DefaultOptions() Options {
	return Options{
		MaxBytes: DefaultMaxBytes,
		MaxDepth: DefaultMaxDepth,
		MaxParts: DefaultMaxParts,
		Timeout:  DefaultTimeout,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxBytes <= 0 {
		o.MaxBytes = d.MaxBytes
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = d.MaxDepth
	}
	if o.MaxParts <= 0 {
		o.MaxParts = d.MaxParts
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	internal := make([]string, 0, len(o.InternalDomains))
	for _, dom := range o.InternalDomains {
		dom = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(dom)), ".")
		if dom != "" {
			internal = append(internal, dom)
		}
	}
	o.InternalDomains = internal
	return o
}
