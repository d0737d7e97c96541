package graphsim

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// mimeView is everything Graph derives from a message's MIME.
type mimeView struct {
	subject           string
	from              *emailAddress
	sender            *emailAddress
	to, cc, bcc       []emailAddress
	replyTo           []emailAddress
	sent              time.Time
	internetMessageID string
	conversationKey   string
	text              string
	html              string
	headers           []headerField
	attachments       []attachmentView
	importance        string
}

type emailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type headerField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type attachmentView struct {
	item        bool // message/rfc822: an itemAttachment
	name        string
	contentType string
	content     []byte
	inline      bool
	contentID   string
}

// parseMIME derives the Graph view of a raw message. Malformed input gives
// an error, never a panic.
func parseMIME(raw []byte) (v *mimeView, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("parse MIME: %v", r)
		}
	}()
	headers, err := rawHeaders(raw)
	if err != nil {
		return nil, err
	}
	if len(headers) == 0 {
		return nil, fmt.Errorf("parse MIME: no header fields")
	}
	root, err := enmime.ReadParts(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse MIME: %w", err)
	}
	env, err := enmime.EnvelopeFromPart(root)
	if err != nil {
		return nil, fmt.Errorf("parse MIME: %w", err)
	}
	v = &mimeView{headers: headers, importance: "normal"}
	v.subject = env.GetHeader("Subject")
	v.from = firstAddress(env, "From")
	v.sender = firstAddress(env, "Sender")
	if v.sender == nil {
		v.sender = v.from
	}
	v.to = addresses(env, "To")
	v.cc = addresses(env, "Cc")
	v.bcc = addresses(env, "Bcc")
	v.replyTo = addresses(env, "Reply-To")
	if d, derr := env.Date(); derr == nil {
		v.sent = d.UTC()
	}
	v.internetMessageID = strings.TrimSpace(env.GetHeader("Message-Id"))
	v.conversationKey = conversationKey(env, v.internetMessageID)
	switch strings.ToLower(strings.TrimSpace(env.GetHeader("Importance"))) {
	case "high":
		v.importance = "high"
	case "low":
		v.importance = "low"
	}
	v.text = env.Text
	v.html = env.HTML
	v.attachments = collectAttachments(root)
	return v, nil
}

// rawHeaders returns the top-level header fields in order, unfolded, with
// their raw values (Graph does not decode encoded words here).
func rawHeaders(raw []byte) ([]headerField, error) {
	r := bufio.NewReader(bytes.NewReader(raw))
	var out []headerField
	for {
		line, err := r.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			return out, nil
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if len(out) == 0 {
				return nil, fmt.Errorf("parse MIME: continuation line before the first header field")
			}
			out[len(out)-1].Value += " " + strings.TrimSpace(trimmed)
		} else {
			name, value, ok := strings.Cut(trimmed, ":")
			if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
				if len(out) == 0 {
					return nil, fmt.Errorf("parse MIME: malformed header line %q", clip.String(trimmed, 60))
				}
				// Exchange tolerates junk after the headers began; so do we.
				return out, nil
			}
			out = append(out, headerField{Name: name, Value: strings.TrimSpace(value)})
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse MIME headers: %w", err)
		}
	}
}

func firstAddress(env *enmime.Envelope, key string) *emailAddress {
	list := addresses(env, key)
	if len(list) == 0 {
		return nil
	}
	return &list[0]
}

func addresses(env *enmime.Envelope, key string) []emailAddress {
	list, err := env.AddressList(key)
	if err != nil && len(list) == 0 {
		raw := strings.TrimSpace(env.GetHeader(key))
		if raw == "" {
			return nil
		}
		// Unparseable: Exchange keeps the raw text as the address.
		return []emailAddress{{Name: raw, Address: raw}}
	}
	out := make([]emailAddress, 0, len(list))
	for _, a := range list {
		out = append(out, toEmailAddress(a))
	}
	return out
}

func toEmailAddress(a *mail.Address) emailAddress {
	name := a.Name
	if name == "" {
		name = a.Address
	}
	return emailAddress{Name: name, Address: a.Address}
}

// conversationKey names the thread: the first References id, else
// In-Reply-To, else the message's own id.
func conversationKey(env *enmime.Envelope, msgID string) string {
	if refs := strings.Fields(env.GetHeader("References")); len(refs) > 0 {
		return refs[0]
	}
	if irt := strings.TrimSpace(env.GetHeader("In-Reply-To")); irt != "" {
		return irt
	}
	return msgID
}

// conversationID turns a thread key into a Graph-looking conversation id.
func conversationID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "AAQkAD" + base64.URLEncoding.EncodeToString(sum[:24])
}

// collectAttachments walks the whole tree: attachment and inline parts with
// content, and message/rfc822 parts as item attachments. Text bodies are
// not attachments.
func collectAttachments(root *enmime.Part) []attachmentView {
	var out []attachmentView
	var walk func(p *enmime.Part, depth int)
	walk = func(p *enmime.Part, depth int) {
		if p == nil || depth > 64 {
			return
		}
		ct := strings.ToLower(p.ContentType)
		disp := strings.ToLower(p.Disposition)
		switch {
		case ct == "message/rfc822":
			name := p.FileName
			if inner, err := enmime.ReadEnvelope(bytes.NewReader(p.Content)); err == nil && inner.GetHeader("Subject") != "" {
				name = inner.GetHeader("Subject")
			}
			if name == "" {
				name = "Untitled message"
			}
			out = append(out, attachmentView{item: true, name: name, contentType: "message/rfc822", content: p.Content, inline: false})
			return
		case p.FirstChild != nil:
			for c := p.FirstChild; c != nil; c = c.NextSibling {
				walk(c, depth+1)
			}
			return
		case p == root:
			return
		}
		isText := ct == "text/plain" || ct == "text/html" || ct == ""
		if isText && disp != "attachment" && p.FileName == "" {
			return
		}
		name := p.FileName
		if name == "" {
			name = "attachment"
		}
		out = append(out, attachmentView{
			name: name, contentType: p.ContentType, content: p.Content,
			inline:    disp == "inline" || (disp == "" && p.ContentID != ""),
			contentID: p.ContentID,
		})
	}
	walk(root, 0)
	return out
}

// bodyPreview is the first 255 characters of the text body, whitespace collapsed.
func bodyPreview(text string) string {
	s := strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(s) <= 255 {
		return s
	}
	r := []rune(s)
	return string(r[:255])
}

// textAsHTML wraps a text body the way Exchange renders it as HTML.
func textAsHTML(text string) string {
	return "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>" +
		strings.ReplaceAll(html.EscapeString(text), "\n", "<br>\r\n") + "</div></body></html>"
}
