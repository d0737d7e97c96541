package archer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/mail2archer/mail2archer/internal/outcome"
)

// ErrSession means Archer rejected the session token even after a fresh
// login (for example because another login of the same account replaced
// it). It is transient: a later attempt logs in again.
var ErrSession = errors.New("archer session rejected")

// ErrLogin means Archer refused the configured credentials. It lasts until
// an operator fixes the configuration or the account; the client then
// tries at most one login per Config.LoginBackoff.
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

// ErrNoContentAPI means the Content API gave no endpoint for a level or
// refused to read it, so records cannot be looked up by their key. It
// matches (with errors.Is) the error FindByField returns then.
var ErrNoContentAPI = errors.New("archer content API unavailable for the level")

// Decide is the one place where a failed Archer call becomes a decision:
//
//   - a refused login, a single sign-on or other HTML page, an untrusted
//     certificate, a 403 and an unusable Content API wait for an operator;
//   - 429 and 503 with Retry-After snooze for that long;
//   - 408, 429, 5xx other than 501, timeouts, connection failures, a session
//     rejected after a fresh login and answers that are not Archer's retry
//     with backoff;
//   - Archer's validation messages, 501 and other 4xx end the work.
//
// Decide(nil) is a Retry with an empty reason; callers do not ask.
func Decide(err error) outcome.Decision {
	d := outcome.Decision{Component: "archer", Action: outcome.Retry}
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
	wait := func(reason, fix string) outcome.Decision {
		d.Action, d.Reason, d.Fix = outcome.WaitOperator, reason, fix
		return d
	}
	switch {
	case err == nil:
		return d
	case errors.Is(err, ErrLogin):
		return wait("archer_login_refused", "Archer refused the API user's login: check M2A_ARCHER_USERNAME, M2A_ARCHER_PASSWORD, "+
			"M2A_ARCHER_USER_DOMAIN and M2A_ARCHER_INSTANCE, and that the account is neither locked nor expired")
	case errors.As(err, &he):
		return wait("archer_html_page", "Archer answered with a web page: "+he.Cause)
	case errors.As(err, &uae), errors.As(err, &cie), errors.As(err, &hne), errors.As(err, &cve), errors.As(err, &rhe),
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return wait("archer_tls", "Archer's TLS certificate is not trusted: set M2A_ARCHER_CA_FILE to the CA that issued it, "+
			"check that the certificate names the host of M2A_ARCHER_URL, and that the URL's scheme matches the server")
	case errors.Is(err, ErrNoContentAPI):
		return wait("archer_lookup_unavailable", "the Content API cannot read the incident level: give the API user's role read "+
			"access to the application, check that the level and the key field have aliases, and that {base}/contentapi/ is served")
	case errors.As(err, &se):
		d.Reason = fmt.Sprintf("archer_http_%d", se.StatusCode)
		switch {
		case (se.StatusCode == http.StatusTooManyRequests || se.StatusCode == http.StatusServiceUnavailable) && se.RetryAfter > 0:
			d.Action, d.After = outcome.Snooze, se.RetryAfter
		case se.StatusCode == http.StatusRequestTimeout, se.StatusCode == http.StatusTooManyRequests,
			se.StatusCode >= 500 && se.StatusCode != http.StatusNotImplemented:
			d.Action = outcome.Retry
		case se.StatusCode == http.StatusForbidden:
			return wait("archer_forbidden", "Archer answered 403 Forbidden: give the API user's role the rights on the "+
				"application (create and read records) and the API, or check a proxy in front of Archer")
		default:
			d.Action = outcome.End
		}
		return d
	case errors.As(err, &ve):
		d.Action, d.Reason = outcome.End, "archer_validation"
		return d
	case errors.Is(err, ErrSession):
		d.Reason = "archer_session"
	case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled):
		d.Reason = "archer_cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		d.Reason = "archer_timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &oerr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		d.Reason = "archer_unreachable"
	default:
		d.Reason = "archer_error"
	}
	return d
}
