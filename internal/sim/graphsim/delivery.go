package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// graphTime is the timestamp layout Graph uses in notifications.
const graphTime = "2006-01-02T15:04:05.0000000Z"

// pendingNote is one notification waiting to be posted.
type pendingNote struct {
	url   string
	subID string
	body  map[string]any
}

// DeliveryAttempt is one POST of a notification batch to an endpoint.
type DeliveryAttempt struct {
	// URL is the notification or lifecycle URL posted to.
	URL string
	// Body is the JSON payload.
	Body []byte
	// Attempt counts from 1 for each batch.
	Attempt int
	// Status is the HTTP status received; zero on a transport error or timeout.
	Status int
	// Err describes a transport error or timeout.
	Err string
	// Delivered is true when the endpoint answered 2xx in time.
	Delivered bool
	// Dropped is true on the last failed attempt of a batch whose retry
	// window is over.
	Dropped bool
}

// deliveryTracker counts batches in flight and logs attempts.
type deliveryTracker struct {
	mu       sync.Mutex
	inFlight int
	idle     chan struct{} // closed while inFlight == 0
	attempts []DeliveryAttempt
}

func (t *deliveryTracker) init() {
	t.idle = make(chan struct{})
	close(t.idle)
}

func (t *deliveryTracker) add() {
	t.mu.Lock()
	if t.inFlight == 0 {
		t.idle = make(chan struct{})
	}
	t.inFlight++
	t.mu.Unlock()
}

func (t *deliveryTracker) done() {
	t.mu.Lock()
	t.inFlight--
	if t.inFlight == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

func (t *deliveryTracker) log(a DeliveryAttempt) {
	t.mu.Lock()
	t.attempts = append(t.attempts, a)
	t.mu.Unlock()
}

// WaitDelivered blocks until no notification batch is in flight (each was
// delivered or dropped), or ctx ends.
func (s *Server) WaitDelivered(ctx context.Context) error {
	s.deliveries.mu.Lock()
	idle := s.deliveries.idle
	s.deliveries.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for deliveries: %w", ctx.Err())
	}
}

// Deliveries returns every delivery attempt so far, oldest first.
func (s *Server) Deliveries() []DeliveryAttempt {
	s.deliveries.mu.Lock()
	defer s.deliveries.mu.Unlock()
	return slices.Clone(s.deliveries.attempts)
}

// notificationsLocked builds the notifications of one change for every
// active subscription that covers it; s.mu must be held. Notifications for
// a subscription waiting for reauthorization are held back.
func (s *Server) notificationsLocked(mb *mailbox, m *message, folderID, changeType string) []pendingNote {
	if s.behavior.Drop {
		return nil
	}
	now := s.nowLocked()
	var out []pendingNote
	for _, sub := range s.sortedSubsLocked() {
		if !sub.expires.After(now) || sub.mailboxID != mb.id || (sub.folderID != "" && sub.folderID != folderID) {
			continue
		}
		types := []string{}
		if slices.Contains(sub.changeTypes, changeType) {
			types = append(types, changeType)
		}
		if changeType == "created" && s.behavior.DuplicatePairs && len(types) == 1 {
			if slices.Contains(sub.changeTypes, "updated") {
				types = append(types, "updated")
			} else {
				types = append(types, "created")
			}
		}
		for _, ct := range types {
			id := m.restID
			if sub.immutable {
				id = m.immutableID
			}
			note := pendingNote{url: sub.notificationURL, subID: sub.id, body: map[string]any{
				"id":                             newOpaque()[:16],
				"subscriptionId":                 sub.id,
				"subscriptionExpirationDateTime": sub.expires.Format(graphTime),
				"clientState":                    nullable(sub.clientState),
				"changeType":                     ct,
				"resource":                       fmt.Sprintf("users/%s@%s/messages/%s", mb.id, s.opts.TenantID, id),
				"tenantId":                       s.opts.TenantID,
				"resourceData": map[string]any{
					"@odata.type": "#Microsoft.Graph.Message",
					"@odata.id":   fmt.Sprintf("Users/%s@%s/Messages/%s", mb.id, s.opts.TenantID, id),
					"@odata.etag": `W/"` + m.changeKey + `"`,
					"id":          id,
				},
			}}
			if sub.paused {
				sub.held = append(sub.held, note)
				continue
			}
			out = append(out, note)
		}
	}
	return out
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// dispatch groups notes by URL into batches and posts each batch from its
// own goroutine, owned by the Server.
func (s *Server) dispatch(notes []pendingNote) {
	if len(notes) == 0 {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	b := s.behavior
	var order []string
	groups := map[string][]map[string]any{}
	var missed []*subscription
	var discarded []DeliveryAttempt
	for _, n := range notes {
		switch s.endpointStateLocked(n.url) {
		case stateDrop:
			discarded = append(discarded, DeliveryAttempt{URL: n.url, Dropped: true, Err: "endpoint in drop state"})
			if sub := s.subs[n.subID]; sub != nil && s.markMissedLocked(n.url, sub.id) {
				missed = append(missed, sub)
			}
			continue
		}
		if _, ok := groups[n.url]; !ok {
			order = append(order, n.url)
		}
		groups[n.url] = append(groups[n.url], n.body)
	}
	for _, a := range discarded {
		s.deliveries.log(a)
	}
	for _, sub := range missed {
		url := sub.lifecycleURL
		if url == "" {
			url = sub.notificationURL
		}
		s.dispatchLifecycleLocked(url, s.lifecycleBody(sub, EventMissed))
	}
	if b.Reorder {
		for _, u := range order {
			g := groups[u]
			s.rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
		}
		slices.Reverse(order)
	}
	for _, u := range order {
		payload, err := json.Marshal(map[string]any{"value": groups[u]})
		if err != nil {
			s.log.Error().Err(err).Msg("encode notification")
			continue
		}
		var delay time.Duration
		if s.endpointStateLocked(u) == stateSlow {
			delay = s.opts.SlowDelay
		}
		s.wg.Add(1)
		s.deliveries.add()
		go s.send(u, payload, b.Redeliver, delay)
	}
	s.mu.Unlock()
}

// send posts one batch, retrying with exponential backoff within the retry
// window, then drops it.
func (s *Server) send(url string, payload []byte, redeliver bool, delay time.Duration) {
	defer s.wg.Done()
	defer s.deliveries.done()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
	start := time.Now()
	backoff := s.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		timeout := s.opts.DeliveryTimeout
		if attempt > 1 {
			timeout = s.opts.RetryTimeout
		}
		status, err := s.post(url, payload, timeout)
		s.observe(url, attempt, errors.Is(err, errNoAnswer))
		a := DeliveryAttempt{URL: url, Body: payload, Attempt: attempt, Status: status}
		if err != nil {
			a.Err = err.Error()
		}
		a.Delivered = err == nil && status >= 200 && status < 300
		if a.Delivered {
			s.deliveries.log(a)
			if redeliver {
				redeliver = false
				continue
			}
			return
		}
		if s.ctx.Err() != nil {
			s.deliveries.log(a)
			return
		}
		if time.Since(start)+backoff > s.opts.RetryWindow {
			a.Dropped = true
			s.deliveries.log(a)
			s.log.Warn().Str("url", url).Int("attempts", attempt).Msg("notification dropped after the retry window")
			return
		}
		s.deliveries.log(a)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		backoff *= 2
		if limit := s.opts.RetryWindow / 4; backoff > limit && limit > 0 {
			backoff = limit
		}
	}
}

// post sends one notification POST within timeout.
func (s *Server) post(url string, payload []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("build notification request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return 0, fmt.Errorf("%w within %s", errNoAnswer, timeout)
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Lifecycle event names.
const (
	EventReauthorizationRequired = "reauthorizationRequired"
	EventSubscriptionRemoved     = "subscriptionRemoved"
	EventMissed                  = "missed"
)

// Lifecycle sends a lifecycle notification for a subscription to its
// lifecycle URL, or its notification URL when it has none.
// reauthorizationRequired pauses its deliveries until it is reauthorized or
// renewed; subscriptionRemoved deletes it. Any other event name is sent as
// is, to test how unknown events are handled.
func (s *Server) Lifecycle(subID, event string) error {
	s.mu.Lock()
	sub := s.subs[subID]
	if sub == nil || !sub.expires.After(s.nowLocked()) {
		s.mu.Unlock()
		return fmt.Errorf("lifecycle %s for subscription %s: %w", event, subID, ErrNotFound)
	}
	url := sub.lifecycleURL
	if url == "" {
		url = sub.notificationURL
	}
	body := s.lifecycleBody(sub, event)
	switch event {
	case EventReauthorizationRequired:
		sub.paused = true
	case EventSubscriptionRemoved:
		delete(s.subs, sub.id)
	}
	s.mu.Unlock()
	s.dispatchLifecycle(url, body)
	return nil
}

func (s *Server) lifecycleBody(sub *subscription, event string) map[string]any {
	return map[string]any{
		"subscriptionId":                 sub.id,
		"subscriptionExpirationDateTime": sub.expires.Format(graphTime),
		"tenantId":                       s.opts.TenantID,
		"clientState":                    nullable(sub.clientState),
		"lifecycleEvent":                 event,
	}
}

// dispatchLifecycle posts one lifecycle notification, ignoring Drop.
func (s *Server) dispatchLifecycle(url string, body map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchLifecycleLocked(url, body)
}

func (s *Server) dispatchLifecycleLocked(url string, body map[string]any) {
	payload, err := json.Marshal(map[string]any{"value": []any{body}})
	if err != nil || s.closed {
		return
	}
	s.wg.Add(1)
	s.deliveries.add()
	go s.send(url, payload, false, 0)
}

// errNoAnswer marks a delivery attempt that timed out.
var errNoAnswer = errors.New("no answer")

type endpointMode int

const (
	stateNormal endpointMode = iota
	stateSlow
	stateDrop
)

// endpointState tracks one notification URL for Options.EndpointStates.
type endpointState struct {
	windowStart          time.Time
	first, slow          int
	retries, retryLate   int
	slowUntil, dropUntil time.Time
	missed               map[string]bool
}

// minEndpointSample is how many attempts a window needs before a state
// can change.
const minEndpointSample = 10

func (s *Server) endpointStateLocked(url string) endpointMode {
	if !s.opts.EndpointStates {
		return stateNormal
	}
	st := s.endpoints[url]
	now := time.Now()
	switch {
	case st == nil:
		return stateNormal
	case now.Before(st.dropUntil):
		return stateDrop
	case now.Before(st.slowUntil):
		return stateSlow
	}
	return stateNormal
}

// markMissedLocked reports whether sub still needs its "missed" event for
// the current drop period of url.
func (s *Server) markMissedLocked(url, subID string) bool {
	st := s.endpoints[url]
	if st.missed == nil {
		st.missed = map[string]bool{}
	}
	if st.missed[subID] {
		return false
	}
	st.missed[subID] = true
	return true
}

// observe counts one delivery attempt and updates the endpoint's state.
func (s *Server) observe(url string, attempt int, timedOut bool) {
	if !s.opts.EndpointStates {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.endpoints[url]
	now := time.Now()
	if st == nil {
		st = &endpointState{windowStart: now}
		s.endpoints[url] = st
	}
	if now.Sub(st.windowStart) > s.opts.EndpointWindow {
		st.windowStart, st.first, st.slow, st.retries, st.retryLate = now, 0, 0, 0, 0
	}
	if attempt == 1 {
		st.first++
		if timedOut {
			st.slow++
		}
	} else {
		st.retries++
		if timedOut {
			st.retryLate++
		}
	}
	if st.retries >= minEndpointSample && float64(st.retryLate) > 0.15*float64(st.retries) && !now.Before(st.dropUntil) {
		st.dropUntil = now.Add(s.opts.EndpointWindow)
		st.missed = nil
	}
	if st.first >= minEndpointSample && float64(st.slow) > 0.10*float64(st.first) && !now.Before(st.slowUntil) {
		st.slowUntil = now.Add(s.opts.EndpointWindow)
	}
}
