package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
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
)

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

type notificationBatch struct {
	Value *[]json.RawMessage `json:"value"`
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	s.handleWebhook(w, r, endpointNotifications, s.messageJob)
}

func (s *Server) handleLifecycle(w http.ResponseWriter, r *http.Request) {
	s.handleWebhook(w, r, endpointLifecycle, s.lifecycleJob)
}

// jobFor turns one checked notification into a job, or returns a drop
// reason.
type jobFor func(n notification, sub store.Subscription, log zerolog.Logger) (river.JobArgs, string)

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, endpoint string, toJob jobFor) {
	start := time.Now()
	log := s.opts.Logger.With().Str("component", "webhook").Str("endpoint", endpoint).
		Str("request_id", middleware.GetReqID(r.Context())).Logger()

	if tokens, ok := r.URL.Query()["validationToken"]; ok {
		s.metrics.handshakes.WithLabelValues(endpoint).Inc()
		token := ""
		if len(tokens) > 0 {
			token = tokens[0]
		}
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
	s.metrics.ackSeconds.WithLabelValues(endpoint, fmt.Sprint(status)).Observe(time.Since(start).Seconds())
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
	var batch notificationBatch
	if err := json.Unmarshal(body, &batch); err != nil || batch.Value == nil {
		msg := "body must be a JSON object with a \"value\" array"
		log.Warn().Err(err).Int("bytes", len(body)).Msg("malformed notification body: " + msg)
		writeJSON(w, http.StatusBadRequest, errorBody{Error: msg})
		return http.StatusBadRequest
	}
	items := *batch.Value
	s.metrics.received.WithLabelValues(endpoint).Add(float64(len(items)))

	var params []river.InsertManyParams
	seen := map[string]bool{}
	batchDups := 0
	for i, raw := range items {
		args, reason, err := s.checkItem(r.Context(), raw, toJob, log)
		if err != nil {
			log.Error().Err(err).Msg("could not check notifications; answering 503 so Graph retries (check the database)")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "cannot check notifications now; retry"})
			return http.StatusServiceUnavailable
		}
		if reason != "" {
			s.metrics.dropped.WithLabelValues(endpoint, reason).Inc()
			log.Warn().Int("item", i).Str("reason", reason).Msg("notification dropped")
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
		s.metrics.accepted.WithLabelValues(endpoint).Add(float64(len(params) + batchDups))
		s.metrics.duplicates.WithLabelValues(endpoint).Add(float64(dups))
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
	sub, err := s.opts.Subscriptions.Subscription(ctx, n.SubscriptionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, dropUnknownSubscription, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("look up subscription %s: %w", n.SubscriptionID, err)
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

func (s *Server) messageJob(n notification, sub store.Subscription, _ zerolog.Logger) (river.JobArgs, string) {
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

func (s *Server) lifecycleJob(n notification, sub store.Subscription, log zerolog.Logger) (river.JobArgs, string) {
	switch n.LifecycleEvent {
	case jobs.EventReauthorizationRequired, jobs.EventSubscriptionRemoved, jobs.EventMissed:
		return jobs.Lifecycle{SubscriptionID: sub.ID, Event: n.LifecycleEvent, Mailbox: sub.Mailbox}, ""
	}
	log.Warn().Str("subscription_id", sub.ID).Str("event", truncate(n.LifecycleEvent, 64)).
		Msg("unknown lifecycle event ignored")
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
