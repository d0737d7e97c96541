package incident

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

// Ack is the mapping's ack section: the acknowledgment sent to the person
// who reported an email. Without the section no acknowledgment is sent.
// Its own subject, text and html are the acknowledgment of a report that
// became (or joined) a record; Simulation and Skipped are those of a
// report a skip rule decided (docs/mapping.md, "Acknowledgments").
type Ack struct {
	AckText `yaml:",inline"`
	// Simulation is sent for a report a simulation rule skipped; without
	// it, Skipped is sent.
	Simulation *AckText `yaml:"simulation,omitempty"`
	// Skipped is sent for a report another skip rule decided; without it,
	// nothing is.
	Skipped *AckText `yaml:"skipped,omitempty"`
}

// AckText is one acknowledgment: templates over AckData for the subject,
// the plain text body and, optionally, the HTML body.
type AckText struct {
	Subject string `yaml:"subject,omitempty"`
	Text    string `yaml:"text,omitempty"`
	HTML    string `yaml:"html,omitempty"`
}

// AckKind says which acknowledgment a report gets.
type AckKind int

// Acknowledgment kinds.
const (
	// AckRecord acknowledges a report that became or joined a record.
	AckRecord AckKind = iota
	// AckSimulation acknowledges a report a simulation rule skipped.
	AckSimulation
	// AckSkipped acknowledges a report another skip rule decided.
	AckSkipped
)

// String names the kind as the mapping does.
func (k AckKind) String() string {
	switch k {
	case AckRecord:
		return "record"
	case AckSimulation:
		return "simulation"
	case AckSkipped:
		return "skipped"
	}
	return fmt.Sprintf("AckKind(%d)", int(k))
}

// AckData is what acknowledgment templates see.
type AckData struct {
	// Report is the analysis of the report (.Report.Suspect.Subject,
	// .Report.Reporter, …).
	Report *email.Report
	// RecordID is the Archer record's content id; 0 for a skipped report.
	RecordID int64
	// Reports is how many people reported the campaign's email so far; 1
	// without campaigns.
	Reports int
	// Rule is the name of the rule that decided the report, or "".
	Rule string
}

// AckMessage is a rendered acknowledgment: a one-line subject, a plain
// text body and an HTML body ("" when the mapping gives none).
type AckMessage struct {
	Subject string
	Text    string
	HTML    string
}

// Bounds of a rendered acknowledgment.
const (
	// MaxAckSubject bounds the subject, in characters.
	MaxAckSubject = 255
	// maxAckBody bounds what one body template writes.
	maxAckBody = 256 << 10
	// maxAckSubjectOutput bounds what the subject template writes before
	// the subject is cut to MaxAckSubject.
	maxAckSubjectOutput = 64 << 10
)

var ackDataType = reflect.TypeFor[AckData]()

// compiledAck holds the compiled acknowledgments by kind; nil where the
// mapping gives none.
type compiledAck [3]*compiledAckText

type compiledAckText struct {
	subject, text, html *tmpl.Template
}

// checkAck checks the ack section's shape: each acknowledgment given has a
// subject and a text.
func (m *Mapping) checkAck() Problems {
	a := m.Ack
	if a == nil {
		return nil
	}
	var p Problems
	check := func(where string, t AckText) {
		switch {
		case strings.TrimSpace(t.Subject) == "" && strings.TrimSpace(t.Text) == "" && t.HTML == "":
			p = append(p, where+": give subject and text")
		case strings.TrimSpace(t.Subject) == "":
			p = append(p, where+".subject: give the acknowledgment's subject")
		case strings.TrimSpace(t.Text) == "":
			p = append(p, where+".text: give the plain text body (html is optional, text is not)")
		}
	}
	if a.AckText != (AckText{}) {
		check("ack", a.AckText)
	} else if a.Simulation == nil && a.Skipped == nil {
		p = append(p, "ack: give subject and text (and optionally html, simulation and skipped), or remove the section")
	}
	if a.Simulation != nil {
		check("ack.simulation", *a.Simulation)
	}
	if a.Skipped != nil {
		check("ack.skipped", *a.Skipped)
	}
	return p
}

// compileAck compiles the acknowledgment templates against AckData.
func (m *Mapping) compileAck() (*compiledAck, Problems) {
	a := m.Ack
	if a == nil {
		return nil, nil
	}
	if p := m.checkAck(); len(p) > 0 {
		return nil, p
	}
	var p Problems
	compile := func(where string, t AckText) *compiledAckText {
		if t == (AckText{}) {
			return nil
		}
		out := &compiledAckText{}
		for _, part := range []struct {
			name, text string
			max        int
			dst        **tmpl.Template
		}{
			{"subject", t.Subject, maxAckSubjectOutput, &out.subject},
			{"text", t.Text, maxAckBody, &out.text},
			{"html", t.HTML, maxAckBody, &out.html},
		} {
			if part.text == "" {
				continue
			}
			tp, err := tmpl.Compile(where+"."+part.name, part.text, ackDataType, tmpl.Options{Funcs: Funcs(), MaxOutput: part.max})
			if err != nil {
				p = append(p, err.Error())
				continue
			}
			*part.dst = tp
		}
		return out
	}
	var c compiledAck
	c[AckRecord] = compile("ack", a.AckText)
	if a.Simulation != nil {
		c[AckSimulation] = compile("ack.simulation", *a.Simulation)
	}
	if a.Skipped != nil {
		c[AckSkipped] = compile("ack.skipped", *a.Skipped)
	}
	if len(p) > 0 {
		return nil, p
	}
	return &c, nil
}

// ackFor returns the acknowledgment of a kind: a simulation without its
// own text gets the skipped one.
func (c *Compiled) ackFor(kind AckKind) *compiledAckText {
	if c.ack == nil || kind < AckRecord || kind > AckSkipped {
		return nil
	}
	if t := c.ack[kind]; t != nil {
		return t
	}
	if kind == AckSimulation {
		return c.ack[AckSkipped]
	}
	return nil
}

// HasAck reports whether the mapping gives an acknowledgment for kind.
func (c *Compiled) HasAck(kind AckKind) bool { return c.ackFor(kind) != nil }

// RenderAck renders the acknowledgment of kind for d; false when the
// mapping gives none for that kind. The subject is one line of at most
// MaxAckSubject characters; the text body has no control characters but
// line breaks and tabs; in the HTML body the template's own text is
// markup and every value printed is HTML-escaped. In all three, a link
// printed from the email is defanged (hxxps://), so the reporter gets no
// live link to the phish. Errors name the template and position.
func (c *Compiled) RenderAck(kind AckKind, d AckData) (AckMessage, bool, error) {
	t := c.ackFor(kind)
	if t == nil {
		return AckMessage{}, false, nil
	}
	var out AckMessage
	pieces, err := executePieces(t.subject, d)
	if err != nil {
		return AckMessage{}, true, fmt.Errorf("render %s acknowledgment: %w", kind, err)
	}
	out.Subject = oneLine(escapeText(pieces, textMode{kind: kindLinks}), MaxAckSubject)
	if pieces, err = executePieces(t.text, d); err != nil {
		return AckMessage{}, true, fmt.Errorf("render %s acknowledgment: %w", kind, err)
	}
	out.Text = escapeText(pieces, textMode{kind: kindLinks})
	if out.Text == "" {
		return AckMessage{}, true, fmt.Errorf("render %s acknowledgment: the text template gave an empty body", kind)
	}
	if t.html != nil {
		if pieces, err = executePieces(t.html, d); err != nil {
			return AckMessage{}, true, fmt.Errorf("render %s acknowledgment: %w", kind, err)
		}
		out.HTML = escapeText(pieces, textMode{kind: kindRich, markup: true})
	}
	return out, true, nil
}

// executePieces runs a template and keeps its output as pieces.
func executePieces(t *tmpl.Template, d AckData) ([]piece, error) {
	var w pieceWriter
	if err := t.Execute(&w, d); err != nil {
		return nil, err
	}
	return w.pieces, nil
}

// oneLine turns every run of white space (line breaks included) into one
// space and cuts s to at most n characters, ending in "…" when it cuts.
func oneLine(s string, n int) string {
	return truncate(n, strings.Join(strings.Fields(s), " "))
}
