package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// recordingHealth is a Health that remembers the last report per component.
type recordingHealth struct{ last map[string]string }

func (h *recordingHealth) OK(c, detail string)        { h.last[c] = "ok" }
func (h *recordingHealth) Fail(c, detail, fix string) { h.last[c] = "fail: " + fix }
func (h *recordingHealth) Working(c string) bool      { return h.last[c] == "ok" }

// TestFailMapsEveryDecisionOntoTheQueue is the table of the one place where
// a client's decision becomes River's: nothing else in the pipeline looks at
// a client's error types.
func TestFailMapsEveryDecisionOntoTheQueue(t *testing.T) {
	t.Parallel()
	decided := func(d outcome.Decision) error { return &failure{err: errors.New("boom"), d: d} }
	tests := []struct {
		name       string
		err        error
		snoozes    int
		want       string // cancel, snooze, retry
		snooze     time.Duration
		reason     string
		healthSays string
	}{
		{"server asked to wait", decided(outcome.Decision{Action: outcome.Snooze, After: 7 * time.Second, Component: "graph", Reason: "graph_throttled"}), 0, "snooze", 7 * time.Second, "graph_throttled", ""},
		{"message gone", decided(outcome.Decision{Action: outcome.End, Component: "graph", Reason: "message_gone"}), 0, "cancel", 0, "message_gone", "ok"},
		{"archer validation", decided(outcome.Decision{Action: outcome.End, Component: "archer", Reason: "archer_validation"}), 0, "cancel", 0, "archer_validation", "ok"},
		{"archer 503", decided(outcome.Decision{Action: outcome.Retry, Component: "archer", Reason: "archer_http_503"}), 0, "retry", 0, "archer_http_503", "fail: "},
		{"login refused, first wait", decided(outcome.Decision{Action: outcome.WaitOperator, Component: "archer", Reason: "archer_login_refused", Fix: "check the password"}), 0, "snooze", time.Minute, "archer_login_refused", "fail: check the password"},
		{"login refused, third wait", decided(outcome.Decision{Action: outcome.WaitOperator, Component: "archer", Reason: "archer_login_refused", Fix: "check the password"}), 2, "snooze", 4 * time.Minute, "archer_login_refused", "fail: check the password"},
		{"login refused, long wait is capped", decided(outcome.Decision{Action: outcome.WaitOperator, Component: "archer", Reason: "archer_login_refused", Fix: "x"}), 40, "snooze", 15 * time.Minute, "archer_login_refused", "fail: x"},
		{"mapping not ready", decided(outcome.Decision{Action: outcome.WaitOperator, Component: componentMapping, Reason: "mapping_pending"}), 0, "snooze", time.Minute, "mapping_pending", ""},
		{"render", ended("render_failed", errors.New("bad template")), 0, "cancel", 0, "render_failed", ""},
		{"database", errors.New("database is locked"), 0, "retry", 0, "error", ""},
		{"unclassified error", fmt.Errorf("attempt: %w", errors.ErrUnsupported), 0, "retry", 0, "error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordingHealth{last: map[string]string{}}
			w := NewMessageWorker(Options{Health: h, Logger: zerolog.Nop()})
			job := &river.Job[jobs.ProcessMessage]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1,
				Metadata: []byte(fmt.Sprintf(`{"snoozes":%d}`, tt.snoozes))}}
			out := w.fail(context.Background(), job, tt.err, zerolog.Nop())
			var cancel *river.JobCancelError
			var snooze *river.JobSnoozeError
			got := "retry"
			switch {
			case errors.As(out, &cancel):
				got = "cancel"
				if !strings.HasPrefix(out.Error(), "JobCancelError: "+tt.reason+": ") && !strings.Contains(out.Error(), tt.reason+": ") {
					t.Errorf("cancel error %q does not lead with the reason %q", out, tt.reason)
				}
			case errors.As(out, &snooze):
				got = "snooze"
				if snooze.Duration != tt.snooze {
					t.Errorf("snooze %s, want %s", snooze.Duration, tt.snooze)
				}
			}
			if got != tt.want {
				t.Errorf("outcome %s, want %s", got, tt.want)
			}
			if d := decisionOf(tt.err); d.Reason != tt.reason {
				t.Errorf("reason %q, want %q", d.Reason, tt.reason)
			}
			comp := decisionOf(tt.err).Component
			if got := h.last[comp]; comp != "" && got != tt.healthSays {
				t.Errorf("health of %s: %q, want %q", comp, got, tt.healthSays)
			}
		})
	}
}
