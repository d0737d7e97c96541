package graphsim

import (
	"net/http"
	"strings"
	"time"
)

// Route names one kind of request, for fault injection.
type Route string

// Routes the simulator serves.
const (
	RouteAny                Route = "*"
	RouteToken              Route = "POST token"
	RouteCreateSubscription Route = "POST subscriptions"
	RouteListSubscriptions  Route = "GET subscriptions"
	RouteGetSubscription    Route = "GET subscription"
	RouteUpdateSubscription Route = "PATCH subscription"
	RouteDeleteSubscription Route = "DELETE subscription"
	RouteReauthorize        Route = "POST reauthorize"
	RouteGetMessage         Route = "GET message"
	RouteGetMIME            Route = "GET message $value"
	RouteListAttachments    Route = "GET attachments"
	RouteGetAttachment      Route = "GET attachment"
	RouteUpdateMessage      Route = "PATCH message"
	RouteDeleteMessage      Route = "DELETE message"
	RouteMoveMessage        Route = "POST move"
	RouteDelta              Route = "GET delta"
	RouteListFolders        Route = "GET mailFolders"
	RouteGetFolder          Route = "GET mailFolder"
	RouteSendMail           Route = "POST sendMail"
)

// Fault makes matching requests fail or slow down.
type Fault struct {
	// Route selects the requests; RouteAny matches all of them.
	Route Route
	// Mailbox, when set, limits the fault to one mailbox (UPN or id).
	Mailbox string
	// Status is the HTTP status to answer; zero lets the request through
	// after Latency.
	Status int
	// Code and Message fill the OData error; defaults follow the status.
	Code, Message string
	// RetryAfter adds a Retry-After header (whole seconds, at least 1).
	RetryAfter time.Duration
	// Latency delays the request before it is answered or handled.
	Latency time.Duration
	// Reset handles the request as if there were no fault, then breaks
	// the connection (HTTP/1.1) or resets the stream (HTTP/2) instead of
	// answering: the work is done, but the client never hears of it, as
	// when a connection drops after the request went out. Status is
	// ignored.
	Reset bool
	// Times limits how many requests the fault hits; zero means every one.
	Times int
}

type faultRule struct {
	Fault
	hits int
}

// SetFaults replaces the injected faults; with no argument it clears them.
// The first matching fault wins.
func (s *Server) SetFaults(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	for _, f := range faults {
		s.faults = append(s.faults, &faultRule{Fault: f})
	}
}

// fault returns the first matching fault and counts the hit.
func (s *Server) fault(route Route, mailboxID string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.Route != RouteAny && f.Route != route {
			continue
		}
		if f.Mailbox != "" {
			mb := s.mailboxLocked(f.Mailbox)
			if mb == nil || mb.id != mailboxID {
				continue
			}
		}
		if f.Times > 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		cp := f.Fault
		return &cp
	}
	return nil
}

// applyFault waits the latency and writes the error; it reports whether it
// answered the request.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if f.Reset {
		if rs, ok := r.Context().Value(resetKey{}).(*resetState); ok {
			rs.reset = true
			return false
		}
		// Outside serveGraph (the token endpoint) the connection is
		// broken at once.
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return false
	}
	code, msg := f.Code, f.Message
	if code == "" {
		code, msg = defaultFaultError(f.Status)
	}
	if f.RetryAfter > 0 {
		writeRetryError(w, f.Status, code, msg, f.RetryAfter)
	} else {
		writeError(w, f.Status, code, msg)
	}
	return true
}

func defaultFaultError(status int) (string, string) {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests."
	case http.StatusServiceUnavailable:
		return "ServiceNotAvailable", "The service is temporarily unavailable."
	case http.StatusGatewayTimeout:
		return "GatewayTimeout", "The gateway did not receive a timely response."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusForbidden:
		return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
	case http.StatusNotFound:
		return "ErrorItemNotFound", "The specified object was not found in the store."
	default:
		if status >= 500 {
			return "InternalServerError", "An internal server error occurred."
		}
		return "BadRequest", http.StatusText(status)
	}
}

// resetState marks a request whose answer a Reset fault swallows; it
// belongs to the request's own goroutine.
type resetState struct {
	reset bool
}

type resetKey struct{}

// resetWriter discards the answer once a Reset fault hit the request, so
// that nothing reaches the client before serveGraph aborts the connection.
type resetWriter struct {
	http.ResponseWriter
	state *resetState
}

func (w *resetWriter) WriteHeader(code int) {
	if !w.state.reset {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *resetWriter) Write(p []byte) (int, error) {
	if w.state.reset {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Behavior switches the delivery quirks Graph is known for.
type Behavior struct {
	// DuplicatePairs sends an "updated" notification right after each
	// "created" one to subscriptions asking for updates, and a second
	// "created" to the others.
	DuplicatePairs bool
	// Redeliver posts every successfully delivered batch a second time.
	Redeliver bool
	// Reorder shuffles notifications inside a batch and sends batches in
	// reverse order.
	Reorder bool
	// Drop discards notifications instead of sending them (the delta sweep
	// must catch up). Lifecycle events are still sent.
	Drop bool
	// DeltaReplay repeats the previous round's items in every incremental
	// delta round.
	DeltaReplay bool
}

// SetBehavior replaces the delivery switches.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
}

// throttleState counts one app+mailbox pair's requests.
type throttleState struct {
	inFlight    int
	windowStart time.Time
	count       int
}

// admit applies Outlook's per app+mailbox limits. It returns a release
// func, or writes the 429 itself and returns nil.
func (s *Server) admit(w http.ResponseWriter, mailboxID string) func() {
	key := strings.ToLower(s.opts.AppID + "|" + mailboxID)
	s.mu.Lock()
	st := s.throttle[key]
	if st == nil {
		st = &throttleState{}
		s.throttle[key] = st
	}
	now := s.nowLocked()
	if st.windowStart.IsZero() || !now.Before(st.windowStart.Add(s.opts.BudgetWindow)) {
		st.windowStart, st.count = now, 0
	}
	if st.inFlight >= s.opts.Concurrency {
		s.mu.Unlock()
		writeRetryError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", time.Second)
		return nil
	}
	if st.count >= s.opts.Budget {
		wait := st.windowStart.Add(s.opts.BudgetWindow).Sub(now)
		s.mu.Unlock()
		writeRetryError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxRequestRate limit.", wait)
		return nil
	}
	st.count++
	st.inFlight++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		st.inFlight--
		s.mu.Unlock()
	}
}

// subscriptionBudgets are Graph's per-app limits on the subscription API
// for each 20-second window.
var subscriptionBudgets = map[Route]int{
	RouteCreateSubscription: 500,
	RouteUpdateSubscription: 500,
	RouteDeleteSubscription: 500,
	RouteReauthorize:        1000,
	RouteGetSubscription:    500,
	RouteListSubscriptions:  25,
}

const subscriptionWindow = 20 * time.Second

// admitSubscriptionCall applies the subscription API budgets; it writes the
// 429 itself and returns false when over budget. POST, PATCH and DELETE
// share one budget.
func (s *Server) admitSubscriptionCall(w http.ResponseWriter, route Route) bool {
	if s.opts.SubscriptionBudgetScale < 0 {
		return true
	}
	budget := int(float64(subscriptionBudgets[route]) * s.opts.SubscriptionBudgetScale)
	if budget < 1 {
		budget = 1
	}
	key := route
	if route == RouteUpdateSubscription || route == RouteDeleteSubscription {
		key = RouteCreateSubscription
	}
	s.mu.Lock()
	st := s.subRates[key]
	if st == nil {
		st = &throttleState{}
		s.subRates[key] = st
	}
	now := s.nowLocked()
	if st.windowStart.IsZero() || !now.Before(st.windowStart.Add(subscriptionWindow)) {
		st.windowStart, st.count = now, 0
	}
	if st.count >= budget {
		wait := st.windowStart.Add(subscriptionWindow).Sub(now)
		s.mu.Unlock()
		writeRetryError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests on the subscription API for this application.", wait)
		return false
	}
	st.count++
	s.mu.Unlock()
	return true
}
