package subscriptions

// Kind says what an Event reports.
type Kind string

// The kinds of Event.
const (
	// KindCreate reports a subscription creation (a first one or a
	// replacement) with its Outcome: OutcomeOK once the subscription and
	// its secret are stored, OutcomeError when Graph or the store refused.
	KindCreate Kind = "create"
	// KindRenew reports a renewal with its Outcome; OutcomeNotFound means
	// Graph no longer knew the subscription and a new one is created.
	KindRenew Kind = "renew"
	// KindReauthorize reports a reauthorization with its Outcome;
	// OutcomeNotFound means Graph no longer knew the subscription and a new
	// one is created.
	KindReauthorize Kind = "reauthorize"
	// KindLifecycle reports a lifecycle event the Manager acted on, named
	// by LifecycleEvent (EventReauthorizationRequired,
	// EventSubscriptionRemoved or EventMissed).
	KindLifecycle Kind = "lifecycle"
	// KindResync reports one delta round over a mailbox's folder with its
	// Outcome and the messages it Found and newly Queued.
	KindResync Kind = "resync"
	// KindLeadership reports that this replica started (Leader true) or
	// stopped (Leader false) managing the subscriptions.
	KindLeadership Kind = "leadership"
)

// Outcome says how the call an Event reports ended.
type Outcome string

// The outcomes of an Event.
const (
	// OutcomeOK: the call succeeded.
	OutcomeOK Outcome = "ok"
	// OutcomeError: the call failed and is retried with backoff.
	OutcomeError Outcome = "error"
	// OutcomeNotFound: Graph no longer knew the subscription (KindRenew
	// and KindReauthorize only).
	OutcomeNotFound Outcome = "not_found"
	// OutcomeCanceled: the round was cut short because its context ended,
	// at shutdown or when the lease was lost (KindResync only). What it
	// found and queued until then is counted.
	OutcomeCanceled Outcome = "canceled"
)

// Event is one thing the Manager did that a service may count, such as
// into Prometheus counters: Options.OnEvent receives every Event. The
// seconds left before each subscription expires are not events: read them
// from Manager.Status when they are needed.
type Event struct {
	// Kind says what happened, and so which fields below are set.
	Kind Kind
	// Mailbox is the configured mailbox concerned; empty for
	// KindLeadership.
	Mailbox string
	// Outcome is how a create, renew, reauthorize or resync ended.
	Outcome Outcome
	// LifecycleEvent is the lifecycle event acted on (KindLifecycle).
	LifecycleEvent string
	// Found counts the messages a resync round saw, Queued those it
	// queued that were not queued before (KindResync).
	Found, Queued int
	// Leader is true when this replica now manages the subscriptions
	// (KindLeadership).
	Leader bool
}

// emit hands e to Options.OnEvent, when set.
func (m *Manager) emit(e Event) {
	if m.onEvent != nil {
		m.onEvent(e)
	}
}
