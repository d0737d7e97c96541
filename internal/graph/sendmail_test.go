package graph

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

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
	// Sent uncompressed, so that a retry resends a readable body (see
	// TestSendMailRetriedAfter503SendsOnce).
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
			name: "503 without Retry-After",
			prepare: func(t *testing.T, b *bundle) {
				b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusServiceUnavailable})
			},
			action: outcome.Retry, reason: "graph_transient",
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

// TestSendMailRetriedAfter503SendsOnce: the SDK retries a 503 that Graph
// answered before accepting anything; exactly one message goes out. With
// the SDK's request compression the retry carried "Content-Encoding: gzip"
// over an uncompressed body and ended in 400 (microsoft/kiota-http-go#183).
func TestSendMailRetriedAfter503SendsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{}, func(c *Config) { c.MaxRetries = 1 })
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	if err := b.client.SendMail(context.Background(), testMailbox, ack()); err != nil {
		t.Fatalf("the SDK should have retried the 503: %v", err)
	}
	if n := len(sendMailRequests(t, b.sim)); n != 2 {
		t.Errorf("%d sendMail requests, want the 503 and its retry", n)
	}
	if n := len(b.sim.SentMessages()); n != 1 {
		t.Errorf("%d messages went out, want 1", n)
	}
}
