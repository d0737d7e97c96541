package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/mail"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// maxOutgoingBytes bounds the subject, body and headers of one outgoing
// message. Graph refuses requests over 4 MB with 413 ("The maximum request
// length supported is 4MB.", O365/python-o365#472); JSON escaping makes the
// request larger than its text, so the text stays well below that.
const maxOutgoingBytes = 3 << 20

// maxAddressLength bounds one recipient address (RFC 5321: 64 octets of
// local part and 255 of domain).
const maxAddressLength = 320

// OutgoingMessage is a message SendMail sends from a mailbox.
type OutgoingMessage struct {
	// To are the recipients' bare SMTP addresses (a@b.example); at least one.
	To []string
	// Subject is the subject line; it must not contain line breaks.
	Subject string
	// Text is the plain-text body, used when HTML is empty.
	Text string
	// HTML is the HTML body; when non-empty it is sent instead of Text.
	HTML string
	// Headers become the message's internetMessageHeaders. Graph accepts
	// only custom headers: every name must start with "X-" or "x-"
	// (Graph answers others with 400 InvalidInternetMessageHeader,
	// terminal42/contao-notification_center#436). Values must not contain
	// line breaks.
	Headers map[string]string
	// SaveToSentItems keeps a copy in the mailbox's Sent Items folder.
	SaveToSentItems bool
}

// sendMailBuilder addresses POST /users/{mailbox}/sendMail.
func (c *Client) sendMailBuilder(mailbox string) *users.ItemSendMailRequestBuilder {
	return users.NewItemSendMailRequestBuilderInternal(map[string]string{keyUser: mailbox}, c.adapter)
}

// SendMail sends m from mailbox with POST /users/{mailbox}/sendMail
// (learn.microsoft.com/graph/api/user-sendmail), which answers 202 Accepted
// once Exchange has taken the message; delivery follows later, and an
// address Exchange cannot deliver to comes back as a non-delivery report
// in the mailbox, not as an error here.
//
// The application needs the Mail.Send application permission with admin
// consent; an Exchange application access policy should restrict it to
// the mailboxes it sends from. Without it Graph answers 403
// ErrorAccessDenied, which is a ClassPermission error whose message names
// Mail.Send. A message that fails the checks below, or that Graph refuses
// with 400 (ErrorInvalidRecipients for an address it cannot resolve), is
// ClassPermanent.
//
// The request goes out at most once: neither the SDK's retry handler nor
// this client's transports resend it, since Exchange may have taken a
// message whose answer went missing. A 429, or a 503 with Retry-After,
// means Graph took nothing; it is ClassRetryAfter (or ClassTransient
// without Retry-After) and the caller may try again later. A failure after
// which the message may have gone out (no answer once the request was
// written whole, a 504, or another 5xx but 503 with Retry-After) sets
// Error.MaybeSent, and Decide then ends the work instead of sending twice.
// A failure before the request left (no connection, no token) is
// ClassTransient or ClassPermission as for every call. net/http itself
// resends only a request the server provably did not process (nothing
// written, an HTTP/2 stream refused or above a GOAWAY's last stream).
// The call counts against the mailbox's request limits like the others.
//
// m is checked before anything is sent: at least one valid recipient, a
// subject or a body, no line breaks in the subject or in header values,
// header names starting with "X-", and at most 3 MB of text.
func (c *Client) SendMail(ctx context.Context, mailbox string, m OutgoingMessage) error {
	op := "send mail from " + mailbox
	if err := checkSegment("mailbox", mailbox); err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	body, err := m.requestBody()
	if err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	st := &callState{mailbox: mailbox}
	shot := &oneShot{}
	err = c.sendMailBuilder(mailbox).Post(withOneShot(withCall(ctx, st), shot), body, nil)
	if err == nil {
		return nil
	}
	werr := c.wrap(op, mailbox, st, err)
	var e *Error
	if errors.As(werr, &e) {
		status, _, _ := st.last()
		e.MaybeSent = maybeSent(e, status, shot)
	}
	return werr
}

// maybeSent tells whether a failed sendMail may have been taken by
// Exchange: lastStatus is the status of the response the transport saw,
// if any, and shot what became of the request on the wire.
func maybeSent(e *Error, lastStatus int, shot *oneShot) bool {
	switch {
	case lastStatus >= 200 && lastStatus < 300:
		// Graph accepted the message; what failed came after.
		return true
	case e.Status == http.StatusServiceUnavailable:
		// With Retry-After Graph turned the request away unprocessed.
		return e.Class != ClassRetryAfter
	case e.Status >= 500:
		// A 504 or another server error: the backend may have finished
		// the work after the front end gave up.
		return true
	case e.Status != 0:
		return false
	}
	return shot.mayHaveArrived()
}

// oneShot travels in the context of a request that must reach the server
// at most once. newHTTPClient's retry policy never resends it, and
// oneShotTransport records how far it got on the wire, so that a failure
// without an answer can be told apart: not sent, or maybe sent. The flags
// are set from net/http's goroutines, hence atomic.
type oneShot struct {
	attempted atomic.Bool // the request reached the parent transport
	getConn   atomic.Bool // net/http looked for a connection (tracing works)
	gotConn   atomic.Bool // a connection was obtained
	wroteOK   atomic.Bool // the request was written whole
	wroteErr  atomic.Bool // writing the request failed
}

type oneShotKey struct{}

func withOneShot(ctx context.Context, s *oneShot) context.Context {
	return context.WithValue(ctx, oneShotKey{}, s)
}

func oneShotFrom(ctx context.Context) *oneShot {
	s, _ := ctx.Value(oneShotKey{}).(*oneShot)
	return s
}

// mayHaveArrived reports whether a request that got no answer may have
// reached the server whole. It answers no only when it knows: the request
// never got to the transport, never got a connection, or its write
// failed. A transport that reports nothing through net/http/httptrace
// leaves it unknown, which counts as maybe.
func (s *oneShot) mayHaveArrived() bool {
	switch {
	case !s.attempted.Load():
		return false
	case s.wroteOK.Load():
		return true
	case !s.getConn.Load():
		return true
	case !s.gotConn.Load():
		return false
	case s.wroteErr.Load():
		return false
	}
	return true
}

// oneShotTransport sits right above the parent transport and follows a
// one-shot request through net/http/httptrace. It sees only the Graph
// request itself: the credential fetches tokens through its own client.
type oneShotTransport struct {
	next http.RoundTripper
}

func (t *oneShotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := oneShotFrom(req.Context())
	if s == nil {
		return t.next.RoundTrip(req)
	}
	s.attempted.Store(true)
	trace := &httptrace.ClientTrace{
		GetConn: func(string) { s.getConn.Store(true) },
		GotConn: func(httptrace.GotConnInfo) { s.gotConn.Store(true) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				s.wroteOK.Store(true)
			} else {
				s.wroteErr.Store(true)
			}
		},
	}
	return t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
}

// requestBody checks the message and builds the sendMail request body.
func (m OutgoingMessage) requestBody() (*users.ItemSendMailPostRequestBody, error) {
	if len(m.To) == 0 {
		return nil, errors.New("the message has no recipient")
	}
	size := len(m.Subject) + len(m.Text) + len(m.HTML)
	recipients := make([]models.Recipientable, 0, len(m.To))
	for _, addr := range m.To {
		if !validAddress(addr) {
			return nil, fmt.Errorf("recipient %q is not a bare email address", clip.String(addr, 100))
		}
		size += len(addr)
		ea := models.NewEmailAddress()
		ea.SetAddress(ptr(addr))
		r := models.NewRecipient()
		r.SetEmailAddress(ea)
		recipients = append(recipients, r)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("the subject contains a line break")
	}
	content, contentType := m.Text, models.TEXT_BODYTYPE
	if m.HTML != "" {
		content, contentType = m.HTML, models.HTML_BODYTYPE
	}
	if m.Subject == "" && content == "" {
		return nil, errors.New("the message has neither a subject nor a body")
	}
	names := make([]string, 0, len(m.Headers))
	for name, value := range m.Headers {
		if len(name) < 3 || !strings.EqualFold(name[:2], "x-") || !validHeaderName(name) {
			return nil, fmt.Errorf("header name %q is not a custom header name starting with X-", clip.String(name, 100))
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("header %s contains a line break", name)
		}
		size += len(name) + len(value)
		names = append(names, name)
	}
	if size > maxOutgoingBytes {
		return nil, fmt.Errorf("the message has %d bytes of text, more than the %d Graph can take in one request", size, maxOutgoingBytes)
	}
	// The map's order is random; a sorted order keeps requests repeatable.
	slices.Sort(names)
	headers := make([]models.InternetMessageHeaderable, 0, len(names))
	for _, name := range names {
		h := models.NewInternetMessageHeader()
		h.SetName(ptr(name))
		h.SetValue(ptr(m.Headers[name]))
		headers = append(headers, h)
	}

	itemBody := models.NewItemBody()
	itemBody.SetContentType(&contentType)
	itemBody.SetContent(ptr(content))
	msg := models.NewMessage()
	msg.SetSubject(ptr(m.Subject))
	msg.SetBody(itemBody)
	msg.SetToRecipients(recipients)
	if len(headers) > 0 {
		msg.SetInternetMessageHeaders(headers)
	}
	body := users.NewItemSendMailPostRequestBody()
	body.SetMessage(msg)
	// Graph's default is true; the documentation asks to send the
	// parameter only when it is false.
	if !m.SaveToSentItems {
		body.SetSaveToSentItems(ptr(false))
	}
	return body, nil
}

// validAddress accepts a bare RFC 5322 addr-spec such as a@b.example: no
// display name, no angle brackets, no comments.
func validAddress(a string) bool {
	if a == "" || len(a) > maxAddressLength {
		return false
	}
	p, err := mail.ParseAddress(a)
	return err == nil && p.Name == "" && p.Address == a && strings.Contains(a, "@")
}

// validHeaderName accepts RFC 5322 field names: printable ASCII but ':'.
func validHeaderName(n string) bool {
	if len(n) > 200 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return n != ""
}
