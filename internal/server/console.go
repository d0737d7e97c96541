package server

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/console"
)

// Console is what the operator console's API asks of the pipeline
// (implemented by *console.Console).
type Console interface {
	Reports(ctx context.Context, f console.Filter) ([]console.Report, error)
	History(ctx context.Context, mailbox, messageID string) (console.Report, []console.Attempt, error)
	Retry(ctx context.Context, jobID int64) (string, error)
	Cancel(ctx context.Context, jobID int64) (string, error)
	Replay(ctx context.Context, mailbox, messageID string) (string, error)
	Subscriptions() []console.Subscription
	Resync(ctx context.Context, mailbox string) (string, error)
	QueueCounts(ctx context.Context) (map[string]int, error)
}

// consoleAPI mounts the console's API (/api/v1/…).
func (s *Server) consoleAPI(r chi.Router) {
	r.Use(noStore, s.loopbackHost, s.needConsole)
	r.Get("/reports", s.handleReports)
	r.Get("/reports/{mailbox}/{message_id}", s.handleHistory)
	r.Get("/subscriptions", s.handleSubscriptions)
	r.Get("/status", s.handleStatus)
	r.Group(func(r chi.Router) {
		r.Use(jsonOnly)
		r.Post("/jobs/{id}/retry", s.handleRetry)
		r.Post("/jobs/{id}/cancel", s.handleCancel)
		r.Post("/reports/replay", s.handleReplay)
		r.Post("/subscriptions/resync", s.handleResync)
	})
}

// noStore keeps the console's answers out of every cache.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// loopbackHost refuses, when the admin listener needs no token (it is on
// loopback), a request whose Host is a name other than localhost: a web
// page whose name an attacker points at 127.0.0.1 (DNS rebinding) could
// otherwise read the console from the operator's browser.
func (s *Server) loopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken == "" && !loopbackName(r.Host) {
			s.opts.Logger.Warn().Str("component", "console").Str("host", r.Host).
				Msg("console request for a foreign host name refused; use http://127.0.0.1:<admin port>/ or set M2A_ADMIN_TOKEN")
			writeJSON(w, http.StatusMisdirectedRequest, errorBody{Error: "without M2A_ADMIN_TOKEN the console answers only to localhost or a loopback address"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackName(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// needConsole answers 503 while the service has no console (a server built
// for the webhooks alone).
func (s *Server) needConsole(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Console == nil {
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the console is not available in this process"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// jsonOnly refuses an action whose body is not declared JSON (415): a
// cross-site form cannot send that content type, and a cross-site script
// that does must first pass a CORS preflight, which is never granted.
func jsonOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Error: "actions take a JSON body (Content-Type: application/json)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// consoleError answers err with the status its kind calls for.
func (s *Server) consoleError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, console.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, console.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, console.ErrInvalid):
		status = http.StatusBadRequest
	}
	if status == http.StatusInternalServerError {
		s.opts.Logger.Error().Err(err).Str("component", "console").Str("request_id", requestIDOf(r.Context())).
			Str("path", r.URL.Path).Msg("console request failed")
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}

// pathParam returns a route parameter, decoded: chi matches the escaped
// path when the request's has escapes (a message id with "/").
func pathParam(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v, nil
	}
	return url.PathUnescape(v)
}

func (s *Server) handleReports(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := console.Filter{State: q.Get("state"), Query: q.Get("q")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "limit must be a number"})
			return
		}
		f.Limit = n
	}
	reports, err := s.opts.Console.Reports(r.Context(), f)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reports": reports})
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	mailbox, err1 := pathParam(r, "mailbox")
	id, err2 := pathParam(r, "message_id")
	if err := errors.Join(err1, err2); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "bad escape in the path"})
		return
	}
	report, history, err := s.opts.Console.History(r.Context(), mailbox, id)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"report": report, "history": history})
}

func (s *Server) handleSubscriptions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": s.opts.Console.Subscriptions()})
}

// status is the console's summary: readiness as /readyz gives it, and the
// queue's jobs by state.
type status struct {
	Ready      bool                       `json:"ready"`
	Components map[string]componentStatus `json:"components"`
	Queue      map[string]int             `json:"queue"`
	Now        time.Time                  `json:"now"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	rd := s.readiness(r.Context())
	counts, err := s.opts.Console.QueueCounts(r.Context())
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, status{Ready: rd.Status == "ready", Components: rd.Components, Queue: counts, Now: s.opts.Now().UTC()})
}

// action runs one operator action and logs who asked for it and what came
// of it.
func (s *Server) action(w http.ResponseWriter, r *http.Request, what string, fields func(*zerolog.Event) *zerolog.Event, do func(context.Context) (string, error)) {
	done, err := do(r.Context())
	ev := s.opts.Logger.Info()
	if err != nil {
		ev = s.opts.Logger.Warn().Err(err)
	}
	fields(ev.Str("component", "console").Str("action", what).Str("caller", AdminCaller(r.Context())).
		Str("request_id", requestIDOf(r.Context()))).Str("result", done).Msg("operator action")
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"done": done})
}

func jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "the job id must be a positive number"})
		return 0, false
	}
	return id, true
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	s.action(w, r, "retry", func(e *zerolog.Event) *zerolog.Event { return e.Int64("job_id", id) },
		func(ctx context.Context) (string, error) { return s.opts.Console.Retry(ctx, id) })
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	s.action(w, r, "cancel", func(e *zerolog.Event) *zerolog.Event { return e.Int64("job_id", id) },
		func(ctx context.Context) (string, error) { return s.opts.Console.Cancel(ctx, id) })
}

// decodeBody reads a small JSON object into v, answering 400 when it is not
// one.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "the body must be a JSON object of the documented fields: " + err.Error()})
		return false
	}
	return true
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Mailbox   string `json:"mailbox"`
		MessageID string `json:"message_id"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	s.action(w, r, "replay", func(e *zerolog.Event) *zerolog.Event {
		return e.Str("mailbox", body.Mailbox).Str("message_id", body.MessageID)
	}, func(ctx context.Context) (string, error) {
		return s.opts.Console.Replay(ctx, body.Mailbox, body.MessageID)
	})
}

func (s *Server) handleResync(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Mailbox string `json:"mailbox"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	s.action(w, r, "resync", func(e *zerolog.Event) *zerolog.Event { return e.Str("mailbox", body.Mailbox) },
		func(ctx context.Context) (string, error) { return s.opts.Console.Resync(ctx, body.Mailbox) })
}
