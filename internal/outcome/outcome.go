// Package outcome is the vocabulary in which a client of an outside system
// (Graph, Archer) says what a failed call means for the work that made it.
// Each client decides in one table-tested function (graph.Decide,
// archer.Decide); the pipeline maps the decision onto the queue and decides
// nothing itself.
package outcome

import (
	"fmt"
	"time"
)

// Action is what to do about a failed call.
type Action int

const (
	// Retry: a transient failure (5xx, timeout, connection refused). Try
	// again with backoff; the attempt counts.
	Retry Action = iota
	// Snooze: the server asked to wait (Retry-After). Try again after
	// Decision.After; the attempt does not count.
	Snooze
	// WaitOperator: a configuration problem that is not the work's fault
	// (a refused login, a single sign-on page, an untrusted certificate, a
	// missing permission). Wait without spending attempts until an
	// operator fixes it; Decision.Fix says how.
	WaitOperator
	// End: retrying cannot help (a validation error, a message deleted
	// before it was read). End the work with Decision.Reason; an operator
	// may replay it.
	End
)

// String names the action for logs and tests.
func (a Action) String() string {
	switch a {
	case Retry:
		return "retry"
	case Snooze:
		return "snooze"
	case WaitOperator:
		return "wait-operator"
	case End:
		return "end"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Decision is a client's verdict on one failure.
type Decision struct {
	Action Action
	// After is the wait the server asked for (Snooze).
	After time.Duration
	// Component names the outside system: "archer" or "graph".
	Component string
	// Reason is a short label for metrics, logs and `jobs list`, such as
	// "archer_login_refused" or "message_gone".
	Reason string
	// Fix tells an operator what to change (WaitOperator, and End where
	// the cause is known).
	Fix string
}
