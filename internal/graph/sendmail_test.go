package graph

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

func ack() OutgoingMessage {
	return OutgoingMessage{
		To:      []string{"adelev@contoso.com"},
		Subject: "We received your report (239643)",
		Text:    "Thank you.",
		HTML:    "<p>Thank you &lt;3</p>",
		Headers: map[string]string{"X-Mail2Archer-Report": "AAkALgAAA", "x-auto-response-suppress": "All"},
	}
}

// sendMailRequests returns the bodies of the sendMail POSTs the simulator
// recorded, decoded.
func sendMailRequests(t *testing.T, sim *graphsim.Server) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range sim.Requests() {
		if r.Method != http.MethodPost || r.Path != "/v1.0/users/"+pathSegment(testMailbox)+"/sendMail" {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("sendMail body %s: %v", r.Body, err)
		}
		out = append(out, body)
	}
	return out
}

// TestSendMailThroughTheSDK sends through the real request adapter, the
// SDK's middleware and the azidentity credential to the simulator over
// TLS, and pins the request Graph documents.
func TestSendMailThroughTheSDK(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	ctx := context.Background()
	m := ack()
	m.SaveToSentItems = true
	if err := b.client.SendMail(ctx, testMailbox, m); err != nil {
		t.Fatal(err)
	}
	if err := b.client.SendMail(ctx, testMailbox, OutgoingMessage{To: []string{"meganb@contoso.com"}, Subject: "Plain", Text: "Only text."}); err != nil {
		t.Fatal(err)
	}

	sent := b.sim.SentMessages()
	if len(sent) != 2 {
		t.Fatalf("the simulator accepted %d messages, want 2", len(sent))
	}
	first, second := sent[0], sent[1]
	wantHeaders := []graphsim.MessageHeader{{Name: "X-Mail2Archer-Report", Value: "AAkALgAAA"}, {Name: "x-auto-response-suppress", Value: "All"}}
	if first.From != testMailbox || !reflect.DeepEqual(first.To, []string{"adelev@contoso.com"}) || first.Subject != m.Subject ||
		first.ContentType != "html" || first.Content != m.HTML || !reflect.DeepEqual(first.Headers, wantHeaders) ||
		!first.SavedToSentItems || first.SentItemID == "" {
		t.Errorf("first message = %+v", first)
	}
	if second.ContentType != "text" || second.Content != "Only text." || len(second.Headers) != 0 || second.SavedToSentItems {
		t.Errorf("second message = %+v", second)
	}

	reqs := sendMailRequests(t, b.sim)
	if len(reqs) != 2 {
		t.Fatalf("%d sendMail requests recorded", len(reqs))
	}
	// The SDK spells the action's parameters "Message" and
	// "SaveToSentItems"; Graph matches them without regard to case.
	msg, _ := reqs[0]["Message"].(map[string]any)
	if _, ok := reqs[0]["SaveToSentItems"]; ok {
		t.Errorf("SaveToSentItems sent although it is Graph's default: %v", reqs[0])
	}
	if reqs[1]["SaveToSentItems"] != false {
		t.Errorf("second request lacks SaveToSentItems false: %v", reqs[1])
	}
	body, _ := msg["body"].(map[string]any)
	if msg["subject"] != m.Subject || body["contentType"] != "html" || body["content"] != m.HTML {
		t.Errorf("message = %v", msg)
	}
	// Sent uncompressed, as every body of this client (kiota-http-go#183).
	for _, r := range b.sim.Requests() {
		if strings.HasSuffix(r.Path, "/sendMail") && (r.Gzipped || r.Header.Get("Content-Encoding") != "") {
			t.Errorf("sendMail went out with Content-Encoding %q", r.Header.Get("Content-Encoding"))
		}
	}
}

// TestSendMailRoute pins the builder made from the adapter: an injected
// 418 on the simulator's sendMail route proves where the request went.
func TestSendMailRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusTeapot, Times: 1})
	if e := asError(t, b.client.SendMail(context.Background(), testMailbox, ack())); e.Status != http.StatusTeapot {
		t.Fatalf("the request did not reach the sendMail route: %v", e)
	}
	r := lastRequest(t, b.sim)
	if r.Method != http.MethodPost || r.Path != "/v1.0/users/"+pathSegment(testMailbox)+"/sendMail" || len(r.Query) != 0 {
		t.Errorf("sent %s %s?%s", r.Method, r.Path, r.Query.Encode())
	}
}

func TestSendMailRefusesBadMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	with := func(f func(m *OutgoingMessage)) OutgoingMessage {
		m := ack()
		f(&m)
		return m
	}
	tests := []struct {
		name    string
		mailbox string
		msg     OutgoingMessage
		want    string
	}{
		{"no recipient", testMailbox, with(func(m *OutgoingMessage) { m.To = nil }), "no recipient"},
		{"display name", testMailbox, with(func(m *OutgoingMessage) { m.To = []string{"Adele <adelev@contoso.com>"} }), "not a bare email address"},
		{"no domain", testMailbox, with(func(m *OutgoingMessage) { m.To = []string{"adelev"} }), "not a bare email address"},
		{"two in one", testMailbox, with(func(m *OutgoingMessage) { m.To = []string{"a@contoso.com, b@contoso.com"} }), "not a bare email address"},
		{"too long", testMailbox, with(func(m *OutgoingMessage) { m.To = []string{strings.Repeat("a", 320) + "@contoso.com"} }), "not a bare email address"},
		{"subject injection", testMailbox, with(func(m *OutgoingMessage) { m.Subject = "Hi\r\nBcc: all@contoso.com" }), "line break"},
		{"empty", testMailbox, with(func(m *OutgoingMessage) { m.Subject, m.Text, m.HTML = "", "", "" }), "neither a subject nor a body"},
		{"standard header", testMailbox, with(func(m *OutgoingMessage) { m.Headers = map[string]string{"Auto-Submitted": "auto-replied"} }), "starting with X-"},
		{"bare prefix", testMailbox, with(func(m *OutgoingMessage) { m.Headers = map[string]string{"X-": "v"} }), "starting with X-"},
		{"header name with colon", testMailbox, with(func(m *OutgoingMessage) { m.Headers = map[string]string{"X-A:B": "v"} }), "starting with X-"},
		{"header value injection", testMailbox, with(func(m *OutgoingMessage) { m.Headers = map[string]string{"X-Ref": "1\nBcc: all@contoso.com"} }), "line break"},
		{"too large", testMailbox, with(func(m *OutgoingMessage) { m.HTML = strings.Repeat("x", maxOutgoingBytes) }), "more than"},
		{"bad mailbox", "phish/../x", ack(), "not allowed"},
	}
	for _, tt := range tests {
		err := b.client.SendMail(context.Background(), tt.mailbox, tt.msg)
		e := asError(t, err)
		if e.Class != ClassPermanent || !strings.Contains(e.Message, tt.want) || Decide(err).Action != outcome.End {
			t.Errorf("%s: %v (class %v), want a permanent error about %q", tt.name, err, e.Class, tt.want)
		}
	}
	for _, r := range b.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") {
			t.Errorf("a refused message was sent: %s %s", r.Method, r.Path)
		}
	}
}

// TestSendMailFailuresDecide checks that what Graph answers sendMail
// becomes the decision the acknowledgment job needs.
func TestSendMailFailuresDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    graphsim.Options
		mailbox string
		prepare func(t *testing.T, b *bundle)
		action  outcome.Action
		reason  string
		after   time.Duration
		fix     []string
	}{
		{
			name: "403 without Mail.Send",
			prepare: func(t *testing.T, b *bundle) {
				if err := b.sim.SetAccess(testMailbox, graphsim.AccessReadWrite|graphsim.AccessNoSend); err != nil {
					t.Fatal(err)
				}
			},
			action: outcome.WaitOperator, reason: "graph_permission",
			fix: []string{"Mail.Send", testMailbox, "Access is denied"},
		},
		{
			name: "403 when a policy excludes the mailbox",
			prepare: func(t *testing.T, b *bundle) {
				_ = b.sim.SetAccess(testMailbox, graphsim.AccessNone)
			},
			action: outcome.WaitOperator, reason: "graph_permission",
			fix: []string{"Mail.Send", "application access policy"},
		},
		{
			name: "unknown mailbox", mailbox: "nobody@contoso.com",
			prepare: func(t *testing.T, b *bundle) {},
			action:  outcome.WaitOperator, reason: "graph_permission",
			fix: []string{"nobody@contoso.com does not exist"},
		},
		{
			name: "503 with Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second})
			},
			action: outcome.Snooze, reason: "graph_throttled", after: 7 * time.Second,
		},
		{
			name:    "403 when the token lacks Mail.Send",
			opts:    graphsim.Options{AppRoles: []string{"Mail.Read", "Mail.ReadWrite"}},
			prepare: func(t *testing.T, b *bundle) {},
			action:  outcome.WaitOperator, reason: "graph_permission",
			fix: []string{"Mail.Send", "admin consent", "Access is denied. Check credentials and try again."},
		},
		{
			name: "429 with Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second})
			},
			action: outcome.Snooze, reason: "graph_throttled", after: 3 * time.Second,
		},
		{
			name: "503 without Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusServiceUnavailable})
			},
			action: outcome.End, reason: "ack_maybe_sent",
			fix: []string{"may or may not have gone out", "503", "Sent Items", "message trace"},
		},
		{
			name: "504 with Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusGatewayTimeout, RetryAfter: 5 * time.Second})
			},
			action: outcome.End, reason: "ack_maybe_sent",
			fix: []string{"may or may not have gone out", "504 GatewayTimeout"},
		},
		{
			name: "mailbox budget spent",
			opts: graphsim.Options{Budget: 1, BudgetWindow: 10 * time.Minute},
			prepare: func(t *testing.T, b *bundle) {
				if err := b.client.SendMail(context.Background(), testMailbox, ack()); err != nil {
					t.Fatal(err)
				}
			},
			action: outcome.Snooze, reason: "graph_throttled", after: 10 * time.Minute,
		},
		{
			name: "400 recipient not resolved",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusBadRequest, Code: "ErrorInvalidRecipients",
					Message: "At least one recipient isn't valid., Recipient \"x\" isn't resolved. All recipients must be resolved before a message can be submitted."})
			},
			action: outcome.End, reason: "graph_permanent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts)
			tt.prepare(t, b)
			mailbox := tt.mailbox
			if mailbox == "" {
				mailbox = testMailbox
			}
			err := b.client.SendMail(context.Background(), mailbox, ack())
			if err == nil {
				t.Fatal("expected an error")
			}
			d := Decide(err)
			if d.Action != tt.action || d.Reason != tt.reason || d.After != tt.after || d.Component != "graph" {
				t.Fatalf("Decide(%v) = %+v, want %s %s after %s", err, d, tt.action, tt.reason, tt.after)
			}
			for _, s := range tt.fix {
				if !strings.Contains(d.Fix, s) {
					t.Errorf("fix %q does not mention %q", d.Fix, s)
				}
			}
		})
	}
}

// sendMailCount counts the sendMail requests that reached the simulator.
func sendMailCount(sim *graphsim.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/sendMail") {
			n++
		}
	}
	return n
}

// setupProto is setup with the simulator speaking HTTP/2 when h2 is set;
// the bundle has no webhook. proto returns the protocol of the last
// request the simulator received.
func setupProto(t *testing.T, opts graphsim.Options, h2 bool, mutate ...func(*Config)) (b *bundle, proto func() string) {
	t.Helper()
	opts.TenantID, opts.AppID, opts.ClientSecret, opts.AllowHTTP = testTenant, testApp, testSecret, true
	sim := graphsim.New(opts)
	var last atomic.Value
	last.Store("")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.Proto)
		sim.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	sim.AddMailbox(testMailbox)
	cfg := Config{
		TenantID: testTenant, ClientID: testApp, ClientSecret: testSecret,
		BaseURL: srv.URL + "/v1.0", AuthorityHost: srv.URL, HTTPClient: srv.Client(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{sim: sim, srv: srv, client: c}, func() string { return last.Load().(string) }
}

// TestSendMailIsSentAtMostOnce: whatever goes wrong, one sendMail request
// leaves this client, with the SDK's retries on (MaxRetries 3). Where
// Graph turned the request away (429 or 503 with Retry-After) the work
// snoozes; where the message may have gone out it ends as
// ack_maybe_sent, over HTTP/1.1 and HTTP/2 alike.
func TestSendMailIsSentAtMostOnce(t *testing.T) {
	t.Parallel()
	fault := func(status int, retryAfter time.Duration) graphsim.Fault {
		return graphsim.Fault{Route: graphsim.RouteSendMail, Status: status, RetryAfter: retryAfter}
	}
	tests := []struct {
		name    string
		fault   graphsim.Fault
		timeout time.Duration
		h2      bool
		action  outcome.Action
		reason  string
		// delivered is how many messages the simulator took.
		delivered int
	}{
		{name: "202", action: -1, delivered: 1},
		{name: "429 with Retry-After", fault: fault(429, time.Second), action: outcome.Snooze, reason: "graph_throttled"},
		{name: "503 with Retry-After", fault: fault(503, time.Second), action: outcome.Snooze, reason: "graph_throttled"},
		{name: "503 without Retry-After", fault: fault(503, 0), action: outcome.End, reason: "ack_maybe_sent"},
		{name: "504", fault: fault(504, 0), action: outcome.End, reason: "ack_maybe_sent"},
		{name: "504 with Retry-After", fault: fault(504, time.Second), action: outcome.End, reason: "ack_maybe_sent"},
		{name: "500", fault: fault(500, 0), action: outcome.End, reason: "ack_maybe_sent"},
		{name: "502", fault: fault(502, 0), action: outcome.End, reason: "ack_maybe_sent"},
		{name: "reset after the message was taken", fault: graphsim.Fault{Route: graphsim.RouteSendMail, Reset: true},
			action: outcome.End, reason: "ack_maybe_sent", delivered: 1},
		{name: "reset after the message was taken, HTTP/2", fault: graphsim.Fault{Route: graphsim.RouteSendMail, Reset: true}, h2: true,
			action: outcome.End, reason: "ack_maybe_sent", delivered: 1},
		{name: "timeout awaiting the answer", fault: graphsim.Fault{Route: graphsim.RouteSendMail, Latency: time.Minute}, timeout: 300 * time.Millisecond,
			action: outcome.End, reason: "ack_maybe_sent"},
		{name: "timeout awaiting the answer, HTTP/2", fault: graphsim.Fault{Route: graphsim.RouteSendMail, Latency: time.Minute}, timeout: 300 * time.Millisecond, h2: true,
			action: outcome.End, reason: "ack_maybe_sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, proto := setupProto(t, graphsim.Options{}, tt.h2, func(c *Config) { c.MaxRetries, c.RetryDelay = 3, time.Second })
			if tt.fault.Route != "" {
				b.sim.SetFaults(tt.fault)
			}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := b.client.SendMail(ctx, testMailbox, ack())
			if n := sendMailCount(b.sim); n != 1 {
				t.Errorf("%d sendMail requests left the client, want 1", n)
			}
			if n := len(b.sim.SentMessages()); n != tt.delivered {
				t.Errorf("the simulator took %d messages, want %d", n, tt.delivered)
			}
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[tt.h2]; proto() != want {
				t.Errorf("the request went over %s, want %s", proto(), want)
			}
			if tt.action < 0 {
				if err != nil {
					t.Fatalf("SendMail: %v", err)
				}
				return
			}
			e := asError(t, err)
			if d := Decide(err); d.Action != tt.action || d.Reason != tt.reason {
				t.Errorf("Decide(%v) = %s %s, want %s %s", err, d.Action, d.Reason, tt.action, tt.reason)
			}
			if e.MaybeSent != (tt.reason == "ack_maybe_sent") {
				t.Errorf("MaybeSent = %v for %v", e.MaybeSent, err)
			}
		})
	}
}

// TestSendMailWithoutAConnectionIsNotMaybeSent: a request that never
// found its server cannot have been taken; it is an ordinary transient
// failure, retried by the work like any other.
func TestSendMailWithoutAConnectionIsNotMaybeSent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	// The token still comes from the simulator; Graph is nowhere.
	b := setup(t, graphsim.Options{}, func(c *Config) { c.BaseURL = "https://" + closed + "/v1.0" })
	err = b.client.SendMail(context.Background(), testMailbox, ack())
	e := asError(t, err)
	if e.MaybeSent || e.Class != ClassTransient {
		t.Fatalf("SendMail to a closed port: %v (class %s, maybe sent %v), want a transient failure that sent nothing", err, e.Class, e.MaybeSent)
	}
	if d := Decide(err); d.Action != outcome.Retry || d.Reason != "graph_transient" {
		t.Errorf("Decide = %+v, want retry graph_transient", d)
	}
}

// TestMaybeSent pins the rule on the recorded facts of one request.
func TestMaybeSent(t *testing.T) {
	t.Parallel()
	shot := func(attempted, getConn, gotConn, wroteOK, wroteErr bool) *oneShot {
		s := &oneShot{}
		s.attempted.Store(attempted)
		s.getConn.Store(getConn)
		s.gotConn.Store(gotConn)
		s.wroteOK.Store(wroteOK)
		s.wroteErr.Store(wroteErr)
		return s
	}
	none := shot(false, false, false, false, false)
	written := shot(true, true, true, true, false)
	answer := func(status int, class Class) *Error { return &Error{Status: status, Class: class} }
	tests := []struct {
		name       string
		err        *Error
		lastStatus int
		shot       *oneShot
		want       bool
	}{
		{"202 then a failure", answer(0, ClassTransient), 202, written, true},
		{"429 with Retry-After", answer(429, ClassRetryAfter), 429, written, false},
		{"429 without Retry-After", answer(429, ClassTransient), 429, written, false},
		{"503 with Retry-After", answer(503, ClassRetryAfter), 503, written, false},
		{"503 without Retry-After", answer(503, ClassTransient), 503, written, true},
		{"504 with Retry-After", answer(504, ClassRetryAfter), 504, written, true},
		{"500", answer(500, ClassTransient), 500, written, true},
		{"501", answer(501, ClassTransient), 501, written, true},
		{"400", answer(400, ClassPermanent), 400, written, false},
		{"403", answer(403, ClassPermission), 403, written, false},
		{"408", answer(408, ClassTransient), 408, written, false},
		{"no token, never attempted", answer(0, ClassPermission), 0, none, false},
		{"written whole, no answer", answer(0, ClassTransient), 0, written, true},
		{"dial failed", answer(0, ClassTransient), 0, shot(true, true, false, false, false), false},
		{"write failed", answer(0, ClassTransient), 0, shot(true, true, true, false, true), false},
		{"write failed, then a resend written whole", answer(0, ClassTransient), 0, shot(true, true, true, true, true), true},
		{"connected, write outcome unknown", answer(0, ClassTransient), 0, shot(true, true, true, false, false), true},
		{"a transport without tracing", answer(0, ClassTransient), 0, shot(true, false, false, false, false), true},
	}
	for _, tt := range tests {
		if got := maybeSent(tt.err, tt.lastStatus, tt.shot); got != tt.want {
			t.Errorf("%s: maybeSent = %v, want %v", tt.name, got, tt.want)
		}
	}
}
