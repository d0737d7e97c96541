package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// Endpoint labels for metrics and logs.
const (
	endpointNotifications = "notifications"
	endpointLifecycle     = "lifecycle"
)

// Reasons a notification item is dropped; they label the dropped metric.
const (
	dropMalformed           = "malformed"
	dropUnknownSubscription = "unknown_subscription"
	dropClientState         = "client_state"
	dropTenant              = "tenant"
	dropChangeType          = "change_type"
	dropUnknownEvent        = "unknown_event"
	dropTooManyItems        = "too_many_items"
	dropMalformedBody       = "malformed_body"
)

// maxValidationToken bounds the validationToken echoed in the handshake.
// Graph's tokens are a few hundred characters.
const maxValidationToken = 1024

// maxIDLength bounds the ids accepted from a notification. Graph's immutable
// message ids are about 150 characters; anything far longer is hostile.
const maxIDLength = 512

// notification is one item of a change-notification POST. Only the fields
// the service uses are decoded; resource and @odata.id are ignored on
// purpose, so a forged notification can never point the fetch elsewhere.
type notification struct {
	SubscriptionID string `json:"subscriptionId"`
	ClientState    string `json:"clientState"`
	ChangeType     string `json:"changeType"`
	TenantID       string `json:"tenantId"`
	ResourceData   *struct {
		ID string `json:"id"`
	} `json:"resourceData"`
	LifecycleEvent string `json:"lifecycleEvent"`
}

var errTooManyItems = errors.New("too many notification items")

// decodeBatch reads the items of a notification collection
// ({"value":[…], …}) one at a time, and stops at the first item beyond max
// with errTooManyItems, so an oversized forged body costs no more than max
// items of work. Other members are skipped.
func decodeBatch(body []byte, max int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var items []json.RawMessage
	found := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if key, _ := t.(string); key != "value" || found {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		found = true
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return nil, errors.New("value is not an array")
		}
		for dec.More() {
			if len(items) == max {
				return items, errTooManyItems
			}
			var it json.RawMessage
			if err := dec.Decode(&it); err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("no value array")
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return items, nil
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	s.handleWebhook(w, r, endpointNotifications, s.messageJob)
}

func (s *Server) handleLifecycle(w http.ResponseWriter, r *http.Request) {
	s.handleWebhook(w, r, endpointLifecycle, s.lifecycleJob)
}

// jobFor turns one checked notification into a job, or returns a drop
// reason.
type jobFor func(n notification, sub subscriptions.Record, log zerolog.Logger) (river.JobArgs, string)

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, endpoint string, toJob jobFor) {
	start := time.Now()
	log := s.opts.Logger.With().Str("component", "webhook").Str("endpoint", endpoint).
		Str("request_id", requestIDOf(r.Context())).Logger()

	if tokens, ok := r.URL.Query()["validationToken"]; ok {
		token := ""
		if len(tokens) > 0 {
			token = tokens[0]
		}
		if len(token) > maxValidationToken {
			s.metrics.dropped(endpoint, "validation_token_too_long").Inc()
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "validationToken too long"})
			return
		}
		s.metrics.handshakes(endpoint).Inc()
		// The token is echoed exactly, as Graph requires. Served as
		// text/plain with nosniff and a CSP that forbids everything, a
		// token holding markup cannot run in a browser.
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, token)
		log.Info().Msg("answered validation handshake")
		return
	}

	status := s.acceptBatch(w, r, endpoint, toJob, log)
	s.metrics.ack(endpoint, status).Update(time.Since(start).Seconds())
}

func (s *Server) acceptBatch(w http.ResponseWriter, r *http.Request, endpoint string, toJob jobFor, log zerolog.Logger) int {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.Warn().Int64("limit", tooLarge.Limit).Msg("notification body too large; raise M2A_MAX_BODY_BYTES if Graph batches are this big")
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: "request body too large"})
			return http.StatusRequestEntityTooLarge
		}
		log.Warn().Err(err).Msg("reading notification body failed")
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "unreadable body"})
		return http.StatusBadRequest
	}
	items, err := decodeBatch(body, s.opts.MaxBatchItems)
	switch {
	case errors.Is(err, errTooManyItems):
		s.metrics.dropped(endpoint, dropTooManyItems).Inc()
		s.drops.report(endpoint, requestIDOf(r.Context()), len(items), map[string]int{dropTooManyItems: 1})
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("at most %d notifications per request", s.opts.MaxBatchItems)})
		return http.StatusRequestEntityTooLarge
	case err != nil:
		s.metrics.dropped(endpoint, dropMalformedBody).Inc()
		s.drops.report(endpoint, requestIDOf(r.Context()), 0, map[string]int{dropMalformedBody: 1})
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "body must be a JSON object with a \"value\" array"})
		return http.StatusBadRequest
	}
	s.metrics.received(endpoint).Add(len(items))

	var params []river.InsertManyParams
	seen := map[string]bool{}
	batchDups := 0
	var drops map[string]int
	for _, raw := range items {
		args, reason, err := s.checkItem(r.Context(), raw, toJob, log)
		if err != nil {
			log.Error().Err(err).Msg("could not check notifications; answering 503 so Graph retries (check the database)")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "cannot check notifications now; retry"})
			return http.StatusServiceUnavailable
		}
		if reason != "" {
			if drops == nil {
				drops = map[string]int{}
			}
			drops[reason]++
			continue
		}
		// Graph batches may repeat an item; the queue's unique insert
		// rejects a batch that holds the same unique job twice.
		key, err := json.Marshal(args)
		if err != nil {
			log.Error().Err(err).Msg("encode job")
			continue
		}
		if seen[args.Kind()+string(key)] {
			batchDups++
			continue
		}
		seen[args.Kind()+string(key)] = true
		params = append(params, river.InsertManyParams{Args: args})
	}
	if len(drops) > 0 {
		for reason, n := range drops {
			s.metrics.dropped(endpoint, reason).Add(n)
		}
		s.drops.report(endpoint, requestIDOf(r.Context()), len(items), drops)
	}
	if len(params) > 0 {
		results, err := s.opts.Enqueuer.InsertMany(r.Context(), params)
		if err != nil {
			log.Error().Err(err).Int("items", len(params)).
				Msg("could not queue notifications; answering 503 so Graph retries (check the database: disk full, permissions, locked)")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "cannot persist notifications now; retry"})
			return http.StatusServiceUnavailable
		}
		dups := batchDups
		for _, res := range results {
			if res.UniqueSkippedAsDuplicate {
				dups++
			}
		}
		s.metrics.accepted(endpoint).Add(len(params) + batchDups)
		s.metrics.duplicates(endpoint).Add(dups)
		log.Debug().Int("queued", len(params)+batchDups-dups).Int("duplicates", dups).Msg("notifications accepted")
	}
	// Answer 202 even when every item was dropped: a forger learns nothing.
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted
}

// checkItem validates one notification against its stored subscription and
// returns its job, or the reason it is dropped. An error means the check
// itself could not run (the database failed) and the batch must be retried.
func (s *Server) checkItem(ctx context.Context, raw json.RawMessage, toJob jobFor, log zerolog.Logger) (river.JobArgs, string, error) {
	var n notification
	if err := json.Unmarshal(raw, &n); err != nil || !validID(n.SubscriptionID) {
		return nil, dropMalformed, nil
	}
	if s.subs == nil {
		return nil, dropUnknownSubscription, nil
	}
	sub, ok, err := s.subs.lookup(ctx, n.SubscriptionID)
	if err != nil {
		return nil, "", fmt.Errorf("load subscriptions: %w", err)
	}
	if !ok {
		return nil, dropUnknownSubscription, nil
	}
	if subtle.ConstantTimeCompare([]byte(n.ClientState), []byte(sub.ClientState)) != 1 {
		return nil, dropClientState, nil
	}
	if !strings.EqualFold(n.TenantID, s.opts.TenantID) {
		return nil, dropTenant, nil
	}
	args, reason := toJob(n, sub, log)
	return args, reason, nil
}

func (s *Server) messageJob(n notification, sub subscriptions.Record, _ zerolog.Logger) (river.JobArgs, string) {
	switch n.ChangeType {
	case "created", "updated":
	default:
		return nil, dropChangeType
	}
	if n.ResourceData == nil || !validID(n.ResourceData.ID) {
		return nil, dropMalformed
	}
	return jobs.ProcessMessage{Mailbox: sub.Mailbox, MessageID: n.ResourceData.ID, Source: "notification"}, ""
}

func (s *Server) lifecycleJob(n notification, sub subscriptions.Record, _ zerolog.Logger) (river.JobArgs, string) {
	switch n.LifecycleEvent {
	case subscriptions.EventReauthorizationRequired, subscriptions.EventSubscriptionRemoved, subscriptions.EventMissed:
		return jobs.Lifecycle{SubscriptionID: sub.ID, Event: n.LifecycleEvent, Mailbox: sub.Mailbox}, ""
	}
	return nil, dropUnknownEvent
}

// validID accepts the ids Graph uses: non-empty, bounded, printable ASCII
// without spaces.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return false
		}
	}
	return true
}

// dropLog writes one summary line per request whose items were dropped, with
// the counts by reason, at most one line per second: a flood of forged
// requests costs a few log lines, and the next line says how many requests
// were not logged.
type dropLog struct {
	log        zerolog.Logger
	now        func() time.Time
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newDropLog(log zerolog.Logger, now func() time.Time) *dropLog {
	return &dropLog{log: log, now: now}
}

func (d *dropLog) report(endpoint, requestID string, items int, counts map[string]int) {
	now := d.now()
	d.mu.Lock()
	if !d.last.IsZero() && now.Sub(d.last) < time.Second {
		d.suppressed++
		d.mu.Unlock()
		return
	}
	suppressed := d.suppressed
	d.last, d.suppressed = now, 0
	d.mu.Unlock()
	reasons := make([]string, 0, len(counts))
	for r := range counts {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	dict := zerolog.Dict()
	for _, r := range reasons {
		dict = dict.Int(r, counts[r])
	}
	d.log.Warn().Str("component", "webhook").Str("endpoint", endpoint).Str("request_id", requestID).
		Int("items", items).Dict("dropped", dict).Int("requests_not_logged_before", suppressed).
		Msg("notification items dropped (unknown subscription, wrong clientState or tenant, malformed); a steady stream means forged traffic or a stale subscription")
}
