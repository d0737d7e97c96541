package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// mailboxLimits keeps, per mailbox, a semaphore of mailboxConcurrency slots
// and a token bucket. Every HTTP attempt (retries included) for a mailbox
// takes one token and holds one slot until its response body is closed or
// fully read.
type mailboxLimits struct {
	rps   rate.Limit
	burst int

	mu    sync.Mutex
	boxes map[string]*mailboxLimit
}

type mailboxLimit struct {
	sem    chan struct{}
	bucket *rate.Limiter
}

func newMailboxLimits(rps float64, burst int) *mailboxLimits {
	if rps <= 0 {
		rps = defaultMailboxRPS
	}
	if burst <= 0 {
		burst = defaultMailboxBurst
	}
	return &mailboxLimits{rps: rate.Limit(rps), burst: burst, boxes: map[string]*mailboxLimit{}}
}

func (l *mailboxLimits) get(mailbox string) *mailboxLimit {
	key := strings.ToLower(mailbox)
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.boxes[key]
	if !ok {
		m = &mailboxLimit{sem: make(chan struct{}, mailboxConcurrency), bucket: rate.NewLimiter(l.rps, l.burst)}
		l.boxes[key] = m
	}
	return m
}

// acquire waits for a slot and a token; the returned func releases the slot.
func (l *mailboxLimits) acquire(ctx context.Context, mailbox string) (func(), error) {
	m := l.get(mailbox)
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := m.bucket.Wait(ctx); err != nil {
		<-m.sem
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { <-m.sem }) }, nil
}

// callState travels in the request context from a Client method down to the
// innermost transport. It names the mailbox to limit and records what the
// last response said, so that errors can carry the server's Retry-After.
type callState struct {
	mailbox string
	// maxBody, when positive, caps a successful response body.
	maxBody int64

	mu         sync.Mutex
	status     int
	retryAfter string
	attempts   int
}

func (s *callState) record(resp *http.Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	s.status = resp.StatusCode
	s.retryAfter = resp.Header.Get("Retry-After")
}

func (s *callState) last() (status int, retryAfter string, attempts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, s.retryAfter, s.attempts
}

type callKey struct{}

func withCall(ctx context.Context, st *callState) context.Context {
	return context.WithValue(ctx, callKey{}, st)
}

func callFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callKey{}).(*callState)
	return st
}

// errBodyTooLarge is returned while reading a body past callState.maxBody.
var errBodyTooLarge = errors.New("response body exceeds the configured limit")

// maxErrorBody bounds how much of an error response is buffered.
const maxErrorBody = 1 << 20

// limitTransport is the innermost RoundTripper: it applies the mailbox
// limits and records each response.
type limitTransport struct {
	next   http.RoundTripper
	limits *mailboxLimits
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := callFrom(req.Context())
	release := func() {}
	if st != nil && st.mailbox != "" {
		r, err := t.limits.acquire(req.Context(), st.mailbox)
		if err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, fmt.Errorf("wait for mailbox %s request slot: %w", st.mailbox, err)
		}
		release = r
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		release()
		return nil, err
	}
	if st != nil {
		st.record(resp)
	}
	if resp.StatusCode >= 300 {
		// Error bodies are small; buffer them so the slot is free even when
		// a middleware drops the response without closing it (the retry
		// handler does).
		data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		release()
		if rerr != nil {
			return nil, fmt.Errorf("read %d response: %w", resp.StatusCode, rerr)
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
		return resp, nil
	}
	var limit int64
	if st != nil {
		limit = st.maxBody
	}
	if limit > 0 && resp.ContentLength > limit {
		_ = resp.Body.Close()
		release()
		return nil, fmt.Errorf("%w (%d bytes announced, limit %d)", errBodyTooLarge, resp.ContentLength, limit)
	}
	resp.Body = &releasingBody{rc: resp.Body, release: release, limit: limit}
	return resp, nil
}

// releasingBody frees the mailbox slot on EOF, error or Close, and enforces
// an optional size cap.
type releasingBody struct {
	rc      io.ReadCloser
	release func()
	limit   int64
	n       int64
}

func (b *releasingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		b.release()
		return n, fmt.Errorf("%w (limit %d bytes)", errBodyTooLarge, b.limit)
	}
	if err != nil {
		b.release()
	}
	return n, err
}

func (b *releasingBody) Close() error {
	b.release()
	return b.rc.Close()
}
