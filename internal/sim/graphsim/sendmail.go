package graphsim

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// POST /users/{id | userPrincipalName}/sendMail, as documented at
// learn.microsoft.com/graph/api/user-sendmail: the JSON body holds
// "message" (a message resource: subject, body {contentType, content},
// toRecipients, ccRecipients, bccRecipients, internetMessageHeaders) and an
// optional "saveToSentItems" (default true). Names are matched without
// regard to case: msgraph-sdk-go sends "Message" and "SaveToSentItems". Success is 202 Accepted with
// no body; the application permission is Mail.Send. Graph then saves the
// message in Sent Items (learn.microsoft.com/graph/outlook-things-to-know-
// about-send-mail, step 4); the simulator stores that copy before it
// answers. Sending MIME content (Content-Type text/plain, base64) is not
// simulated.

// sentLimit caps the messages SentMessages and /sim/sent.json keep; the
// oldest are forgotten first.
const sentLimit = 1000

// maxAddressLength bounds one recipient address (RFC 5321: 64 octets of
// local part, 255 of domain).
const maxAddressLength = 320

// SentMessage is one message the simulator accepted on sendMail.
type SentMessage struct {
	// ID identifies the submission in the simulator.
	ID string `json:"id"`
	// Mailbox is the UPN of the mailbox the message was sent from.
	Mailbox string `json:"mailbox"`
	// From is the sender's address: the mailbox itself.
	From string `json:"from"`
	// To, Cc and Bcc are the recipients' addresses as sent.
	To  []string `json:"to"`
	Cc  []string `json:"cc"`
	Bcc []string `json:"bcc"`
	// Subject is the subject as sent.
	Subject string `json:"subject"`
	// ContentType is the body's type: "text" or "html".
	ContentType string `json:"contentType"`
	// Content is the body exactly as sent.
	Content string `json:"content"`
	// Headers are the custom internet message headers, in request order.
	Headers []MessageHeader `json:"headers"`
	// InternetMessageID is the Message-ID the simulator gave the message.
	InternetMessageID string `json:"internetMessageId"`
	// SentAt is the simulator's clock when the request was accepted.
	SentAt time.Time `json:"sentAt"`
	// SavedToSentItems tells whether a copy went to Sent Items.
	SavedToSentItems bool `json:"savedToSentItems"`
	// SentItemID is the immutable id of the Sent Items copy, if any.
	SentItemID string `json:"sentItemId,omitempty"`
}

// MessageHeader is one internet message header of a sent message.
type MessageHeader struct {
	// Name is the header name, starting with "x-" or "X-".
	Name string `json:"name"`
	// Value is the header value.
	Value string `json:"value"`
}

// SentMessages returns every message accepted on sendMail (up to the last
// 1,000), oldest first.
func (s *Server) SentMessages() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SentMessage, len(s.sent))
	for i, m := range s.sent {
		out[i] = m.clone()
	}
	return out
}

func (m SentMessage) clone() SentMessage {
	m.To = append([]string{}, m.To...)
	m.Cc = append([]string{}, m.Cc...)
	m.Bcc = append([]string{}, m.Bcc...)
	m.Headers = append([]MessageHeader{}, m.Headers...)
	return m
}

// serveSentJSON answers GET /sim/sent.json: the sent messages as a JSON
// list, newest last. It is a read-only view for people and tests and needs
// no token.
func (s *Server) serveSentJSON(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only view", http.StatusMethodNotAllowed)
		return
	}
	data, err := json.MarshalIndent(s.SentMessages(), "", "  ")
	if err != nil {
		http.Error(w, "encode sent messages", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(data, '\n'))
	}
}

// isSendMailSegment matches the action segment, also in its namespaced
// form microsoft.graph.sendMail that Graph accepts as well.
func isSendMailSegment(seg string) bool {
	return strings.EqualFold(seg, "sendMail") || strings.EqualFold(seg, "microsoft.graph.sendMail")
}

// outgoing is a parsed, valid sendMail request.
type outgoing struct {
	subject     string
	contentType string
	content     string
	to, cc, bcc []emailAddress
	headers     []MessageHeader
	save        bool
}

// apiFailure is an error answer in Graph's shape.
type apiFailure struct {
	status        int
	code, message string
}

func badRequest(code, message string) *apiFailure {
	return &apiFailure{status: http.StatusBadRequest, code: code, message: message}
}

// unreadablePayload is Graph's answer to a body that is not JSON
// (microsoftgraph/nodejs-connect-rest-sample#53).
var unreadablePayload = badRequest("BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")

// conversionFailure is the OData answer to a value of the wrong type, for
// example {"code":"RequestBodyRead","message":"Cannot convert the literal
// '0' to the expected type 'Edm.String'."} (motze92/office365-mail#28).
func conversionFailure(raw json.RawMessage, typ string) *apiFailure {
	return badRequest("RequestBodyRead", "Cannot convert the literal '"+clip.String(string(raw), 60)+"' to the expected type '"+typ+"'.")
}

// jsonString reads a JSON string; null is the empty string.
func jsonString(raw json.RawMessage, typ string) (string, *apiFailure) {
	if isNull(raw) {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", conversionFailure(raw, typ)
	}
	return v, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// jsonObject reads a JSON object with its property names lower-cased.
// OData annotations ("@odata.type", which the SDK writes) are dropped.
func jsonObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil || in == nil {
		return nil, false
	}
	out := make(map[string]json.RawMessage, len(in))
	for k, v := range in {
		if strings.HasPrefix(k, "@") {
			continue
		}
		out[strings.ToLower(k)] = v
	}
	return out, true
}

// parseSendMail reads and validates a sendMail body the way Graph does.
func parseSendMail(body []byte) (*outgoing, *apiFailure) {
	top, ok := jsonObject(body)
	if !ok {
		return nil, unreadablePayload
	}
	out := &outgoing{save: true, contentType: "text"}
	for k, v := range top {
		switch k {
		case "message":
		case "savetosentitems":
			// The documentation's own example sends the string "false".
			save, fail := parseBool(v)
			if fail != nil {
				return nil, fail
			}
			out.save = save
		default:
			return nil, badRequest("BadRequest", "The parameter '"+k+"' in the request payload is not a valid parameter for the operation 'sendMail'.")
		}
	}
	// An absent or empty message (learn.microsoft.com/answers/questions/1202189).
	emptyMessage := badRequest("ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
	raw, present := top["message"]
	if !present || isNull(raw) {
		return nil, emptyMessage
	}
	msg, ok := jsonObject(raw)
	if !ok {
		return nil, conversionFailure(raw, "microsoft.graph.message")
	}
	if len(msg) == 0 {
		return nil, emptyMessage
	}
	for k, v := range msg {
		var fail *apiFailure
		switch k {
		case "subject":
			out.subject, fail = jsonString(v, "Edm.String")
		case "body":
			fail = out.parseBody(v)
		case "torecipients":
			out.to, fail = parseRecipients(v)
		case "ccrecipients":
			out.cc, fail = parseRecipients(v)
		case "bccrecipients":
			out.bcc, fail = parseRecipients(v)
		case "internetmessageheaders":
			out.headers, fail = parseHeaders(v)
		default:
			fail = badRequest("BadRequest", "The property '"+k+"' of a message is not simulated on sendMail.")
		}
		if fail != nil {
			return nil, fail
		}
	}
	if fail := out.validate(); fail != nil {
		return nil, fail
	}
	return out, nil
}

func parseBool(raw json.RawMessage) (bool, *apiFailure) {
	if isNull(raw) {
		return true, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, conversionFailure(raw, "Edm.Boolean")
}

// parseBody reads an itemBody; contentType is "text" or "html" in any case
// (the documentation's examples send "Text" and "HTML") and text when
// absent.
func (o *outgoing) parseBody(raw json.RawMessage) *apiFailure {
	if isNull(raw) {
		return nil
	}
	body, ok := jsonObject(raw)
	if !ok {
		return conversionFailure(raw, "microsoft.graph.itemBody")
	}
	for k, v := range body {
		switch k {
		case "contenttype":
			ct, fail := jsonString(v, "microsoft.graph.bodyType")
			if fail != nil {
				return fail
			}
			switch strings.ToLower(ct) {
			case "", "text":
				o.contentType = "text"
			case "html":
				o.contentType = "html"
			default:
				return conversionFailure(v, "microsoft.graph.bodyType")
			}
		case "content":
			c, fail := jsonString(v, "Edm.String")
			if fail != nil {
				return fail
			}
			o.content = c
		default:
			return badRequest("BadRequest", "The property '"+k+"' does not exist on type 'microsoft.graph.itemBody'.")
		}
	}
	return nil
}

// parseRecipients reads [{"emailAddress":{"address":…,"name":…}}]. Whether
// each address is valid is decided in validate.
func parseRecipients(raw json.RawMessage) ([]emailAddress, *apiFailure) {
	if isNull(raw) {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, conversionFailure(raw, "Collection(microsoft.graph.recipient)")
	}
	out := make([]emailAddress, 0, len(list))
	for _, item := range list {
		r, ok := jsonObject(item)
		if !ok {
			return nil, conversionFailure(item, "microsoft.graph.recipient")
		}
		var a emailAddress
		if ea, present := r["emailaddress"]; present && !isNull(ea) {
			fields, ok := jsonObject(ea)
			if !ok {
				return nil, conversionFailure(ea, "microsoft.graph.emailAddress")
			}
			var fail *apiFailure
			if a.Address, fail = jsonString(fields["address"], "Edm.String"); fail != nil {
				return nil, fail
			}
			if a.Name, fail = jsonString(fields["name"], "Edm.String"); fail != nil {
				return nil, fail
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func parseHeaders(raw json.RawMessage) ([]MessageHeader, *apiFailure) {
	if isNull(raw) {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, conversionFailure(raw, "Collection(microsoft.graph.internetMessageHeader)")
	}
	out := make([]MessageHeader, 0, len(list))
	for _, item := range list {
		h, ok := jsonObject(item)
		if !ok {
			return nil, conversionFailure(item, "microsoft.graph.internetMessageHeader")
		}
		var mh MessageHeader
		var fail *apiFailure
		if mh.Name, fail = jsonString(h["name"], "Edm.String"); fail != nil {
			return nil, fail
		}
		if mh.Value, fail = jsonString(h["value"], "Edm.String"); fail != nil {
			return nil, fail
		}
		out = append(out, mh)
	}
	return out, nil
}

// validate applies Graph's rules on recipients and custom headers.
func (o *outgoing) validate() *apiFailure {
	all := make([]emailAddress, 0, len(o.to)+len(o.cc)+len(o.bcc))
	all = append(append(append(all, o.to...), o.cc...), o.bcc...)
	if len(all) == 0 {
		// msgraph-sdk-dotnet#1891, SMTP2Graph/SMTP2Graph#30.
		return badRequest("ErrorInvalidRecipients", "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
	}
	for _, a := range all {
		if !validAddress(a.Address) {
			// microsoftgraph/ruby-connect-rest-sample#15.
			return badRequest("ErrorInvalidRecipients", "At least one recipient isn't valid., Recipient \""+clip.String(a.Address, 100)+"\" isn't resolved. All recipients must be resolved before a message can be submitted.")
		}
	}
	for _, h := range o.headers {
		if len(h.Name) < 3 || !strings.EqualFold(h.Name[:2], "x-") {
			// terminal42/contao-notification_center#436.
			return badRequest("InvalidInternetMessageHeader", "The internet message header name '"+clip.String(h.Name, 100)+"' should start with 'x-' or 'X-'.")
		}
		if !validHeaderName(h.Name) || strings.ContainsAny(h.Value, "\r\n\x00") {
			// The simulator's own wording: Graph's documentation does not
			// say how it answers malformed names or values.
			return badRequest("InvalidInternetMessageHeader", "The internet message header '"+clip.String(h.Name, 100)+"' has an invalid name or value.")
		}
	}
	if o.subject == "" && o.content == "" {
		// Not a documented Graph rule: the simulator refuses a message
		// with neither subject nor body so that a client sending an empty
		// message is caught in tests.
		return badRequest("ErrorInvalidRequest", "The message has neither a subject nor a body.")
	}
	return nil
}

// validAddress accepts a bare RFC 5322 addr-spec such as a@b.example.
func validAddress(a string) bool {
	if a == "" || len(a) > maxAddressLength {
		return false
	}
	p, err := mail.ParseAddress(a)
	return err == nil && p.Name == "" && p.Address == a && strings.Contains(a, "@")
}

// validHeaderName accepts RFC 5322 field names: printable ASCII but ':'.
func validHeaderName(n string) bool {
	if n == "" || len(n) > 200 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// sendMail answers an authorized POST /users/{id}/sendMail.
func (s *Server) sendMail(w http.ResponseWriter, r *http.Request, mb *mailbox, body []byte) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "text/plain" {
		writeError(w, http.StatusBadRequest, "BadRequest", "Sending MIME content is not simulated; send the message as JSON.")
		return
	}
	out, fail := parseSendMail(body)
	if fail != nil {
		writeError(w, fail.status, fail.code, fail.message)
		return
	}
	now := s.now().Truncate(time.Second)
	msgID := "<" + strings.ReplaceAll(newGUID(), "-", "") + "@graphsim.local>"
	var raw []byte
	var view *mimeView
	if out.save {
		raw = composeMIME(mb, out, now, msgID)
		v, err := parseMIME(raw)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "InternalServerError", "The simulator could not store the message: "+err.Error())
			return
		}
		view = v
	}
	sent := SentMessage{
		ID: newOpaque(), Mailbox: mb.upn, From: mb.upn,
		To: addressesOf(out.to), Cc: addressesOf(out.cc), Bcc: addressesOf(out.bcc),
		Subject: out.subject, ContentType: out.contentType, Content: out.content,
		Headers: append([]MessageHeader{}, out.headers...), InternetMessageID: msgID,
		SentAt: now, SavedToSentItems: out.save,
	}
	var notes []pendingNote
	s.mu.Lock()
	if out.save {
		f := mb.folderByIDOrWellKnown("sentitems")
		if f == nil {
			s.mu.Unlock()
			writeError(w, http.StatusInternalServerError, "InternalServerError", "The mailbox has no Sent Items folder.")
			return
		}
		m, n := s.storeLocked(mb, f, raw, view, now)
		m.isRead = true
		sent.SentItemID = m.immutableID
		notes = n
	}
	if len(s.sent) >= sentLimit {
		k := copy(s.sent, s.sent[len(s.sent)-sentLimit+1:])
		clear(s.sent[k:])
		s.sent = s.sent[:k]
	}
	s.sent = append(s.sent, sent)
	s.mu.Unlock()
	s.dispatch(notes)
	w.WriteHeader(http.StatusAccepted)
}

func addressesOf(list []emailAddress) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// composeMIME renders the Sent Items copy of a sent message, from which
// the simulator derives its Graph view like any other stored message.
func composeMIME(mb *mailbox, o *outgoing, date time.Time, msgID string) []byte {
	var b bytes.Buffer
	field := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	list := func(name string, addrs []emailAddress) {
		if len(addrs) == 0 {
			return
		}
		parts := make([]string, len(addrs))
		for i, a := range addrs {
			parts[i] = (&mail.Address{Name: a.Name, Address: a.Address}).String()
		}
		field(name, strings.Join(parts, ",\r\n "))
	}
	field("From", (&mail.Address{Name: mb.displayName, Address: mb.upn}).String())
	list("To", o.to)
	list("Cc", o.cc)
	list("Bcc", o.bcc)
	field("Subject", encodeWords(o.subject))
	field("Date", date.Format(time.RFC1123Z))
	field("Message-ID", msgID)
	for _, h := range o.headers {
		field(h.Name, encodeWords(h.Value))
	}
	field("MIME-Version", "1.0")
	field("Content-Type", "text/"+map[string]string{"text": "plain", "html": "html"}[o.contentType]+"; charset=utf-8")
	field("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(o.content))
	_ = qp.Close()
	return b.Bytes()
}

// encodeWords encodes a header value as RFC 2047 words when it is not
// plain ASCII, folding between the words.
func encodeWords(v string) string {
	return strings.ReplaceAll(mime.QEncoding.Encode("utf-8", v), "?= =?", "?=\r\n =?")
}
