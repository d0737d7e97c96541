// Package archer is a client for the Archer IRM REST API: it logs in and
// keeps one shared session, resolves applications, fields and values-list
// values by name, creates, reads, updates and deletes content records,
// uploads attachments as a stream, and finds records by a field's value
// through the Content API.
//
// A Client is safe for concurrent use. Every call takes a context; when the
// session has expired (HTTP 401) the client logs in again — exactly once for
// all callers that noticed — and repeats the call once.
package archer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// maxResponse caps a JSON answer; attachment downloads have their own cap.
const maxResponse = 64 << 20

// Client talks to one Archer instance as one user.
type Client struct {
	cfg    Config
	base   *url.URL // scheme://host/virtualdir, no trailing slash
	prefix string
	hc     *http.Client
	log    zerolog.Logger

	mu      sync.Mutex
	token   string
	pending *loginCall
	closed  bool
	// refused is the last login failure that needs an operator (a refused
	// password, a sign-on page, an untrusted certificate); until
	// refusedUntil, logins fail with it at once instead of asking Archer,
	// so the service can never lock the account.
	refused      error
	refusedUntil time.Time

	metaMu sync.Mutex
	apps   map[string]*Application
	lists  map[int64][]Value
}

// loginCall is one login in flight that other callers wait for.
type loginCall struct {
	done  chan struct{}
	token string
	err   error
}

// New checks cfg and returns a client. It does not contact Archer: the
// first call logs in.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	base, prefix, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	hc, err := cfg.httpClient()
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:    cfg,
		base:   base,
		prefix: prefix,
		hc:     hc,
		log:    log.With().Str("component", "archer").Logger(),
		apps:   map[string]*Application{},
		lists:  map[int64][]Value{},
	}, nil
}

// restURL returns the URL of a REST resource below {prefix}/core/.
func (c *Client) restURL(resource string) string {
	return c.base.String() + "/" + c.prefix + "/core/" + resource
}

// contentAPIURL returns the URL of a Content API endpoint.
func (c *Client) contentAPIURL(endpoint string) string {
	return c.base.String() + "/contentapi/" + url.PathEscape(endpoint)
}

// Close logs the session out. Later calls fail with ErrClosed. It is safe to
// call more than once.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	token := c.token
	c.token = ""
	c.closed = true
	c.mu.Unlock()
	if token == "" {
		return nil
	}
	body, _ := json.Marshal(map[string]string{"Value": token})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.restURL("security/logout"), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("archer logout: %w", err)
	}
	setHeaders(req, token, true)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("archer logout: %w", err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, maxResponse)
	if err != nil {
		return fmt.Errorf("archer logout: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil // the session had already ended
	}
	if err := checkResponse("logout", req, resp, data); err != nil {
		return err
	}
	var w wrapper
	return decodeWrapper("logout", data, &w, nil)
}

// sessionCookieNames are the names under which Archer's Content API
// documentation passes the session token as a cookie: the parameter table
// of "Content Save" (2024.11) calls it __ArcherSessionCookie__, its sample
// request ArcherSessionCookie.
var sessionCookieNames = []string{"__ArcherSessionCookie__", "ArcherSessionCookie"}

func setHeaders(req *http.Request, token string, hasBody bool) {
	req.Header.Set("Accept", "application/json,text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", `Archer session-id="`+token+`"`)
	}
}

// sessionToken returns the current token, logging in first if there is none.
func (c *Client) sessionToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	t := c.token
	c.mu.Unlock()
	if t != "" {
		return t, nil
	}
	return c.renew(ctx, "")
}

// renew replaces the token stale with a new one. Concurrent callers share
// one login: whoever finds none in flight starts it, the others wait for its
// result. A caller whose stale token was already replaced gets the new token
// without a login.
func (c *Client) renew(ctx context.Context, stale string) (string, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	if c.token != "" && c.token != stale {
		t := c.token
		c.mu.Unlock()
		return t, nil
	}
	if c.refused != nil && c.now().Before(c.refusedUntil) {
		err := c.refused
		c.mu.Unlock()
		return "", err
	}
	if p := c.pending; p != nil {
		c.mu.Unlock()
		select {
		case <-p.done:
			return p.token, p.err
		case <-ctx.Done():
			return "", fmt.Errorf("archer login: %w", ctx.Err())
		}
	}
	p := &loginCall{done: make(chan struct{})}
	c.pending = p
	c.mu.Unlock()

	// The login outlives the caller's cancellation: others may be waiting.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loginTimeout())
	token, err := c.login(lctx)
	cancel()

	c.mu.Lock()
	if err == nil && !c.closed {
		c.token = token
	}
	firstRefusal := false
	switch {
	case err == nil:
		c.refused = nil
	case Decide(err).Action == outcome.WaitOperator:
		firstRefusal = c.refused == nil
		c.refused, c.refusedUntil = err, c.now().Add(c.loginBackoff())
	}
	c.pending = nil
	p.token, p.err = token, err
	close(p.done)
	c.mu.Unlock()
	if firstRefusal {
		c.log.Error().Err(err).Dur("next_login_in", c.loginBackoff()).
			Msg("archer login refused; no further login before the backoff ends, so the account cannot be locked")
	}
	if err != nil {
		return "", err
	}
	if stale != "" {
		c.log.Info().Str("user", c.cfg.Username).Msg("archer session expired; logged in again")
	} else {
		c.log.Info().Str("user", c.cfg.Username).Str("instance", c.cfg.Instance).Msg("archer login")
	}
	return token, nil
}

func (c *Client) loginBackoff() time.Duration {
	if c.cfg.LoginBackoff > 0 {
		return c.cfg.LoginBackoff
	}
	return DefaultLoginBackoff
}

func (c *Client) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

func (c *Client) loginTimeout() time.Duration {
	if c.cfg.Timeout > 0 {
		return c.cfg.Timeout
	}
	return DefaultTimeout
}

func (c *Client) login(ctx context.Context) (string, error) {
	body, err := json.Marshal(struct {
		InstanceName string
		Username     string
		UserDomain   string
		Password     string
	}{c.cfg.Instance, c.cfg.Username, c.cfg.UserDomain, c.cfg.Password})
	if err != nil {
		return "", fmt.Errorf("archer login: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.restURL("security/login"), bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("archer login: %w", err)
	}
	setHeaders(req, "", true)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("archer login: %w", err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, maxResponse)
	if err != nil {
		return "", fmt.Errorf("archer login: %w", err)
	}
	if err := checkResponse("login", req, resp, data); err != nil {
		return "", err
	}
	var sc struct {
		SessionToken string `json:"SessionToken"`
	}
	if err := decodeWrapper("login", data, &sc, nil); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return "", fmt.Errorf("%w as %q on instance %q: %w", ErrLogin, c.cfg.Username, c.cfg.Instance, err)
		}
		return "", err
	}
	if sc.SessionToken == "" {
		return "", fmt.Errorf("archer login: the answer carries no session token")
	}
	return sc.SessionToken, nil
}

// apiCall describes one JSON request.
type apiCall struct {
	op string
	// method is the effective verb. Reads are sent as POST with
	// X-Http-Method-Override: GET, as Archer's documentation shows, so that
	// OData options can travel in the body.
	method   string
	url      string
	body     []byte
	override bool
	limit    int64
	// cookie also sends the session as a cookie: Archer's Content API
	// documentation shows the session in the Authorization header (6.x) and
	// in a session cookie (2024.11), so Content API calls carry both.
	cookie bool
}

// do sends the call with the session header and returns the body of a 2xx
// answer. On 401 it renews the session once and repeats the call once.
func (c *Client) do(ctx context.Context, call apiCall) ([]byte, error) {
	token, err := c.sessionToken(ctx)
	if err != nil {
		return nil, err
	}
	if call.limit == 0 {
		call.limit = maxResponse
	}
	for attempt := 0; ; attempt++ {
		data, status, err := c.send(ctx, call, token)
		if err != nil {
			return nil, err
		}
		if status != http.StatusUnauthorized {
			return data, nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("archer %s: %w even after a fresh login (another login of the same account may have replaced it)", call.op, ErrSession)
		}
		if token, err = c.renew(ctx, token); err != nil {
			return nil, fmt.Errorf("archer %s: %w", call.op, err)
		}
	}
}

func (c *Client) send(ctx context.Context, call apiCall, token string) ([]byte, int, error) {
	method := call.method
	var body io.Reader
	if call.body != nil {
		body = bytes.NewReader(call.body)
	}
	if call.override {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, call.url, body)
	if err != nil {
		return nil, 0, fmt.Errorf("archer %s: %w", call.op, err)
	}
	setHeaders(req, token, call.body != nil || call.override)
	if call.override {
		req.Header.Set("X-Http-Method-Override", call.method)
	}
	if call.cookie && token != "" {
		for _, name := range sessionCookieNames {
			req.AddCookie(&http.Cookie{Name: name, Value: token})
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("archer %s: %w", call.op, err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, call.limit)
	if err != nil {
		return nil, 0, fmt.Errorf("archer %s: read answer: %w", call.op, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, resp.StatusCode, nil
	}
	if err := checkResponse(call.op, req, resp, data); err != nil {
		return nil, 0, err
	}
	return data, resp.StatusCode, nil
}

// readBody reads at most limit bytes and fails beyond.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return data, nil
}

// checkResponse turns statuses and HTML pages into errors. A 2xx JSON body,
// or a 4xx whose body is Archer's JSON wrapper, passes.
func checkResponse(op string, req *http.Request, resp *http.Response, data []byte) error {
	status := resp.StatusCode
	u := redactURL(req.URL)
	html := looksLikeHTML(resp.Header.Get("Content-Type"), data)
	switch {
	case status >= 300 && status < 400:
		loc := resp.Header.Get("Location")
		return &HTMLError{Op: op, URL: u, StatusCode: status, Snippet: snippet(data),
			Cause: fmt.Sprintf("the server redirected the API call to %q: single sign-on is intercepting the API user (enable \"Allow manual bypass\" for it), or the base URL is wrong (http instead of https, or a missing virtual directory)", loc)}
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		return &StatusError{Op: op, Method: req.Method, URL: u, StatusCode: status, Body: snippet(data), RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	case html && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed):
		return &HTMLError{Op: op, URL: u, StatusCode: status, Snippet: snippet(data),
			Cause: "no Archer API at this address: check the base URL and its virtual directory (e.g. /RSAArcher or /Archer) and the API prefix (\"platformapi\" since Archer 6.5, \"api\" before)"}
	case html:
		return &HTMLError{Op: op, URL: u, StatusCode: status, Snippet: snippet(data),
			Cause: "the request was answered by a web page, typically the sign-in page: single sign-on is intercepting the API user (enable \"Allow manual bypass\" for it), or the base URL or API prefix points to the web interface instead of the API"}
	case status >= 400 && !isJSONWrapper(data):
		// A 4xx carrying Archer's wrapper passes: the caller decodes its
		// validation messages.
		return &StatusError{Op: op, Method: req.Method, URL: u, StatusCode: status, Body: snippet(data)}
	}
	return nil
}

func looksLikeHTML(contentType string, data []byte) bool {
	if strings.Contains(strings.ToLower(contentType), "html") {
		return true
	}
	t := bytes.TrimSpace(data)
	return len(t) > 0 && t[0] == '<'
}

func isJSONWrapper(data []byte) bool {
	var w struct {
		IsSuccessful *flexBool `json:"IsSuccessful"`
	}
	return json.Unmarshal(data, &w) == nil && w.IsSuccessful != nil
}

// snippet is the start of an answer body, for an error or a log line.
func snippet(data []byte) string { return clip.Bytes(data, 200) }

func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.Redacted()
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// wrapper is Archer's response envelope.
type wrapper struct {
	RequestedObject    json.RawMessage     `json:"RequestedObject"`
	IsSuccessful       *flexBool           `json:"IsSuccessful"`
	ValidationMessages []validationMessage `json:"ValidationMessages"`
}

type validationMessage struct {
	MessageKey       string  `json:"MessageKey"`
	Description      string  `json:"Description"`
	ResourcedMessage *string `json:"ResourcedMessage"`
}

// flexBool is IsSuccessful as Archer releases write it: a JSON boolean, or
// the string "true"/"false" in any case.
type flexBool bool

// UnmarshalJSON accepts true, false, "true" and "false".
func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.ToLower(strings.Trim(strings.TrimSpace(string(data)), `"`))
	switch s {
	case "true":
		*b = true
	case "false":
		*b = false
	default:
		return fmt.Errorf("IsSuccessful is %s, not a boolean", snippet(data))
	}
	return nil
}

// decodeWrapper decodes one wrapper into out; IsSuccessful:false becomes a
// *ValidationError. If w is non-nil it receives the raw wrapper.
func decodeWrapper(op string, data []byte, out any, w *wrapper) error {
	var tmp wrapper
	if w == nil {
		w = &tmp
	}
	if err := json.Unmarshal(data, w); err != nil {
		return fmt.Errorf("archer %s: decode answer: %w (body starts %q)", op, err, snippet(data))
	}
	if w.IsSuccessful == nil {
		return fmt.Errorf("archer %s: the answer is not an Archer response (no IsSuccessful): %q", op, snippet(data))
	}
	if !bool(*w.IsSuccessful) {
		return validationError(op, w.ValidationMessages)
	}
	if out == nil || len(w.RequestedObject) == 0 || string(w.RequestedObject) == "null" {
		return nil
	}
	if err := json.Unmarshal(w.RequestedObject, out); err != nil {
		return fmt.Errorf("archer %s: decode RequestedObject: %w", op, err)
	}
	return nil
}

func validationError(op string, msgs []validationMessage) *ValidationError {
	ve := &ValidationError{Op: op}
	for _, m := range msgs {
		switch {
		case m.ResourcedMessage != nil && strings.TrimSpace(*m.ResourcedMessage) != "":
			ve.Messages = append(ve.Messages, strings.TrimSpace(*m.ResourcedMessage))
		case m.MessageKey != "":
			ve.Messages = append(ve.Messages, m.MessageKey)
		case m.Description != "":
			ve.Messages = append(ve.Messages, m.Description)
		}
	}
	return ve
}

// decodeList decodes an array of wrappers, failing on the first
// unsuccessful element.
func decodeList[T any](op string, data []byte) ([]T, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		// Some failures come back as a single wrapper instead of an array.
		var w wrapper
		if json.Unmarshal(data, &w) == nil && w.IsSuccessful != nil && !bool(*w.IsSuccessful) {
			return nil, validationError(op, w.ValidationMessages)
		}
		return nil, fmt.Errorf("archer %s: decode list: %w (body starts %q)", op, err, snippet(data))
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := decodeWrapper(op, r, &v, nil); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// odataBody is the documented way to pass OData options: in the body of a
// POST overridden to GET.
func odataBody(query string) []byte {
	b, _ := json.Marshal(map[string]string{"Value": "?" + query})
	return b
}

// odataString quotes s as an OData string literal.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Ping checks that Archer answers and the session is valid, logging in if
// needed. It reads one application entry; readiness checks may call it.
func (c *Client) Ping(ctx context.Context) error {
	data, err := c.do(ctx, apiCall{op: "ping", method: http.MethodGet, override: true, url: c.restURL("system/application"), body: odataBody("$top=1")})
	if err != nil {
		return err
	}
	_, err = decodeList[appDTO]("ping", data)
	return err
}
