package archer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// ErrSession means Archer rejected the session token even after a fresh
// login (for example because another login of the same account replaced
// it). It is transient: a later attempt logs in again.
var ErrSession = errors.New("archer session rejected")

// ErrLogin means Archer refused the configured credentials. It is
// permanent until the configuration changes.
var ErrLogin = errors.New("archer login refused")

// ErrNotFound matches (with errors.Is) a ValidationError whose message is
// Archer's "No resource found.".
var ErrNotFound = errors.New("archer resource not found")

// ErrUnexpectedHTML matches (with errors.Is) an *HTMLError.
var ErrUnexpectedHTML = errors.New("archer answered with an HTML page instead of JSON")

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("archer client closed")

// ValidationError is Archer's answer with IsSuccessful:false: the request
// reached Archer and was refused. Messages holds every validation message
// (ResourcedMessage, or MessageKey when that is null).
type ValidationError struct {
	// Op names the operation, e.g. "create record".
	Op string
	// Messages are Archer's validation messages, in order.
	Messages []string
}

// Error joins the messages.
func (e *ValidationError) Error() string {
	if len(e.Messages) == 0 {
		return fmt.Sprintf("archer %s: request not successful (no validation message)", e.Op)
	}
	return fmt.Sprintf("archer %s: %s", e.Op, strings.Join(e.Messages, "; "))
}

// Is makes errors.Is(err, ErrNotFound) true for "No resource found.".
func (e *ValidationError) Is(target error) bool {
	if target != ErrNotFound {
		return false
	}
	for _, m := range e.Messages {
		if strings.EqualFold(strings.TrimSpace(m), "No resource found.") {
			return true
		}
	}
	return false
}

// StatusError is an HTTP status Archer (or a proxy in front of it) answered
// with, other than 2xx and 401.
type StatusError struct {
	Op         string
	Method     string
	URL        string
	StatusCode int
	// Body is the start of the response body, for the log.
	Body string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

// Error names the operation, the URL and the status.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("archer %s: %s %s: HTTP %d", e.Op, e.Method, e.URL, e.StatusCode)
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// HTMLError is an HTML page where JSON was expected. Cause names the most
// likely reason: a wrong base URL, virtual directory or API prefix, or single
// sign-on intercepting the API user.
type HTMLError struct {
	Op         string
	URL        string
	StatusCode int
	Cause      string
	// Snippet is the start of the page, for the log.
	Snippet string
}

// Error names the operation, the URL and the likely cause.
func (e *HTMLError) Error() string {
	return fmt.Sprintf("archer %s: %s answered HTTP %d with an HTML page instead of JSON; likely cause: %s", e.Op, e.URL, e.StatusCode, e.Cause)
}

// Is makes errors.Is(err, ErrUnexpectedHTML) true.
func (e *HTMLError) Is(target error) bool { return target == ErrUnexpectedHTML }

// UnknownValueError is returned by ResolveValue when no selectable value of a
// values list has the requested name.
type UnknownValueError struct {
	Field string
	Name  string
	// Reason explains why nothing matched (not found, ambiguous, not selectable).
	Reason string
	// Available lists the selectable values, by path.
	Available []string
}

// Error lists the names that would have matched.
func (e *UnknownValueError) Error() string {
	return fmt.Sprintf("archer field %q: %s %q; available: %s", e.Field, e.Reason, e.Name, strings.Join(e.Available, ", "))
}

// IsTransient reports whether err may succeed when the same call is tried
// again later: 5xx other than 501, 408, 429, timeouts, connection failures
// and a session that was rejected even after a fresh login. Validation
// errors, refused logins, other 4xx, HTML pages (wrong URL or SSO), TLS
// certificate problems and cancellation by the caller are permanent.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var (
		se   *StatusError
		ve   *ValidationError
		he   *HTMLError
		uae  x509.UnknownAuthorityError
		cie  x509.CertificateInvalidError
		hne  x509.HostnameError
		cve  *tls.CertificateVerificationError
		rhe  tls.RecordHeaderError
		nerr net.Error
		oerr *net.OpError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &se):
		return se.StatusCode == 408 || se.StatusCode == 429 || se.StatusCode >= 500 && se.StatusCode != 501
	case errors.As(err, &ve), errors.As(err, &he), errors.Is(err, ErrLogin), errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrSession):
		return true
	case errors.As(err, &uae), errors.As(err, &cie), errors.As(err, &hne), errors.As(err, &cve), errors.As(err, &rhe):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &nerr) && nerr.Timeout():
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &oerr):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	}
	return false
}
