package archersim

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type attachment struct {
	ID        int64
	Name      string
	Data      []byte
	Sensitive bool
	Created   time.Time
}

var errTooLarge = errors.New("attachment too large")

// handleUploadAttachment decodes {"AttachmentName":…,"AttachmentBytes":…}
// while reading it, so a large file is held once (decoded), not as request
// text plus base64 plus bytes.
func (s *Server) handleUploadAttachment(req *apiRequest) {
	if req.bodyReader == nil {
		writeJSON(req.w, http.StatusOK, failed(msg("InvalidRequest", "The attachment body is missing.")))
		return
	}
	estimate := int64(0)
	if req.r.ContentLength > 0 {
		estimate = req.r.ContentLength / 4 * 3
	}
	up, err := parseAttachmentUpload(req.bodyReader.Reader, s.opts.MaxAttachmentBytes, estimate)
	switch {
	case errors.Is(err, errTooLarge):
		writeIISError(req.w, http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		writeJSON(req.w, http.StatusOK, failed(msg("InvalidRequest", "The attachment body is not valid: %v.", err)))
		return
	case strings.TrimSpace(up.name) == "":
		writeJSON(req.w, http.StatusOK, failed(msg("AttachmentNameRequired", "The AttachmentName is required.")))
		return
	case !up.hasBytes:
		writeJSON(req.w, http.StatusOK, failed(msg("AttachmentBytesRequired", "The AttachmentBytes are required.")))
		return
	}
	s.mu.Lock()
	id := s.nextAttachID
	s.nextAttachID++
	s.attachments[id] = &attachment{ID: id, Name: up.name, Data: up.data, Sensitive: up.sensitive, Created: s.clock().UTC()}
	s.mu.Unlock()
	writeJSON(req.w, http.StatusOK, ok(map[string]any{"Id": id}))
}

func (s *Server) handleGetAttachment(req *apiRequest, idText string) {
	id, err := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	var a *attachment
	if err == nil {
		a = s.attachments[id]
	}
	s.mu.Unlock()
	if a == nil {
		writeJSON(req.w, http.StatusOK, failed(newMessage(contentController, "ValidationMessageTemplates:NoResourceFound", "No resource found.")))
		return
	}
	name, _ := json.Marshal(a.Name)
	req.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	req.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(req.w, 32<<10)
	fmt.Fprintf(bw, `{"Links":[],"RequestedObject":{"AttachmentName":%s,"AttachmentBytes":"`, name)
	enc := base64.NewEncoder(base64.StdEncoding, bw)
	_, _ = enc.Write(a.Data) // a.Data is never modified after upload
	_ = enc.Close()
	success := `true`
	if stringBooleans(req.w) {
		success = `"true"`
	}
	_, _ = io.WriteString(bw, `"},"IsSuccessful":`+success+`,"ValidationMessages":[]}`+"\n")
	_ = bw.Flush()
}

type upload struct {
	name      string
	data      []byte
	hasBytes  bool
	sensitive bool
}

// parseAttachmentUpload reads one JSON object from r, streaming the
// AttachmentBytes string through a base64 decoder. Whitespace inside the
// base64 text is tolerated.
func parseAttachmentUpload(r *bufio.Reader, maxBytes, estimate int64) (*upload, error) {
	sc := &jsonScanner{r: r}
	c, err := sc.next()
	if err != nil || c != '{' {
		return nil, errors.New("expected a JSON object")
	}
	up := &upload{}
	first := true
	for {
		c, err := sc.next()
		if err != nil {
			return nil, err
		}
		if c == '}' && first {
			return up, nil
		}
		first = false
		if c != '"' {
			return nil, errors.New("expected a property name")
		}
		var key strings.Builder
		if err := sc.stringTo(&limitedBuilder{b: &key, max: 256}); err != nil {
			return nil, fmt.Errorf("property name: %w", err)
		}
		if c, err := sc.next(); err != nil || c != ':' {
			return nil, errors.New("expected ':'")
		}
		switch {
		case strings.EqualFold(key.String(), "AttachmentBytes"):
			c, err := sc.next()
			if err != nil {
				return nil, err
			}
			if c == 'n' {
				if err := sc.literal("ull"); err != nil {
					return nil, err
				}
				break
			}
			if c != '"' {
				return nil, errors.New("AttachmentBytes must be a string")
			}
			sink := newB64Sink(maxBytes, estimate)
			if err := sc.stringTo(sink); err != nil {
				return nil, err
			}
			if up.data, err = sink.finish(); err != nil {
				return nil, err
			}
			up.hasBytes = true
		case strings.EqualFold(key.String(), "AttachmentName"):
			c, err := sc.next()
			if err != nil {
				return nil, err
			}
			if c != '"' {
				return nil, errors.New("AttachmentName must be a string")
			}
			var name strings.Builder
			if err := sc.stringTo(&limitedBuilder{b: &name, max: 4096}); err != nil {
				return nil, fmt.Errorf("AttachmentName: %w", err)
			}
			up.name = name.String()
		case strings.EqualFold(key.String(), "IsSensitive"):
			c, err := sc.next()
			if err != nil {
				return nil, err
			}
			switch c {
			case 't':
				up.sensitive = true
				err = sc.literal("rue")
			case 'f':
				err = sc.literal("alse")
			case 'n':
				err = sc.literal("ull")
			default:
				err = errors.New("IsSensitive must be a boolean")
			}
			if err != nil {
				return nil, err
			}
		default:
			if err := sc.skipValue(0); err != nil {
				return nil, err
			}
		}
		c, err = sc.next()
		if err != nil {
			return nil, err
		}
		if c == '}' {
			return up, nil
		}
		if c != ',' {
			return nil, errors.New("expected ',' or '}'")
		}
	}
}

// jsonScanner is a minimal streaming JSON reader for the attachment body.
type jsonScanner struct {
	r *bufio.Reader
}

// next returns the next byte that is not whitespace.
func (sc *jsonScanner) next() (byte, error) {
	for {
		c, err := sc.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, nil
	}
}

func (sc *jsonScanner) literal(rest string) error {
	for i := 0; i < len(rest); i++ {
		c, err := sc.r.ReadByte()
		if err != nil || c != rest[i] {
			return errors.New("invalid literal")
		}
	}
	return nil
}

// stringTo copies a JSON string's content (opening quote already read) to w,
// resolving escapes, in chunks.
func (sc *jsonScanner) stringTo(w io.Writer) error {
	buf := make([]byte, 0, 32<<10)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	for {
		c, err := sc.r.ReadByte()
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		switch {
		case c == '"':
			return flush()
		case c == '\\':
			e, err := sc.r.ReadByte()
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				var hex [4]byte
				if _, err := io.ReadFull(sc.r, hex[:]); err != nil {
					return io.ErrUnexpectedEOF
				}
				n, err := strconv.ParseUint(string(hex[:]), 16, 32)
				if err != nil {
					return errors.New("invalid \\u escape")
				}
				buf = utf8.AppendRune(buf, rune(n))
			default:
				return errors.New("invalid escape")
			}
		case c < 0x20:
			return errors.New("control character in string")
		default:
			buf = append(buf, c)
		}
		if len(buf) >= 32<<10-8 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// skipValue skips one JSON value of any kind, to a bounded depth.
func (sc *jsonScanner) skipValue(depth int) error {
	if depth > 32 {
		return errors.New("nesting too deep")
	}
	c, err := sc.next()
	if err != nil {
		return err
	}
	switch {
	case c == '"':
		return sc.stringTo(io.Discard)
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		for i := 0; ; i++ {
			d, err := sc.next()
			if err != nil {
				return err
			}
			if d == closer && i == 0 {
				return nil
			}
			if err := sc.r.UnreadByte(); err != nil {
				return err
			}
			if c == '{' {
				if k, err := sc.next(); err != nil || k != '"' {
					return errors.New("expected a property name")
				}
				if err := sc.stringTo(io.Discard); err != nil {
					return err
				}
				if k, err := sc.next(); err != nil || k != ':' {
					return errors.New("expected ':'")
				}
			}
			if err := sc.skipValue(depth + 1); err != nil {
				return err
			}
			d, err = sc.next()
			if err != nil {
				return err
			}
			if d == closer {
				return nil
			}
			if d != ',' {
				return errors.New("expected ',' in a container")
			}
		}
	case c == 't':
		return sc.literal("rue")
	case c == 'f':
		return sc.literal("alse")
	case c == 'n':
		return sc.literal("ull")
	case c == '-' || c >= '0' && c <= '9':
		for {
			d, err := sc.r.ReadByte()
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			if !(d >= '0' && d <= '9' || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-') {
				return sc.r.UnreadByte()
			}
		}
	}
	return errors.New("invalid value")
}

// limitedBuilder is a writer into a strings.Builder with a size cap.
type limitedBuilder struct {
	b   *strings.Builder
	max int
}

func (l *limitedBuilder) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, errors.New("string too long")
	}
	return l.b.Write(p)
}

// b64Sink decodes base64 text written to it in 4-character quanta, skipping
// whitespace.
type b64Sink struct {
	pending []byte
	out     []byte
	max     int64
}

func newB64Sink(maxBytes, estimate int64) *b64Sink {
	if estimate > maxBytes {
		estimate = maxBytes
	}
	return &b64Sink{pending: make([]byte, 0, 64<<10), out: make([]byte, 0, estimate), max: maxBytes}
}

func (b *b64Sink) Write(p []byte) (int, error) {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		b.pending = append(b.pending, c)
		if len(b.pending) == cap(b.pending) {
			if err := b.decode(false); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}

func (b *b64Sink) decode(final bool) error {
	n := len(b.pending)
	if !final {
		n -= n % 4
	}
	if n == 0 {
		return nil
	}
	enc := base64.StdEncoding
	if final && n%4 != 0 {
		enc = base64.RawStdEncoding
	}
	need := int64(len(b.out) + enc.DecodedLen(n))
	if need > b.max+3 {
		return errTooLarge
	}
	if int64(cap(b.out)) < need {
		grown := make([]byte, len(b.out), max(need, int64(cap(b.out))*5/4))
		copy(grown, b.out)
		b.out = grown
	}
	m, err := enc.Decode(b.out[len(b.out):need], b.pending[:n])
	if err != nil {
		return fmt.Errorf("AttachmentBytes are not valid base64: %w", err)
	}
	b.out = b.out[:len(b.out)+m]
	if int64(len(b.out)) > b.max {
		return errTooLarge
	}
	b.pending = append(b.pending[:0], b.pending[n:]...)
	return nil
}

func (b *b64Sink) finish() ([]byte, error) {
	if err := b.decode(true); err != nil {
		return nil, err
	}
	return b.out, nil
}
