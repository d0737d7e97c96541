package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// Class tells the caller what to do about a failed call.
type Class int

const (
	// ClassPermanent: retrying the same call will fail the same way.
	ClassPermanent Class = iota
	// ClassTransient: retry later with backoff (5xx, timeouts, network).
	ClassTransient
	// ClassRetryAfter: Graph throttled the call; wait Error.RetryAfter.
	ClassRetryAfter
	// ClassNotFound: the message, subscription or delta state is gone.
	ClassNotFound
	// ClassPermission: configuration or permission problem that needs an
	// operator; Error.Message says what to fix.
	ClassPermission
)

// String names the class.
func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassRetryAfter:
		return "retry-after"
	case ClassNotFound:
		return "not-found"
	case ClassPermission:
		return "permission"
	default:
		return "permanent"
	}
}

// Error is every error the Client returns.
type Error struct {
	// Op names the operation and its subject, e.g. "fetch message AAMk…".
	Op string
	// Status is the HTTP status; zero when no response was received.
	Status int
	// Code is Graph's error code, e.g. ErrorItemNotFound.
	Code string
	// Message is Graph's message, or advice for ClassPermission.
	Message string
	// Class is what the caller should do.
	Class Class
	// RetryAfter is the wait Graph asked for (ClassRetryAfter).
	RetryAfter time.Duration
	// MaybeSent is set by SendMail alone, for a failure after which
	// Exchange may have taken the message all the same: no answer after
	// the request went out whole (a timeout, a reset connection, a
	// cancelled context), a 504, or another 5xx but 503 with Retry-After.
	// Sending again could deliver the message twice, so it takes
	// precedence over Class: Decide ends the work with the reason
	// "ack_maybe_sent" whatever the class says.
	MaybeSent bool
	// Err is the underlying error.
	Err error
}

// Error formats the error with its operation, status and code.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("graph: ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Class == ClassRetryAfter {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.MaybeSent {
		b.WriteString(" (the message may have been sent)")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err: the Class of a *Error in its chain,
// ClassTransient for context cancellation, else ClassPermanent.
func ClassOf(err error) Class {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Class
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ClassTransient
	}
	return ClassPermanent
}

// RetryAfter returns the wait Graph asked for when err is ClassRetryAfter.
func RetryAfter(err error) (time.Duration, bool) {
	var ge *Error
	if errors.As(err, &ge) && ge.Class == ClassRetryAfter {
		return ge.RetryAfter, true
	}
	return 0, false
}

// classify is the one place where a Graph answer becomes a Class.
// retryAfter reports whether the response carried a usable Retry-After; the
// message only matters for failed subscription validations, which Graph
// reports as a plain 400 InvalidRequest.
func classify(status int, code, message string, retryAfter bool) Class {
	lc := strings.ToLower(code)
	switch {
	case status == 0:
		return ClassTransient
	case status == http.StatusTooManyRequests:
		if retryAfter {
			return ClassRetryAfter
		}
		return ClassTransient
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		if retryAfter {
			return ClassRetryAfter
		}
		return ClassTransient
	case status == http.StatusInternalServerError || status == http.StatusBadGateway || status == http.StatusRequestTimeout:
		return ClassTransient
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassPermission
	case status == http.StatusNotFound:
		switch lc {
		case "errorinvaliduser", "mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi", "extensionerror",
			"errorinvalididmalformed", "resourcenotfound_user":
			return ClassPermission
		}
		return ClassNotFound
	case status == http.StatusGone:
		return ClassNotFound
	case status == http.StatusBadRequest:
		switch lc {
		case "syncstatenotfound", "resyncrequired", "syncstateinvalid":
			return ClassNotFound
		case "invalidauthenticationtoken", "erroraccessdenied", "authorization_requestdenied":
			return ClassPermission
		}
		if strings.Contains(strings.ToLower(message), "validation request") {
			return ClassPermission
		}
		return ClassPermanent
	case status >= 500:
		return ClassTransient
	}
	return ClassPermanent
}

// wrap turns whatever the SDK returned into a *Error.
func (c *Client) wrap(op, mailbox string, st *callState, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Err: err}
	var headers *abstractions.ResponseHeaders
	var oe *odataerrors.ODataError
	var ae *abstractions.ApiError
	var se *statusError
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.Is(err, errBodyTooLarge):
		e.Class = ClassPermanent
		e.Message = fmt.Sprintf("the message is larger than the configured limit of %d bytes", c.maxMIME)
		return e
	case errors.As(err, &afe):
		// No response from Entra ID (network failure) is worth a retry;
		// an answer other than 429 or 5xx is a credential problem.
		e.Class = ClassTransient
		if afe.RawResponse != nil {
			e.Status = afe.RawResponse.StatusCode
			if e.Status < 500 && e.Status != http.StatusTooManyRequests {
				e.Class = ClassPermission
			}
		}
		if e.Class == ClassPermission {
			e.Message = "Entra ID rejected the application's credential: check the tenant id, client id and client secret or certificate"
		}
		return e
	case isCredentialUnavailable(err):
		e.Class = ClassPermission
		e.Message = "no credential is available: configure a client secret or certificate, or run with a managed or workload identity"
		return e
	case errors.As(err, &oe):
		e.Status = oe.ResponseStatusCode
		headers = oe.GetResponseHeaders()
		if main := oe.GetErrorEscaped(); main != nil {
			if p := main.GetCode(); p != nil {
				e.Code = *p
			}
			if p := main.GetMessage(); p != nil {
				e.Message = *p
			}
		}
	case errors.As(err, &se):
		e.Status, e.Code, e.Message = se.status, se.code, se.message
	case errors.As(err, &ae):
		e.Status = ae.ResponseStatusCode
		headers = ae.ResponseHeaders
		e.Message = ae.Message
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Class = ClassTransient
		return e
	}
	ra, hasRA := time.Duration(0), false
	if headers != nil {
		if v := headers.Get("Retry-After"); len(v) > 0 {
			ra, hasRA = parseRetryAfter(v[0], time.Now())
		}
	}
	if st != nil {
		status, last, _ := st.last()
		if e.Status == 0 && status >= 400 {
			e.Status = status
		}
		if !hasRA && e.Status == status {
			ra, hasRA = parseRetryAfter(last, time.Now())
		}
	}
	e.Class = classify(e.Status, e.Code, e.Message, hasRA)
	if e.Class == ClassRetryAfter {
		e.RetryAfter = ra
	}
	if e.Class == ClassPermission {
		e.Message = advice(op, mailbox, e.Status, e.Code, e.Message)
	}
	return e
}

// nonRetriable is the marker azidentity puts on credential errors that no
// retry can fix, such as an unavailable credential in the default chain.
type nonRetriable interface {
	error
	NonRetriable()
}

func isCredentialUnavailable(err error) bool {
	var nr nonRetriable
	return errors.As(err, &nr)
}

// advice turns a permission or configuration failure into an actionable
// message that keeps Graph's own words.
func advice(op, mailbox string, status int, code, graphMsg string) string {
	var hint string
	write := strings.HasPrefix(op, "categorize") || strings.HasPrefix(op, "move")
	send := strings.HasPrefix(op, "send mail")
	lc := strings.ToLower(code)
	lm := strings.ToLower(graphMsg)
	switch {
	case status == http.StatusUnauthorized:
		hint = "Graph rejected the access token: check that the app registration exists in this tenant and its credential is valid"
	case strings.Contains(lm, "validation request"):
		hint = "Graph could not validate the notification URL: it must be reachable from the internet over HTTPS without authentication and echo the validationToken within 10 s"
	case strings.Contains(lm, "number of subscriptions") || (status == http.StatusForbidden && strings.Contains(lm, "limit")):
		hint = fmt.Sprintf("mailbox %s has reached its subscription quota: delete stale subscriptions", mailbox)
	case status == http.StatusForbidden && send:
		hint = fmt.Sprintf("the application lacks the Mail.Send application permission (with admin consent) needed to send from mailbox %s, or an application access policy excludes that mailbox", mailbox)
	case status == http.StatusForbidden && write:
		hint = fmt.Sprintf("the application lacks Mail.ReadWrite on mailbox %s (needed for write-back), or an application access policy excludes it", mailbox)
	case status == http.StatusForbidden:
		hint = fmt.Sprintf("the application lacks Mail.Read on mailbox %s (application permission with admin consent), or an application access policy excludes it", mailbox)
	case lc == "errorinvaliduser" || lc == "mailboxnotenabledforrestapi" || lc == "mailboxnotsupportedforrestapi" || (lc == "extensionerror" && strings.Contains(lm, "user")):
		hint = fmt.Sprintf("mailbox %s does not exist or is not an Exchange Online mailbox", mailbox)
	case lc == "errorinvalididmalformed" || (lc == "extensionerror" && strings.Contains(lm, "folder")):
		hint = fmt.Sprintf("the folder does not exist in mailbox %s", mailbox)
	default:
		hint = fmt.Sprintf("configuration or permission problem on mailbox %s", mailbox)
	}
	if graphMsg != "" {
		return hint + " (Graph said: " + graphMsg + ")"
	}
	return hint
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs > 86400*7 {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// Decide is the one place where a failed Graph call becomes a decision for
// the work that made it: throttling (429, 503 or 504 with Retry-After)
// snoozes for Graph's wait; 5xx, timeouts and network failures retry with
// backoff; 401, 403 and a mailbox or folder that does not exist wait for an
// operator (a credential, a permission, an application access policy); a
// message deleted before it was read (404 ErrorItemNotFound), 410 and
// other 4xx end the work. A SendMail failure after which the message may
// have gone out (Error.MaybeSent) ends the work with the reason
// "ack_maybe_sent", whatever its class: sending again could deliver it
// twice, and the Fix tells the operator how to find out.
func Decide(err error) outcome.Decision {
	d := outcome.Decision{Component: "graph", Action: outcome.Retry, Reason: "graph_error"}
	var ge *Error
	if !errors.As(err, &ge) {
		if errors.Is(err, context.Canceled) {
			d.Reason = "graph_cancelled"
		}
		return d
	}
	if ge.MaybeSent {
		d.Action, d.Reason, d.Fix = outcome.End, "ack_maybe_sent", maybeSentFix(ge)
		return d
	}
	switch ge.Class {
	case ClassTransient:
		d.Reason = "graph_transient"
	case ClassRetryAfter:
		d.Action, d.After, d.Reason = outcome.Snooze, ge.RetryAfter, "graph_throttled"
	case ClassNotFound:
		d.Action, d.Reason = outcome.End, "message_gone"
		if ge.Status == http.StatusGone {
			d.Reason = "graph_gone"
		}
	case ClassPermission:
		d.Action, d.Reason, d.Fix = outcome.WaitOperator, "graph_permission", ge.Message
		if d.Fix == "" {
			d.Fix = "check the app registration's credential, its Mail.Read (and for write-back Mail.ReadWrite) application permission with admin consent, and the Exchange application access policy"
		}
	default:
		d.Action, d.Reason = outcome.End, "graph_permanent"
		if errors.Is(err, errBodyTooLarge) {
			d.Reason = "message_too_large"
		}
	}
	return d
}

// maybeSentFix tells the operator that a message may or may not have gone
// out, and how to find out.
func maybeSentFix(e *Error) string {
	what := "the connection broke or timed out after the request was sent"
	if e.Status != 0 {
		what = "Graph answered " + strconv.Itoa(e.Status)
		if e.Code != "" {
			what += " " + e.Code
		}
	}
	return "the reply may or may not have gone out (" + e.Op + ": " + what + "); it is not sent again, so that nobody receives it twice: " +
		"look for it in the mailbox's Sent Items or in the Exchange Online message trace, and send it by hand if it is missing"
}

// statusError is a failed response read by a response handler of ours
// (the streamed MIME download) rather than by the SDK.
type statusError struct {
	status        int
	code, message string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.status, e.code, e.message)
}

// newStatusError reads Graph's error body ({"error":{"code","message"}}),
// which the transport has already cut to maxErrorBody.
func newStatusError(r *http.Response) *statusError {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	if json.Unmarshal(data, &body) != nil {
		body.Error.Message = http.StatusText(r.StatusCode)
	}
	return &statusError{status: r.StatusCode, code: clip.String(body.Error.Code, 100), message: clip.String(body.Error.Message, 1000)}
}
