package server

import (
	"encoding/json"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
)

// accessLog logs one line per request: never bodies, query strings or
// headers, which may carry tokens or secrets.
func accessLog(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			ev := log.Info()
			if status >= 500 {
				ev = log.Warn()
			}
			ev.Str("component", "http").
				Str("request_id", middleware.GetReqID(r.Context())).
				Str("method", r.Method).
				Str("path", r.URL.Path).
				Int("status", status).
				Int("bytes", ww.BytesWritten()).
				Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
				Str("client", clientAddr(r)).
				Msg("request")
		})
	}
}

// clientAddr is the client address: from X-Forwarded-For when the peer is a
// trusted proxy, else the peer itself.
func clientAddr(r *http.Request) string {
	if ip := middleware.GetClientIP(r.Context()); ip != "" {
		return ip
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// recoverer turns a panic in a handler into a 500 and a log line with the
// stack, so one bad request never stops the service.
func recoverer(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				log.Error().Str("component", "http").
					Str("request_id", middleware.GetReqID(r.Context())).
					Interface("panic", rec).
					Bytes("stack", debug.Stack()).
					Msg("handler panicked")
				writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// limitBody answers 413 to a request whose declared length exceeds n and caps
// reading of every other body at n bytes.
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: "request body too large"})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
