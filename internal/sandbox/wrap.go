package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// DefaultReporter is the internal user a wrapped report comes from when no
// reporter is named.
const DefaultReporter = "reporter@contoso.com"

// MaxWrappedOriginal bounds the email WrapAsReport wraps, so that the
// report fits MaxDelivered.
const MaxWrappedOriginal = 50 << 20

// maxReportSubject bounds, in characters, the original's subject as the
// report's subject and attachment name repeat it.
const maxReportSubject = 200

// WrapAsReport returns a Report Message report of original, as Outlook's
// Report button sends one to the phishing mailbox: a new message from
// reporter to Mailbox, dated at, with the subject "Phishing: " and the
// original's subject, a short text and the original attached byte for byte
// as message/rfc822. reporter is an address, with or without a display
// name. Line breaks and other control characters in reporter are refused;
// the original's subject is decoded, stripped of control characters, cut
// to 200 characters and re-encoded, so nothing in either can add a header.
// The result is the same for the same arguments.
func WrapAsReport(original []byte, reporter string, at time.Time) ([]byte, error) {
	if len(original) == 0 {
		return nil, errors.New("wrap as report: the original email is empty")
	}
	if len(original) > MaxWrappedOriginal {
		return nil, fmt.Errorf("wrap as report: the original email has %d bytes, more than %d", len(original), MaxWrappedOriginal)
	}
	from, err := ParseReporter(reporter)
	if err != nil {
		return nil, fmt.Errorf("wrap as report: %w", err)
	}
	subject := originalSubject(original)
	sum := sha256.New()
	for _, part := range [][]byte{original, []byte(from.String()), []byte(at.UTC().Format(time.RFC3339Nano))} {
		_, _ = fmt.Fprintf(sum, "%d:", len(part))
		_, _ = sum.Write(part)
	}
	id := hex.EncodeToString(sum.Sum(nil))
	boundary := "_report_" + id[:24] + "_"
	for n := 0; bytes.Contains(original, []byte("--"+boundary)); n++ {
		boundary = fmt.Sprintf("_report_%s_%d_", id[:24], n)
	}

	var b bytes.Buffer
	var unsafe []string
	header := func(name, value string) {
		if strings.ContainsAny(value, "\r\n") {
			unsafe = append(unsafe, name)
			return
		}
		b.WriteString(foldHeader(name + ": " + value))
		b.WriteString("\r\n")
	}
	header("From", from.String())
	header("To", (&mail.Address{Name: "Phishing Reports", Address: Mailbox}).String())
	header("Subject", "Phishing: "+encodeHeaderText(subject))
	header("Date", at.Format(time.RFC1123Z))
	header("Message-ID", "<report-"+id[:32]+"@"+messageIDDomain(from.Address)+">")
	header("X-MS-Exchange-Organization-Network-Message-Id", id[32:40]+"-"+id[40:44]+"-"+id[44:48]+"-"+id[48:52]+"-"+id[52:64])
	header("X-MS-Exchange-Organization-AuthAs", "Internal")
	header("X-MS-Has-Attach", "yes")
	header("MIME-Version", "1.0")
	header("Content-Type", mediaType("multipart/mixed", "boundary", boundary))
	b.WriteString("\r\n")

	b.WriteString("--" + boundary + "\r\n")
	header("Content-Type", `text/plain; charset="us-ascii"`)
	header("Content-Transfer-Encoding", "7bit")
	b.WriteString("\r\nThis message was reported as phishing.\r\n")
	b.WriteString("\r\n--" + boundary + "\r\n")

	name := attachmentName(subject)
	header("Content-Type", mediaType("message/rfc822", "name", name))
	header("Content-Disposition", mediaType("attachment", "filename", name))
	header("Content-Transfer-Encoding", transferEncoding(original))
	b.WriteString("\r\n")
	b.Write(original)
	// The line break before the closing delimiter belongs to the delimiter,
	// so the attachment's content is the original's bytes exactly.
	b.WriteString("\r\n--" + boundary + "--\r\n")
	if len(unsafe) > 0 {
		// Unreachable with the checks above; a header is never written
		// with a line break of its own.
		return nil, fmt.Errorf("wrap as report: a line break in the %s header", strings.Join(unsafe, ", "))
	}
	return b.Bytes(), nil
}

// ParseReporter reads a reporter as WrapAsReport takes it: one address,
// with or without a display name, without line breaks or other control
// characters. Control characters hidden in the display name's encoded
// words become spaces.
func ParseReporter(s string) (*mail.Address, error) {
	a, err := parseReporter(s)
	if err != nil {
		return nil, fmt.Errorf("reporter %q: %w", clip.String(s, 80), err)
	}
	return a, nil
}

func parseReporter(s string) (*mail.Address, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no address")
	}
	if len(s) > 320 {
		return nil, errors.New("longer than 320 bytes")
	}
	for _, r := range s {
		if r == '\r' || r == '\n' {
			return nil, errors.New("holds a line break")
		}
		if unicode.IsControl(r) {
			return nil, errors.New("holds a control character")
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	// The display name may hold encoded words, decoded by now: whatever
	// they hid becomes a space.
	a.Name = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, a.Name)), " ")
	if !strings.Contains(a.Address, "@") {
		return nil, errors.New("not an email address")
	}
	return a, nil
}

// originalSubject reads the original's first Subject header, unfolded and
// decoded from RFC 2047 words where they decode, as one line without
// control characters, cut to maxReportSubject characters. An original
// without one has the subject "(no subject)".
func originalSubject(original []byte) string {
	raw, found := "", false
	for _, line := range headerLines(original) {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Subject") {
			raw, found = strings.TrimSpace(value), true
			break
		}
	}
	if !found {
		return "(no subject)"
	}
	text, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil {
		text = raw
	}
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(text, "\uFFFD"))
	text = strings.Join(strings.Fields(text), " ")
	if text == "" {
		return "(no subject)"
	}
	return clip.String(text, maxReportSubject)
}

// headerLines returns the header fields of a message, each unfolded to one
// line; the header ends at the first empty line. A line that is neither a
// field nor a continuation is skipped.
func headerLines(msg []byte) []string {
	var out []string
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			return out
		case line[0] == ' ' || line[0] == '\t':
			if len(out) > 0 {
				out[len(out)-1] += " " + strings.TrimSpace(string(line))
			}
		default:
			out = append(out, string(line))
		}
	}
	return out
}

// mediaType formats a Content-Type or Content-Disposition value with one
// parameter, RFC 2231-encoded when it is not ASCII.
func mediaType(typ, param, value string) string {
	if v := mime.FormatMediaType(typ, map[string]string{param: value}); v != "" {
		return v
	}
	return typ
}

// encodeHeaderText encodes an unstructured header value: as is when it is
// printable ASCII, otherwise as RFC 2047 words.
func encodeHeaderText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// foldHeader folds a header line at spaces outside quoted strings so that
// lines stay within 78 characters where such spaces allow; a longer piece
// stays whole. Only a single space before a word is folded, so no line is
// blank and unfolding (removing each CRLF) gives the line back.
func foldHeader(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	// pieces end before each space that may be folded.
	var pieces []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted && i > start && i+1 < len(line) && line[i+1] != ' ':
			pieces = append(pieces, line[start:i])
			start = i
		}
	}
	pieces = append(pieces, line[start:])
	var b strings.Builder
	width := 0
	for _, p := range pieces {
		if width > 0 && width+len(p) > limit {
			b.WriteString("\r\n")
			width = 0
		}
		b.WriteString(p)
		width += len(p)
	}
	return b.String()
}

// attachmentName names the attached original after its subject, as Outlook
// does, without the characters a file name cannot hold, in at most 100
// bytes before the extension (so that its RFC 2231 form fits a header
// line).
func attachmentName(subject string) string {
	name := strings.Map(func(r rune) rune {
		if strings.ContainsRune(`\/:*?"<>|`, r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, subject)
	for len(name) > 100 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.Trim(name, " .")
	if name == "" {
		name = "reported message"
	}
	return name + ".eml"
}

// transferEncoding labels the original as RFC 2046 requires of a
// message/rfc822 body, which may not be encoded: 7bit when it is short
// lines of ASCII, 8bit when it has other bytes but no NUL and short lines,
// binary otherwise.
func transferEncoding(original []byte) string {
	enc := "7bit"
	for _, line := range bytes.Split(original, []byte("\n")) {
		if len(line) > 998 || bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(bytes.TrimSuffix(line, []byte("\r")), '\r') >= 0 {
			return "binary"
		}
		if enc == "7bit" {
			for _, c := range line {
				if c >= 0x80 {
					enc = "8bit"
					break
				}
			}
		}
	}
	return enc
}

// messageIDDomain is the reporter's domain when it is a plain host name,
// else "localhost".
func messageIDDomain(addr string) string {
	_, domain, _ := strings.Cut(addr, "@")
	if domain == "" || len(domain) > 253 {
		return "localhost"
	}
	for _, r := range domain {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "localhost"
		}
	}
	return domain
}
