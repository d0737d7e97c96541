package graph

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

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
// ClassPermanent; throttling and outages classify as for every call.
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
	// The body goes uncompressed, as every body of this client (see
	// newHTTPClient): a retry then resends the same bytes.
	err = c.sendMailBuilder(mailbox).Post(withCall(ctx, st), body, nil)
	if err == nil {
		return nil
	}
	return c.wrap(op, mailbox, st, err)
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
