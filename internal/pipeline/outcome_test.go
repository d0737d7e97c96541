package pipeline

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/graph"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	w := NewMessageWorker(Options{})
	tests := []struct {
		name   string
		err    error
		want   string // cancel, snooze, retry
		reason string
	}{
		{"throttled", fmt.Errorf("fetch: %w", &graph.Error{Class: graph.ClassRetryAfter, RetryAfter: 7 * time.Second}), "snooze", "throttled"},
		{"message gone", fmt.Errorf("fetch: %w", &graph.Error{Class: graph.ClassNotFound, Status: 404}), "cancel", "message_gone"},
		{"graph permanent", &graph.Error{Class: graph.ClassPermanent, Status: 400}, "cancel", "graph_permanent"},
		{"graph transient", &graph.Error{Class: graph.ClassTransient, Status: 503}, "retry", "graph_transient"},
		{"graph permission", &graph.Error{Class: graph.ClassPermission, Status: 403}, "retry", "graph_permission"},
		{"archer validation", fmt.Errorf("create record: %w", &archer.ValidationError{Messages: []string{"The Title field is a required field."}}), "cancel", "archer_validation"},
		{"archer 500", fmt.Errorf("create record: %w", &archer.StatusError{StatusCode: 500}), "retry", "archer_transient"},
		{"render", &permanentError{reason: "render_failed", err: errors.New("bad template")}, "cancel", "render_failed"},
		{"database", errors.New("database is locked"), "retry", "error"},
		{"unclassified error", fmt.Errorf("attempt: %w", errors.ErrUnsupported), "retry", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := w.outcome(tt.err)
			var cancel *river.JobCancelError
			var snooze *river.JobSnoozeError
			got := "retry"
			switch {
			case errors.As(out, &cancel):
				got = "cancel"
			case errors.As(out, &snooze):
				got = "snooze"
				if snooze.Duration != 7*time.Second {
					t.Errorf("snooze %s, want the 7 s Graph asked for", snooze.Duration)
				}
			}
			if got != tt.want {
				t.Errorf("outcome %s, want %s", got, tt.want)
			}
			if r := reasonOf(out, tt.err); r != tt.reason {
				t.Errorf("reason %q, want %q", r, tt.reason)
			}
		})
	}
}
