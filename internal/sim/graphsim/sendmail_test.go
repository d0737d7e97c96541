package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sendPath = "/v1.0/users/phish@contoso.com/sendMail"

// ackBody is a valid sendMail body; mutate edits a copy of its message.
func ackBody(mutate func(msg map[string]any)) map[string]any {
	msg := map[string]any{
		"@odata.type": "#microsoft.graph.message",
		"subject":     "We received your report (239643)",
		"body":        map[string]any{"contentType": "html", "content": "<p>Thank you &amp; well done.</p>"},
		"toRecipients": []any{
			map[string]any{"emailAddress": map[string]any{"address": "adelev@contoso.com", "name": "Adele Vance"}},
		},
		"internetMessageHeaders": []any{
			map[string]any{"name": "X-Mail2Archer-Report", "value": "AAkALgAAA"},
		},
	}
	if mutate != nil {
		mutate(msg)
	}
	return map[string]any{"message": msg}
}

func TestSendMailAcceptsAndStores(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	r := b.do(t, "POST", sendPath, ackBody(nil))
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("sendMail: %d %q, want 202 with no body", r.status, r.body)
	}
	sent := b.sim.SentMessages()
	if len(sent) != 1 {
		t.Fatalf("sent = %d messages", len(sent))
	}
	m := sent[0]
	if m.Mailbox != "phish@contoso.com" || m.From != "phish@contoso.com" || len(m.To) != 1 || m.To[0] != "adelev@contoso.com" ||
		m.Subject != "We received your report (239643)" || m.ContentType != "html" || m.Content != "<p>Thank you &amp; well done.</p>" ||
		len(m.Headers) != 1 || m.Headers[0] != (MessageHeader{"X-Mail2Archer-Report", "AAkALgAAA"}) ||
		!m.SentAt.Equal(b.sim.Now().Truncate(time.Second)) || !m.SavedToSentItems || m.SentItemID == "" || m.InternetMessageID == "" {
		t.Errorf("sent message = %+v", m)
	}

	// The Sent Items copy reads back through Graph like any message.
	stored, err := b.sim.Message("phish@contoso.com", m.SentItemID)
	if err != nil {
		t.Fatal(err)
	}
	sentItems, _ := b.sim.FolderID("phish@contoso.com", "sentitems")
	if stored.FolderID != sentItems {
		t.Errorf("copy is in folder %s, want Sent Items %s", stored.FolderID, sentItems)
	}
	g := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+m.SentItemID+"?$select=subject,body,from,toRecipients,isRead,internetMessageId,internetMessageHeaders", nil)
	if g.status != http.StatusOK {
		t.Fatalf("get copy: %d %s", g.status, g.body)
	}
	var view struct {
		Subject string `json:"subject"`
		Body    struct {
			ContentType string `json:"contentType"`
			Content     string `json:"content"`
		} `json:"body"`
		From struct {
			EmailAddress emailAddress `json:"emailAddress"`
		} `json:"from"`
		To []struct {
			EmailAddress emailAddress `json:"emailAddress"`
		} `json:"toRecipients"`
		IsRead            bool          `json:"isRead"`
		InternetMessageID string        `json:"internetMessageId"`
		Headers           []headerField `json:"internetMessageHeaders"`
	}
	if err := json.Unmarshal(g.body, &view); err != nil {
		t.Fatal(err)
	}
	if view.Subject != m.Subject || view.Body.ContentType != "html" || !strings.Contains(view.Body.Content, m.Content) ||
		view.From.EmailAddress.Address != "phish@contoso.com" || len(view.To) != 1 || view.To[0].EmailAddress != (emailAddress{"Adele Vance", "adelev@contoso.com"}) ||
		!view.IsRead || view.InternetMessageID != m.InternetMessageID {
		t.Errorf("copy reads as %+v", view)
	}
	found := false
	for _, h := range view.Headers {
		found = found || (h.Name == "X-Mail2Archer-Report" && h.Value == "AAkALgAAA")
	}
	if !found {
		t.Errorf("custom header missing from %+v", view.Headers)
	}
}

func TestSendMailValidation(t *testing.T) {
	t.Parallel()
	recipients := func(addrs ...string) []any {
		out := []any{}
		for _, a := range addrs {
			out = append(out, map[string]any{"emailAddress": map[string]any{"address": a}})
		}
		return out
	}
	tests := []struct {
		name string
		body any
		code string
	}{
		{"not JSON", "{", "BadRequest"},
		{"no message", map[string]any{"saveToSentItems": false}, "ErrorInvalidParameter"},
		{"null message", map[string]any{"message": nil}, "ErrorInvalidParameter"},
		{"empty message", map[string]any{"message": map[string]any{"@odata.type": "#microsoft.graph.message"}}, "ErrorInvalidParameter"},
		{"unknown parameter", map[string]any{"message": ackBody(nil)["message"], "sendNow": true}, "BadRequest"},
		{"no recipients", ackBody(func(m map[string]any) { delete(m, "toRecipients") }), "ErrorInvalidRecipients"},
		{"empty recipient list", ackBody(func(m map[string]any) { m["toRecipients"] = []any{} }), "ErrorInvalidRecipients"},
		{"recipient without address", ackBody(func(m map[string]any) { m["toRecipients"] = []any{map[string]any{}} }), "ErrorInvalidRecipients"},
		{"unresolvable recipient", ackBody(func(m map[string]any) { m["toRecipients"] = recipients("bad") }), "ErrorInvalidRecipients"},
		{"display name in address", ackBody(func(m map[string]any) { m["toRecipients"] = recipients("Adele <adelev@contoso.com>") }), "ErrorInvalidRecipients"},
		{"one bad cc among good", ackBody(func(m map[string]any) { m["ccRecipients"] = recipients("ok@contoso.com", "a b@contoso.com") }), "ErrorInvalidRecipients"},
		{"recipients not a list", ackBody(func(m map[string]any) { m["toRecipients"] = "adelev@contoso.com" }), "RequestBodyRead"},
		{"unknown content type", ackBody(func(m map[string]any) { m["body"] = map[string]any{"contentType": "markdown", "content": "x"} }), "RequestBodyRead"},
		{"subject not a string", ackBody(func(m map[string]any) { m["subject"] = 7 }), "RequestBodyRead"},
		{"header without x- prefix", ackBody(func(m map[string]any) {
			m["internetMessageHeaders"] = []any{map[string]any{"name": "Auto-Submitted", "value": "auto-replied"}}
		}), "InvalidInternetMessageHeader"},
		{"header value with a line break", ackBody(func(m map[string]any) {
			m["internetMessageHeaders"] = []any{map[string]any{"name": "X-Ref", "value": "1\r\nBcc: victim@example.com"}}
		}), "InvalidInternetMessageHeader"},
		{"neither subject nor body", ackBody(func(m map[string]any) { delete(m, "subject"); delete(m, "body") }), "ErrorInvalidRequest"},
		{"saveToSentItems not a boolean", map[string]any{"message": ackBody(nil)["message"], "saveToSentItems": "maybe"}, "RequestBodyRead"},
		{"unsimulated message property", ackBody(func(m map[string]any) { m["attachments"] = []any{} }), "BadRequest"},
	}
	b := setup(t, Options{})
	for _, tt := range tests {
		r := b.do(t, "POST", sendPath, tt.body)
		if r.status != http.StatusBadRequest || r.errorCode(t) != tt.code {
			t.Errorf("%s: %d %s, want 400 %s", tt.name, r.status, r.body, tt.code)
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: error content type %q", tt.name, r.header.Get("Content-Type"))
		}
	}
	if n := len(b.sim.SentMessages()); n != 0 {
		t.Errorf("%d refused messages were stored", n)
	}
	if r := b.do(t, "POST", sendPath, "TUlNRQ==", "Content-Type", "", "Content-Type", "text/plain"); r.status != http.StatusBadRequest {
		t.Errorf("MIME body: %d %s", r.status, r.body)
	}
	if r := b.do(t, "GET", sendPath, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET sendMail: %d", r.status)
	}
}

func TestSendMailAcceptsGraphsOwnSpellings(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	// The documentation's example: "Text" and the string "false".
	body := map[string]any{"message": ackBody(func(m map[string]any) {
		m["body"] = map[string]any{"contentType": "Text", "content": "The new cafeteria is open."}
		m["ccRecipients"] = []any{map[string]any{"emailAddress": map[string]any{"address": "danas@contoso.com"}}}
	})["message"], "saveToSentItems": "false"}
	if r := b.do(t, "POST", "/v1.0/users/phish@contoso.com/microsoft.graph.sendMail", body); r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := b.do(t, "POST", sendPath, map[string]any{"message": ackBody(nil)["message"], "saveToSentItems": false}); r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	sent := b.sim.SentMessages()
	if len(sent) != 2 || sent[0].ContentType != "text" || len(sent[0].Cc) != 1 || sent[0].SavedToSentItems || sent[0].SentItemID != "" || sent[1].SavedToSentItems {
		t.Errorf("sent = %+v", sent)
	}
	sentItems, _ := b.sim.FolderID("phish@contoso.com", "sentitems")
	r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders/"+sentItems, nil)
	if total := r.json(t)["totalItemCount"]; total != float64(0) {
		t.Errorf("Sent Items holds %v messages after saveToSentItems false", total)
	}
}

func TestSendMailPermission(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		access Access
		send   int
		read   int
	}{
		{AccessReadWrite, http.StatusAccepted, http.StatusOK},
		{AccessRead, http.StatusAccepted, http.StatusOK},
		{AccessReadWrite | AccessNoSend, http.StatusForbidden, http.StatusOK},
		{AccessRead | AccessNoSend, http.StatusForbidden, http.StatusOK},
		{AccessNone, http.StatusForbidden, http.StatusForbidden},
	}
	for _, tt := range tests {
		if err := b.sim.SetAccess("phish@contoso.com", tt.access); err != nil {
			t.Fatal(err)
		}
		r := b.do(t, "POST", sendPath, ackBody(nil))
		if r.status != tt.send || (tt.send == http.StatusForbidden && r.errorCode(t) != "ErrorAccessDenied") {
			t.Errorf("access %d: sendMail %d %s, want %d", tt.access, r.status, r.body, tt.send)
		}
		if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+id, nil); r.status != tt.read {
			t.Errorf("access %d: read %d, want %d", tt.access, r.status, tt.read)
		}
	}
	// Mail.Send alone grants no write-back.
	_ = b.sim.SetAccess("phish@contoso.com", AccessRead)
	if r := b.do(t, "PATCH", "/v1.0/users/phish@contoso.com/messages/"+id, map[string]any{"categories": []string{"x"}}); r.status != http.StatusForbidden {
		t.Errorf("write-back with Mail.Read and Mail.Send: %d", r.status)
	}
	if n := len(b.sim.SentMessages()); n != 2 {
		t.Errorf("%d messages stored, want the 2 sent with Mail.Send", n)
	}
}

func TestSendMailFaultsAndThrottling(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Budget: 3, BudgetWindow: 10 * time.Minute})
	b.sim.SetFaults(Fault{Route: RouteSendMail, Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second, Times: 1})
	r := b.do(t, "POST", sendPath, ackBody(nil))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "5" || r.errorCode(t) != "TooManyRequests" {
		t.Fatalf("injected 429: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if n := len(b.sim.SentMessages()); n != 0 {
		t.Fatalf("a refused request stored %d messages", n)
	}
	// A fault on another route leaves sendMail alone.
	b.sim.SetFaults(Fault{Route: RouteGetMessage, Status: http.StatusServiceUnavailable})
	if r := b.do(t, "POST", sendPath, ackBody(nil)); r.status != http.StatusAccepted {
		t.Fatalf("after the fault: %d %s", r.status, r.body)
	}
	// The faulted request, the accepted one and this read used the
	// mailbox's budget of 3: sendMail counts like every other call.
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders", nil); r.status != http.StatusOK {
		t.Fatalf("read: %d", r.status)
	}
	r = b.do(t, "POST", sendPath, ackBody(nil))
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != "ApplicationThrottled" || r.header.Get("Retry-After") != "600" {
		t.Fatalf("over budget: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	b.sim.Advance(10 * time.Minute)
	if r := b.do(t, "POST", sendPath, ackBody(nil)); r.status != http.StatusAccepted {
		t.Fatalf("next window: %d %s", r.status, r.body)
	}
	if n := len(b.sim.SentMessages()); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

func TestSentJSONView(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	r := b.do(t, "GET", "/sim/sent.json", nil, "Authorization", "")
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "[]" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("empty view: %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	for _, subject := range []string{"first", "second <b>"} {
		body := ackBody(func(m map[string]any) { m["subject"] = subject })
		if r := b.do(t, "POST", sendPath, body); r.status != http.StatusAccepted {
			t.Fatalf("send %s: %d %s", subject, r.status, r.body)
		}
	}
	r = b.do(t, "GET", "/sim/sent.json", nil, "Authorization", "")
	var list []SentMessage
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if len(list) != 2 || list[0].Subject != "first" || list[1].Subject != "second <b>" || list[1].To[0] != "adelev@contoso.com" {
		t.Errorf("view = %+v, want both messages, newest last", list)
	}
	if r := b.do(t, "POST", "/sim/sent.json", "{}"); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST on the view: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	// SentMessages hands out copies.
	got := b.sim.SentMessages()
	got[0].To[0] = "changed@example.com"
	if b.sim.SentMessages()[0].To[0] != "adelev@contoso.com" {
		t.Error("SentMessages shares its slices with the simulator")
	}
}

func TestSentItemsCopyIsAnnouncedLikeAnyNewMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	b.subscribe(t, e, map[string]any{"resource": "users/phish@contoso.com/mailFolders('sentitems')/messages"})
	if r := b.do(t, "POST", sendPath, ackBody(nil)); r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	n := e.next(t)
	value, _ := n["value"].([]any)
	if len(value) != 1 {
		t.Fatalf("notification = %v", n)
	}
	item, _ := value[0].(map[string]any)
	data, _ := item["resourceData"].(map[string]any)
	// Without Prefer: IdType="ImmutableId" the notification carries the
	// REST id.
	m, err := b.sim.Message("phish@contoso.com", b.sim.SentMessages()[0].SentItemID)
	if err != nil {
		t.Fatal(err)
	}
	if item["changeType"] != "created" || data["id"] != m.ID {
		t.Errorf("notification %v does not announce the Sent Items copy %s", item, m.ID)
	}
}

func TestSentMessagesAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for i := range sentLimit + 2 {
		body := map[string]any{"message": ackBody(func(m map[string]any) { m["subject"] = "ack " + strconv.Itoa(i) })["message"], "saveToSentItems": false}
		if r := b.do(t, "POST", sendPath, body); r.status != http.StatusAccepted {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
	}
	sent := b.sim.SentMessages()
	if len(sent) != sentLimit || sent[0].Subject != "ack 2" || sent[len(sent)-1].Subject != "ack "+strconv.Itoa(sentLimit+1) {
		t.Errorf("kept %d messages from %q to %q, want the last %d", len(sent), sent[0].Subject, sent[len(sent)-1].Subject, sentLimit)
	}
}

// TestSendMailNeedsMailSendInTheToken: without Mail.Send in the token,
// sendMail gets the 403 Graph gives, while the mailbox stays readable and
// writable; a token issued by someone else (AnyBearer) carries the
// configured grant.
func TestSendMailNeedsMailSendInTheToken(t *testing.T) {
	t.Parallel()
	for _, anyBearer := range []bool{false, true} {
		b := setup(t, Options{AppRoles: []string{"Mail.Read", "Mail.ReadWrite"}, AnyBearer: anyBearer})
		if anyBearer {
			b.token = "issued-elsewhere"
		}
		id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
		if err != nil {
			t.Fatal(err)
		}
		r := b.do(t, "POST", sendPath, ackBody(nil))
		e, _ := r.json(t)["error"].(map[string]any)
		if r.status != http.StatusForbidden || e["code"] != "ErrorAccessDenied" || e["message"] != "Access is denied. Check credentials and try again." {
			t.Errorf("AnyBearer %v: sendMail without Mail.Send: %d %s", anyBearer, r.status, r.body)
		}
		if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+id, nil); r.status != http.StatusOK {
			t.Errorf("AnyBearer %v: read: %d", anyBearer, r.status)
		}
		if r := b.do(t, "PATCH", "/v1.0/users/phish@contoso.com/messages/"+id, map[string]any{"categories": []string{"x"}}); r.status != http.StatusOK {
			t.Errorf("AnyBearer %v: write-back: %d %s", anyBearer, r.status, r.body)
		}
		if n := len(b.sim.SentMessages()); n != 0 {
			t.Errorf("AnyBearer %v: %d messages went out without Mail.Send", anyBearer, n)
		}
	}
}

// TestResetFault: the simulator does the work, then breaks the connection
// instead of answering; the next request is answered as usual.
func TestResetFault(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.sim.SetFaults(Fault{Route: RouteSendMail, Reset: true, Status: http.StatusInternalServerError, Times: 1})
	data, _ := json.Marshal(ackBody(nil))
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, b.srv.URL+sendPath, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("the client got an answer: %d", resp.StatusCode)
	}
	if n := len(b.sim.SentMessages()); n != 1 {
		t.Errorf("the simulator took %d messages before the reset, want 1", n)
	}
	if r := b.do(t, "POST", sendPath, ackBody(nil)); r.status != http.StatusAccepted {
		t.Errorf("after the fault: %d %s", r.status, r.body)
	}
	// On the token endpoint the connection breaks at once.
	b.sim.SetFaults(Fault{Route: RouteToken, Reset: true})
	treq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, b.srv.URL+"/x/oauth2/v2.0/token", strings.NewReader("grant_type=client_credentials"))
	if resp, err := http.DefaultClient.Do(treq); err == nil {
		_ = resp.Body.Close()
		t.Errorf("the token endpoint answered %d through a reset", resp.StatusCode)
	}
}
