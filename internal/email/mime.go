package email

import (
	"bufio"
	"bytes"
	"crypto/md5"  //nolint:gosec // MD5 is an indicator format analysts search for, not a security control.
	"crypto/sha1" //nolint:gosec // SHA-1 likewise.
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"path"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// maxHeaderValue bounds a header value before it is decoded and parsed.
const maxHeaderValue = 64 << 10

// maxSubject bounds the subject kept in the model.
const maxSubject = 16 << 10

// maxWarnings bounds Report.Warnings.
const maxWarnings = 50

// cfbMagic starts every compound file (and so every Outlook .msg).
var cfbMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

// attached is an email found as an attachment of another.
type attached struct {
	name string
	kind string // "rfc822" or "msg"
	raw  []byte
}

// parsed is one email after MIME parsing, before observables are extracted.
type parsed struct {
	msg    *Message
	header textproto.MIMEHeader
	emails []attached
}

// prescan rejects, before the MIME parser runs, input whose structure could
// make the parser recurse or allocate without bound. It counts boundary
// parameters (each multipart container needs one) and lines containing "--"
// (each part needs one); both are upper bounds of what the parser will build.
// It reads src line by line, so a spooled message is never loaded whole.
func (a *analyzer) prescan(src source) error {
	containers, dashLines := 0, 0
	if err := eachLine(src.reader(), func(line []byte) bool {
		containers += countBoundaryParams(line)
		if bytes.Contains(line, []byte("--")) {
			dashLines++
		}
		return true
	}); err != nil {
		return fmt.Errorf("prescan: read: %w", err)
	}
	if containers > a.opts.MaxParts {
		if scanDepth(src.reader(), a.opts.MaxDepth+1) > a.opts.MaxDepth {
			return fmt.Errorf("prescan: multipart nesting over %d: %w", a.opts.MaxDepth, ErrTooDeep)
		}
		return fmt.Errorf("prescan: %d multipart containers, limit %d: %w", containers, a.opts.MaxParts, ErrTooManyParts)
	}
	if dashLines > 20*a.opts.MaxParts {
		return fmt.Errorf("prescan: %d delimiter-like lines, limit %d: %w", dashLines, 20*a.opts.MaxParts, ErrTooManyParts)
	}
	return nil
}

// maxScanLine is the longest line prefix the scans look at. A longer line
// is one header or one line of content: its prefix holds whatever boundary
// parameter or delimiter it could carry.
const maxScanLine = 64 << 10

// eachLine calls fn with every line of r, without its line feed, cut to
// maxScanLine bytes, until fn returns false or r ends.
func eachLine(r io.Reader, fn func(line []byte) bool) error {
	br := bufio.NewReaderSize(r, maxScanLine)
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if !fn(bytes.TrimSuffix(line, []byte("\n"))) {
			return nil
		}
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n') // the rest of an over-long line
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// countBoundaryParams counts "boundary" followed, after optional spaces and
// an RFC 2231 section marker, by "=", ignoring case.
func countBoundaryParams(raw []byte) int {
	const word = "boundary"
	n := 0
	for i := 0; i+len(word) <= len(raw); {
		j := indexFold(raw[i:], word)
		if j < 0 {
			break
		}
		k := i + j + len(word)
		for k < len(raw) && (raw[k] == ' ' || raw[k] == '\t' || raw[k] == '*' || (raw[k] >= '0' && raw[k] <= '9')) {
			k++
		}
		if k < len(raw) && raw[k] == '=' {
			n++
		}
		i = i + j + len(word)
	}
	return n
}

// indexFold is an ASCII case-insensitive bytes.Index for a lower-case word.
func indexFold(b []byte, word string) int {
	first := word[0]
	for i := 0; i+len(word) <= len(b); i++ {
		c := b[i] | 0x20
		if c != first {
			continue
		}
		ok := true
		for k := 1; k < len(word); k++ {
			if b[i+k]|0x20 != word[k] {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// scanDepth estimates the multipart nesting of the message r holds,
// stopping at limit. It follows the boundaries the way a MIME parser does:
// a delimiter of an outer container also ends every container inside it.
func scanDepth(r io.Reader, limit int) int {
	var stack []string
	inHeader := true
	var header bytes.Buffer
	maxDepth := 0
	_ = eachLine(r, func(line []byte) bool {
		line = bytes.TrimRight(line, "\r")
		if inHeader {
			if len(line) > 0 {
				if header.Len() < maxHeaderValue {
					header.Write(line)
					header.WriteByte('\n')
				}
				return true
			}
			inHeader = false
			if b := boundaryOf(header.String()); b != "" {
				stack = append(stack, b)
				maxDepth = max(maxDepth, len(stack))
			}
			header.Reset()
			return maxDepth < limit
		}
		if !bytes.HasPrefix(line, []byte("--")) {
			return true
		}
		for i := len(stack) - 1; i >= 0; i-- {
			b := stack[i]
			if !bytes.HasPrefix(line[2:], []byte(b)) {
				continue
			}
			rest := line[2+len(b):]
			if bytes.HasPrefix(rest, []byte("--")) {
				stack = stack[:i]
			} else {
				stack = stack[:i+1]
				inHeader = true
			}
			break
		}
		return true
	})
	return maxDepth
}

// boundaryOf returns the boundary of a multipart Content-Type in a header
// block, or "".
func boundaryOf(header string) string {
	var ct string
	for _, l := range strings.Split(header, "\n") {
		switch {
		case len(l) > 0 && (l[0] == ' ' || l[0] == '\t'):
			if ct != "" {
				ct += " " + strings.TrimSpace(l)
			}
		case len(l) > 13 && strings.EqualFold(l[:13], "content-type:"):
			ct = strings.TrimSpace(l[13:])
		default:
			if ct != "" {
				return boundaryFromCT(ct)
			}
		}
	}
	return boundaryFromCT(ct)
}

func boundaryFromCT(ct string) string {
	if ct == "" {
		return ""
	}
	mt, params, _, err := mediatype.Parse(ct)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return ""
	}
	return params["boundary"]
}

// parseMIME parses one email.
func (a *analyzer) parseMIME(src source, label string) (p *parsed, err error) {
	if err := a.prescan(src); err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	parser := enmime.NewParser(
		enmime.SkipMalformedParts(true),
		enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
		enmime.MaxStoredPartErrors(5),
		enmime.DisableCharacterDetection(true),
		enmime.DisableTextConversion(true),
	)
	root, err := readParts(parser, src.reader())
	if err != nil {
		return nil, fmt.Errorf("%s: parse MIME: %w", label, err)
	}
	if err := a.checkTree(root, label); err != nil {
		return nil, err
	}
	body := bodiesOf(root)
	for _, e := range body.errs {
		if e != nil && e.Severe {
			a.warn("%s: %s: %s", label, e.Name, e.Detail)
		}
	}
	p = &parsed{header: root.Header}
	m := a.messageFromHeader(root.Header, label)
	m.Text = strings.ToValidUTF8(body.text, "\uFFFD")
	m.HTML = strings.ToValidUTF8(body.html, "\uFFFD")
	a.scanBodies(m, label)
	m.Raw = src.raw
	p.msg = m
	collectParts(root, p)
	return p, nil
}

// scanBodies reads the HTML body once for its links, images and, when the
// text body is absent or blank, its text.
func (a *analyzer) scanBodies(m *Message, label string) {
	if m.HTML == "" {
		return
	}
	body := m.HTML
	if len(body) > maxScanBytes {
		a.warn("%s: only the first %d bytes of the HTML body were scanned", label, maxScanBytes)
		body = body[:maxScanBytes]
	}
	withText := strings.TrimSpace(m.Text) == ""
	s := scanHTML(body, withText)
	if withText {
		m.Text = s.Text
	}
	m.html = &s
}

// readParts runs the MIME parser, turning a panic in it into an error.
func readParts(parser *enmime.Parser, r io.Reader) (root *enmime.Part, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("MIME parser failed: %v", r)
		}
	}()
	root, err = parser.ReadParts(r)
	if err == nil && root == nil {
		err = errors.New("MIME parser returned no message")
	}
	return root, err
}

// checkTree enforces MaxDepth and MaxParts on the parsed tree.
func (a *analyzer) checkTree(root *enmime.Part, label string) error {
	type item struct {
		p     *enmime.Part
		depth int
	}
	stack := []item{{root, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		a.parts++
		if a.parts > a.opts.MaxParts {
			return fmt.Errorf("%s: more than %d parts: %w", label, a.opts.MaxParts, ErrTooManyParts)
		}
		if it.depth > a.opts.MaxDepth {
			return fmt.Errorf("%s: parts nested deeper than %d: %w", label, a.opts.MaxDepth, ErrTooDeep)
		}
		for c := it.p.FirstChild; c != nil; c = c.NextSibling {
			stack = append(stack, item{c, it.depth + 1})
		}
	}
	return nil
}

// collectParts lists the attachments of a parsed email and the emails
// attached to it.
func collectParts(root *enmime.Part, p *parsed) {
	var walk []*enmime.Part
	stack := []*enmime.Part{root}
	for len(stack) > 0 {
		part := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if part.FirstChild == nil {
			walk = append(walk, part)
			continue
		}
		// Push children in reverse so they are visited in document order.
		var kids []*enmime.Part
		for c := part.FirstChild; c != nil; c = c.NextSibling {
			kids = append(kids, c)
		}
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, kids[i])
		}
	}
	for _, part := range walk {
		ct := strings.ToLower(part.ContentType)
		name := cleanFileName(part.FileName)
		disp := strings.ToLower(part.Disposition)
		if strings.HasPrefix(ct, "multipart/") {
			continue
		}
		if (ct == "text/plain" || ct == "text/html" || ct == "") && disp != "attachment" && name == "" {
			continue // a body, already in Text or HTML
		}
		if len(part.Content) == 0 && name == "" {
			continue
		}
		kind := emailKind(ct, name, part.Content)
		if name == "" {
			name = defaultName(ct, kind)
		}
		att := newAttachment(name, ct, part.Content)
		att.IsEmail = kind != ""
		if att.IsEmail {
			att.Kind = KindEmail
		}
		att.Inline = isInline(att.Kind, disp, part.ContentID)
		p.msg.Attachments = append(p.msg.Attachments, att)
		if kind != "" {
			p.emails = append(p.emails, attached{name: name, kind: kind, raw: part.Content})
		}
	}
}

// isInline reports whether an attachment is a picture shown in the body (a
// logo or signature image) rather than a file sent for the reader to open:
// an image with a Content-ID or an inline disposition, and not marked as an
// attachment.
func isInline(kind, disposition, contentID string) bool {
	return kind == KindImage && disposition != "attachment" && (strings.TrimSpace(contentID) != "" || disposition == "inline")
}

// newAttachment hashes an attachment and detects its kind.
func newAttachment(name, ct string, content []byte) Attachment {
	md := md5.Sum(content)  //nolint:gosec // indicator, see import.
	s1 := sha1.Sum(content) //nolint:gosec // indicator, see import.
	s256 := sha256.Sum256(content)
	return Attachment{
		Name:        name,
		ContentType: ct,
		Size:        int64(len(content)),
		MD5:         hex.EncodeToString(md[:]),
		SHA1:        hex.EncodeToString(s1[:]),
		SHA256:      hex.EncodeToString(s256[:]),
		Kind:        detectKind(name, ct, content),
		Data:        content,
	}
}

// emailKind says whether an attachment is an email: "rfc822", "msg" or "".
func emailKind(ct, name string, content []byte) string {
	ext := strings.ToLower(path.Ext(name))
	switch {
	case ct == "message/rfc822" || ct == "message/global" || ext == ".eml":
		if bytes.HasPrefix(content, cfbMagic) {
			return "msg"
		}
		return "rfc822"
	case ct == "application/vnd.ms-outlook" || ext == ".msg":
		if bytes.HasPrefix(content, cfbMagic) {
			return "msg"
		}
	}
	return ""
}

func defaultName(ct, kind string) string {
	switch kind {
	case "rfc822":
		return "message.eml"
	case "msg":
		return "message.msg"
	}
	if ct == "" {
		return "part.bin"
	}
	return "part." + strings.ReplaceAll(path.Base(ct), "+", ".")
}

// cleanFileName keeps the last path element of a file name and drops
// control characters.
func cleanFileName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	return truncateRunes(name, 255)
}

// messageFromHeader fills the header fields of a Message.
func (a *analyzer) messageFromHeader(h textproto.MIMEHeader, label string) *Message {
	get := func(name string) string {
		v := h.Get(name)
		if len(v) > maxHeaderValue {
			a.warn("%s: header %s cut to %d bytes", label, name, maxHeaderValue)
			v = v[:maxHeaderValue]
		}
		return v
	}
	m := &Message{
		From:       firstAddress(get("From")),
		Sender:     firstAddress(get("Sender")),
		ReplyTo:    firstAddress(get("Reply-To")),
		ReturnPath: firstAddress(get("Return-Path")),
		To:         parseAddresses(get("To")),
		CC:         parseAddresses(get("Cc")),
		MessageID:  strings.TrimSpace(cleanHeaderText(get("Message-Id"))),
	}
	subject := cleanHeaderText(enmime.DecodeRFC2047(get("Subject")))
	if len(subject) > maxSubject {
		a.warn("%s: subject cut to %d bytes", label, maxSubject)
		subject = truncateRunes(subject, maxSubject)
	}
	m.Subject = subject
	if d := get("Date"); d != "" {
		if t, ok := parseDate(d); ok {
			m.Date = t
		} else {
			a.warn("%s: unreadable Date header %q", label, truncateRunes(d, 80))
		}
	}
	for i, v := range h.Values("Received") {
		if i >= 100 {
			a.warn("%s: more than 100 Received headers; the rest are ignored", label)
			break
		}
		if len(v) > maxHeaderValue {
			v = v[:maxHeaderValue]
		}
		m.Received = append(m.Received, parseReceived(v))
	}
	m.Auth = parseAuth(h)
	var cut bool
	if m.Headers, cut = headerMap(h); cut {
		a.warn("%s: more than %d header values; the rest are not kept for the mapping's rules", label, MaxHeaderFields)
	}
	m.connectingIP = strings.TrimSpace(antispamFields(get("X-Forefront-Antispam-Report"))["CIP"])
	return m
}

// cleanHeaderText unfolds a header value, drops control characters and
// trims it.
func cleanHeaderText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(collapseSpaces(s))
}

func collapseSpaces(s string) string {
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// headerOnly reads just the top header block of src, for a message whose
// body could not be parsed within the bounds.
func (a *analyzer) headerOnly(src source) (*Message, textproto.MIMEHeader) {
	var block bytes.Buffer
	_ = eachLine(src.reader(), func(line []byte) bool {
		if len(bytes.TrimRight(line, "\r")) == 0 || block.Len() > maxHeaderBlock {
			return false
		}
		block.Write(line)
		block.WriteByte('\n')
		return true
	})
	block.WriteByte('\n')
	h, err := enmime.ReadHeader(bufio.NewReader(&block), discardErrors{})
	if err != nil || h == nil {
		return nil, nil
	}
	return a.messageFromHeader(h, "message headers"), h
}

// maxHeaderBlock bounds the header block headerOnly reads.
const maxHeaderBlock = 1 << 20

// discardErrors ignores the header parser's complaints.
type discardErrors struct{}

func (discardErrors) AddError(string, string, ...any)   {}
func (discardErrors) AddWarning(string, string, ...any) {}
