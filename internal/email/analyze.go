package email

import (
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"regexp"
	"strings"
	"time"
)

// ReportHeaderNames returns the headers of a report that are copied into
// Report.ReportHeaders when present. The slice is new on every call.
func ReportHeaderNames() []string {
	return []string{
		"X-MS-Exchange-Organization-Network-Message-Id",
		"X-MS-Exchange-CrossTenant-Network-Message-Id",
		"X-MS-Exchange-Organization-AuthAs",
		"X-MS-Exchange-Organization-AuthSource",
		"X-MS-Exchange-CrossTenant-Id",
		"X-MS-Exchange-CrossTenant-OriginalArrivalTime",
		"X-MS-Exchange-Organization-SCL",
		"X-MS-Exchange-Organization-MessageDirectionality",
		"X-MS-Exchange-Organization-OriginalClientIPAddress",
		"X-MS-Has-Attach",
		"X-Forefront-Antispam-Report",
		"X-Microsoft-Antispam",
		"X-Originating-IP",
		// Whether the report is an automatic message, which never gets an
		// acknowledgment (RFC 3834).
		"Auto-Submitted",
		"Content-Type",
		"Precedence",
		"X-Auto-Response-Suppress",
	}
}

// analyzer carries the bounds and running totals of one Analyze call.
type analyzer struct {
	opts     Options
	now      func() time.Time
	deadline time.Time
	parts    int
	warnings []string
	ex       *extractor
}

// Analyze parses the raw MIME of a message in the phishing mailbox and
// returns its Report. meta comes from Graph and takes precedence over the
// headers; opts bounds the work (zero fields take their defaults).
//
// A message that parses only partly still yields a Report, with what went
// wrong in Report.Warnings and a nil error. When a bound is exceeded
// (ErrTooLarge, ErrTooDeep, ErrTooManyParts, ErrTimeout, wrapped with
// context) Analyze returns the error together with a Report built from meta
// and whatever was analysed before the bound was hit, so the caller can still
// file an incident. The returned Report is never nil.
func Analyze(raw []byte, meta Metadata, opts Options) (*Report, error) {
	return analyze(bytesSource(raw), meta, opts, time.Now)
}

// AnalyzeReader is Analyze for a message read from r, size bytes long (the
// service's spooled copy of the MIME): the message is read in passes and
// never held in memory whole. The reported message's own Message.Raw is
// then nil (the caller has the file); attached emails keep theirs.
func AnalyzeReader(r io.ReaderAt, size int64, meta Metadata, opts Options) (*Report, error) {
	return analyze(source{r: r, size: size}, meta, opts, time.Now)
}

func analyze(src source, meta Metadata, opts Options, now func() time.Time) (*Report, error) {
	a := &analyzer{opts: opts.withDefaults(), now: now, ex: newExtractor()}
	a.deadline = now().Add(a.opts.Timeout)
	rep := &Report{
		Mailbox:        meta.Mailbox,
		MessageID:      meta.MessageID,
		WebLink:        meta.WebLink,
		ReportSubject:  meta.Subject,
		ReceivedAt:     meta.ReceivedAt,
		ReportHeaders:  map[string]string{},
		Classification: classify(meta.Subject),
	}
	err := a.run(src, meta, rep)
	if rep.Suspect == nil {
		rep.Suspect = fallbackMessage(src.raw, meta)
		a.enrich(rep.Suspect)
	}
	if rep.Originals == nil {
		rep.Originals = []*Message{}
	}
	rep.Warnings = a.warnings
	if rep.Warnings == nil {
		rep.Warnings = []string{}
	}
	return rep, err
}

// fallbackMessage is the suspect when the MIME could not be read: what Graph
// said about the message.
func fallbackMessage(raw []byte, meta Metadata) *Message {
	return &Message{
		From:      meta.From,
		Sender:    meta.Sender,
		Subject:   meta.Subject,
		MessageID: meta.InternetMessageID,
		Raw:       raw,
		RawName:   "message.eml",
		Source:    "self",
		Auth:      Auth{SCL: -1, BCL: -1, PCL: -1},
	}
}

func (a *analyzer) run(src source, meta Metadata, rep *Report) error {
	if src.size > a.opts.MaxBytes {
		return fmt.Errorf("analyze message %s: %d bytes, limit %d: %w", meta.MessageID, src.size, a.opts.MaxBytes, ErrTooLarge)
	}
	top, err := a.parseMIME(src, "message")
	if err != nil {
		if isBound(err) {
			if m, h := a.headerOnly(src); m != nil {
				a.fillFromHeaders(rep, meta, m, h)
				m.Source, m.RawName, m.Raw = "self", "message.eml", src.raw
				rep.Suspect = m
				a.enrich(m)
			}
			return fmt.Errorf("analyze message %s: %w", meta.MessageID, err)
		}
		a.warn("%v", err)
		return nil
	}
	a.fillFromHeaders(rep, meta, top.msg, top.header)
	reporter := meta.From
	if reporter.IsZero() {
		reporter = top.msg.From
	}

	originals, err := a.resolve(top.emails, 1)
	rep.Originals = originals
	a.finish(rep, top, reporter, src.raw)
	if err != nil {
		a.warn("%v", err)
		return fmt.Errorf("analyze message %s: %w", meta.MessageID, err)
	}
	if err := a.check("analyze message"); err != nil {
		return fmt.Errorf("analyze message %s: %w", meta.MessageID, err)
	}
	return nil
}

// fillFromHeaders completes the report fields Graph did not give from the
// top-level message.
func (a *analyzer) fillFromHeaders(rep *Report, meta Metadata, m *Message, h textproto.MIMEHeader) {
	if rep.ReportSubject == "" {
		rep.ReportSubject = m.Subject
	}
	if rep.ReceivedAt.IsZero() {
		rep.ReceivedAt = m.Date
	}
	rep.InternetMessageID = meta.InternetMessageID
	if rep.InternetMessageID == "" {
		rep.InternetMessageID = m.MessageID
	}
	if rep.Classification == "" {
		rep.Classification = classify(m.Subject)
	}
	for _, name := range ReportHeaderNames() {
		if v := h.Get(name); v != "" {
			rep.ReportHeaders[name] = truncateRunes(cleanHeaderText(v), 4096)
		}
	}
}

// finish picks the suspect and analyses every original.
func (a *analyzer) finish(rep *Report, top *parsed, reporter Address, raw []byte) {
	switch {
	case len(rep.Originals) > 0:
		rep.IsReport = true
		rep.Suspect = rep.Originals[0]
		rep.MultipleOriginals = len(rep.Originals) > 1
	default:
		loc := time.UTC
		if !top.msg.Date.IsZero() {
			loc = top.msg.Date.Location()
		}
		if fwd, ok := a.inlineForwardOf(top.msg, rep.Classification, reporter, loc); ok {
			fwd.HTML = top.msg.HTML
			fwd.html = top.msg.html
			fwd.Attachments = top.msg.Attachments
			fwd.Raw, fwd.RawName = raw, "forward.eml"
			fwd.Auth = Auth{SCL: -1, BCL: -1, PCL: -1}
			rep.IsReport = true
			rep.Originals = []*Message{fwd}
			rep.Suspect = fwd
		} else {
			top.msg.Source, top.msg.RawName = "self", "message.eml"
			rep.Suspect = top.msg
			rep.IsReport = rep.Classification != ""
		}
	}
	if rep.IsReport {
		rep.Reporter = reporter
	}
	for _, m := range rep.Originals {
		a.enrich(m)
	}
	if len(rep.Originals) == 0 {
		a.enrich(rep.Suspect)
	}
}

// inlineForwardOf returns the message forwarded inline in the body of m,
// when m is a forward or report: its subject says so (a forward prefix or
// a report classification) and a forwarded header block is found anywhere
// in the body, or the body starts with such a block. A reply thread quoted
// further down a message that is not a forward is the sender's own text
// (spam pastes stolen threads), and a message from outside the
// organisation is never a colleague's forward.
func (a *analyzer) inlineForwardOf(m *Message, classification string, reporter Address, loc *time.Location) (*Message, bool) {
	if len(a.opts.InternalDomains) > 0 {
		if d := domainOf(reporter.Address); d == "" || !a.isInternal(d) {
			return nil, false
		}
	}
	anywhere := classification != "" || forwardSubject.MatchString(m.Subject)
	return inlineForward(m.Text, loc, anywhere)
}

// forwardSubject matches the subject of a forward in the languages Outlook
// and Gmail write prefixes in, after any reply prefixes.
var forwardSubject = regexp.MustCompile(`(?i)^\s*((re|aw|sv|antw|r|rif)\s*:\s*)*(fw|fwd|tr|rv|wg|enc|i|vs|vb|pd|doorst|fs)\s*:`)

// enrich adds the connecting IP, observables, indicators and signals to a
// message.
func (a *analyzer) enrich(m *Message) {
	m.ConnectingIP = a.connectingIP(m)
	m.Observables = a.observables(m, m.Source)
	m.Indicators = a.indicators(m)
	m.Signals = a.signals(m)
	if m.To == nil {
		m.To = []Address{}
	}
	if m.CC == nil {
		m.CC = []Address{}
	}
	if m.Received == nil {
		m.Received = []Hop{}
	}
	if m.Attachments == nil {
		m.Attachments = []Attachment{}
	}
}

// wrapperSubject matches the subject of a message that only carries another:
// a forward or a report.
var wrapperSubject = regexp.MustCompile(`(?i)^\s*((fw|fwd|tr|rv|wg|enc|re)\s*:|[123]\s*\||(phishing|junk|not junk)\s*:)`)

// resolve parses attached emails and returns the originals: an attached
// email that is itself a forward or report wrapping emails is replaced by
// what it wraps, up to MaxDepth levels.
func (a *analyzer) resolve(emails []attached, depth int) ([]*Message, error) {
	var out []*Message
	for i, e := range emails {
		label := fmt.Sprintf("attached email %d (%s)", i+1, e.name)
		if depth > a.opts.MaxDepth {
			return out, fmt.Errorf("%s: emails nested deeper than %d: %w", label, a.opts.MaxDepth, ErrTooDeep)
		}
		if err := a.check(label); err != nil {
			return out, err
		}
		var p *parsed
		var err error
		if e.kind == "msg" {
			p, err = a.parseMSG(e.raw, label)
		} else {
			p, err = a.parseMIME(bytesSource(e.raw), label)
		}
		if err != nil {
			if isBound(err) {
				return out, err
			}
			a.warn("%v", err)
			continue
		}
		p.msg.Source, p.msg.RawName = e.kind, e.name
		if len(p.emails) > 0 && wrapperSubject.MatchString(p.msg.Subject) {
			inner, err := a.resolve(p.emails, depth+1)
			if len(inner) > 0 {
				out = append(out, inner...)
			} else {
				out = append(out, p.msg)
			}
			if err != nil {
				return out, err
			}
			continue
		}
		out = append(out, p.msg)
	}
	return out, nil
}

// classify reads the reporter's verdict from a subject in Microsoft's
// report format.
func classify(subject string) string {
	s := strings.ToLower(strings.TrimSpace(subject))
	switch {
	case strings.HasPrefix(s, "1|"), strings.HasPrefix(s, "junk:"):
		return "junk"
	case strings.HasPrefix(s, "2|"), strings.HasPrefix(s, "not junk:"):
		return "not-junk"
	case strings.HasPrefix(s, "3|"), strings.HasPrefix(s, "phishing:"):
		return "phishing"
	}
	return ""
}

func isBound(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooDeep) ||
		errors.Is(err, ErrTooManyParts) || errors.Is(err, ErrTimeout)
}

// check returns ErrTimeout once the deadline has passed.
func (a *analyzer) check(stage string) error {
	if a.now().After(a.deadline) {
		return fmt.Errorf("%s: after %s: %w", stage, a.opts.Timeout, ErrTimeout)
	}
	return nil
}

func (a *analyzer) warn(format string, args ...any) {
	if len(a.warnings) >= maxWarnings {
		return
	}
	a.warnings = append(a.warnings, truncateRunes(fmt.Sprintf(format, args...), 500))
	if len(a.warnings) == maxWarnings {
		a.warnings[maxWarnings-1] = "further warnings omitted"
	}
}
