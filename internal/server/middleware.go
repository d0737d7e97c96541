package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyClientIP
	keyAdminCaller
)

// requestIDOf returns the id requestID gave the request.
func requestIDOf(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// AdminCaller returns who made an admin request: "token" when it carried the
// admin token, "loopback" when the admin listener needs none.
func AdminCaller(ctx context.Context) string {
	s, _ := ctx.Value(keyAdminCaller).(string)
	return s
}

// requestID gives every request a random id for the logs.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyRequestID, hex.EncodeToString(b[:]))))
	})
}

// clientIP records the client's address: the last X-Forwarded-For hop that
// is not a trusted proxy when the peer is one, else the peer itself.
func clientIP(trusted []netip.Prefix) func(http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := r.RemoteAddr
			if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				ip = host
			}
			if peer, err := netip.ParseAddr(ip); err == nil && isTrusted(peer) {
				hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
				for i := len(hops) - 1; i >= 0; i-- {
					a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
					if err != nil {
						break
					}
					ip = a.Unmap().String()
					if !isTrusted(a) {
						break
					}
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyClientIP, ip)))
		})
	}
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request: never bodies, query strings or
// headers, which may carry tokens or secrets.
func accessLog(log zerolog.Logger, listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			ev := log.Info()
			if status >= 500 && listener == "public" {
				// Graph retries these; the admin listener's 503 is readiness.
				ev = log.Warn()
			}
			ip, _ := r.Context().Value(keyClientIP).(string)
			ev.Str("component", "http").Str("listener", listener).
				Str("request_id", requestIDOf(r.Context())).
				Str("method", r.Method).
				Str("path", r.URL.Path).
				Int("status", status).
				Int("bytes", sw.bytes).
				Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
				Str("client", ip).
				Msg("request")
		})
	}
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
					Str("request_id", requestIDOf(r.Context())).
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

// requireToken admits requests carrying "Authorization: Bearer <token>",
// compared in constant time; others get 401. An empty token admits every
// request (the admin listener on loopback).
func requireToken(token string, log zerolog.Logger) func(http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if token == "" {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyAdminCaller, "loopback")))
				return
			}
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				ip, _ := r.Context().Value(keyClientIP).(string)
				log.Warn().Str("component", "http").Str("path", r.URL.Path).Str("client", ip).
					Bool("had_credentials", len(got) > 0).Msg("admin request without the admin token refused")
				w.Header().Set("WWW-Authenticate", `Bearer realm="mail2archer admin"`)
				writeJSON(w, http.StatusUnauthorized, errorBody{Error: "the admin token is required (Authorization: Bearer …)"})
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyAdminCaller, "token")))
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
