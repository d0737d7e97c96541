package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/outcome"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		code       string
		message    string
		retryAfter bool
		want       Class
	}{
		{0, "", "", false, ClassTransient},
		{429, "TooManyRequests", "", true, ClassRetryAfter},
		{429, "ApplicationThrottled", "", false, ClassTransient},
		{503, "ServiceNotAvailable", "", true, ClassRetryAfter},
		{503, "ServiceNotAvailable", "", false, ClassTransient},
		{504, "GatewayTimeout", "", false, ClassTransient},
		{504, "GatewayTimeout", "", true, ClassRetryAfter},
		{500, "InternalServerError", "", false, ClassTransient},
		{502, "", "", false, ClassTransient},
		{408, "", "", false, ClassTransient},
		{507, "", "", false, ClassTransient},
		{401, "InvalidAuthenticationToken", "", false, ClassPermission},
		{403, "ErrorAccessDenied", "", false, ClassPermission},
		{403, "ExtensionError", "", false, ClassPermission},
		{404, "ErrorItemNotFound", "", false, ClassNotFound},
		{404, "ResourceNotFound", "", false, ClassNotFound},
		{404, "ErrorInvalidUser", "", false, ClassPermission},
		{404, "MailboxNotEnabledForRESTAPI", "", false, ClassPermission},
		{404, "ExtensionError", "", false, ClassPermission},
		{404, "ErrorInvalidIdMalformed", "", false, ClassPermission},
		{410, "SyncStateNotFound", "", false, ClassNotFound},
		{410, "resyncRequired", "", false, ClassNotFound},
		{400, "syncStateNotFound", "", false, ClassNotFound},
		{400, "InvalidRequest", "", false, ClassPermanent},
		{400, "ExtensionError", "", false, ClassPermanent},
		{409, "ExtensionError", "", false, ClassPermanent},
		{413, "", "", false, ClassPermanent},
		{415, "", "", false, ClassPermanent},
		{400, "InvalidRequest", "Subscription validation request timed out.", false, ClassPermission},
		{400, "InvalidRequest", "Subscription validation request failed. HTTP status code is 'Forbidden'.", false, ClassPermission},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s %v", tt.status, tt.code, tt.retryAfter), func(t *testing.T) {
			t.Parallel()
			if got := classify(tt.status, tt.code, tt.message, tt.retryAfter); got != tt.want {
				t.Errorf("classify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"Mon, 02 Mar 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Mon, 02 Mar 2026 09:00:00 GMT", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	t.Parallel()
	base := &Error{Op: "fetch message x", Status: 429, Code: "TooManyRequests", Class: ClassRetryAfter, RetryAfter: 7 * time.Second, Err: errors.New("boom")}
	wrapped := fmt.Errorf("process: %w", base)
	if ClassOf(wrapped) != ClassRetryAfter {
		t.Error("ClassOf does not see through wrapping")
	}
	if d, ok := RetryAfter(wrapped); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if _, ok := RetryAfter(&Error{Class: ClassTransient}); ok {
		t.Error("RetryAfter on a transient error")
	}
	if ClassOf(context.Canceled) != ClassTransient || ClassOf(errors.New("x")) != ClassPermanent {
		t.Error("ClassOf defaults")
	}
	if got := base.Error(); got != "graph: fetch message x: 429 TooManyRequests: boom (retry after 7s)" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(wrapped, base.Err) {
		t.Error("Unwrap")
	}
	for c, s := range map[Class]string{ClassPermanent: "permanent", ClassTransient: "transient", ClassRetryAfter: "retry-after", ClassNotFound: "not-found", ClassPermission: "permission"} {
		if c.String() != s {
			t.Errorf("%d.String() = %s", c, c.String())
		}
	}
	_ = http.StatusOK
}

func TestDecideGivesEveryGraphFailureItsOutcome(t *testing.T) {
	t.Parallel()
	// Each case goes through classify, as a real answer would.
	answer := func(status int, code string, retryAfter time.Duration) error {
		e := &Error{Op: "fetch message AAMk", Status: status, Code: code,
			Class: classify(status, code, "", retryAfter > 0), RetryAfter: retryAfter}
		if e.Class == ClassPermission {
			e.Message = advice(e.Op, "phish@contoso.com", status, code, "")
		}
		return fmt.Errorf("fetch: %w", e)
	}
	cases := []struct {
		name   string
		err    error
		action outcome.Action
		reason string
		after  time.Duration
	}{
		{"404 ErrorItemNotFound", answer(404, "ErrorItemNotFound", 0), outcome.End, "message_gone", 0},
		{"410 gone", answer(410, "", 0), outcome.End, "graph_gone", 0},
		{"401", answer(401, "InvalidAuthenticationToken", 0), outcome.WaitOperator, "graph_permission", 0},
		{"403 access denied", answer(403, "ErrorAccessDenied", 0), outcome.WaitOperator, "graph_permission", 0},
		{"404 mailbox does not exist", answer(404, "ErrorInvalidUser", 0), outcome.WaitOperator, "graph_permission", 0},
		{"429 with Retry-After", answer(429, "TooManyRequests", 7*time.Second), outcome.Snooze, "graph_throttled", 7 * time.Second},
		{"429 without Retry-After", answer(429, "TooManyRequests", 0), outcome.Retry, "graph_transient", 0},
		{"503 with Retry-After", answer(503, "", 30*time.Second), outcome.Snooze, "graph_throttled", 30 * time.Second},
		{"500", answer(500, "", 0), outcome.Retry, "graph_transient", 0},
		{"no response", answer(0, "", 0), outcome.Retry, "graph_transient", 0},
		{"400 bad request", answer(400, "BadRequest", 0), outcome.End, "graph_permanent", 0},
		{"too large", &Error{Op: "fetch", Class: ClassPermanent, Err: errBodyTooLarge}, outcome.End, "message_too_large", 0},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), outcome.Retry, "graph_cancelled", 0},
	}
	for _, tc := range cases {
		d := Decide(tc.err)
		if d.Action != tc.action || d.Reason != tc.reason || d.After != tc.after || d.Component != "graph" {
			t.Errorf("%s: Decide = %+v, want %s %s after %s", tc.name, d, tc.action, tc.reason, tc.after)
		}
		if d.Action == outcome.WaitOperator && !strings.Contains(d.Fix, "phish@contoso.com") && !strings.Contains(d.Fix, "credential") && !strings.Contains(d.Fix, "token") {
			t.Errorf("%s: fix %q does not name the mailbox or the credential", tc.name, d.Fix)
		}
	}
}
