// Package incident holds the mapping file: which Archer application receives
// the incidents and how each Archer field, named as Archer names it, is
// filled from the analysis of a reported email. It loads and checks the
// file, resolves it against Archer's metadata before the service starts
// (preflight), and renders one report into an Archer record. It does no I/O
// of its own: Archer's metadata comes through a small interface.
package incident

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultKeyTemplate renders the idempotency key: the mailbox and the
// message's immutable Graph id, which together name one reported email.
const DefaultKeyTemplate = "{{.Mailbox}}/{{.MessageID}}"

// Attachment sources an attachment field may take.
const (
	// AttachOriginal is the reported original email (.eml, or .msg when it
	// was attached as an Outlook item), or the message itself when it is
	// not a report.
	AttachOriginal = "original"
	// AttachReport is the message as it arrived in the phishing mailbox.
	AttachReport = "report"
	// AttachAttachments are the files attached to the suspect email.
	AttachAttachments = "attachments"
)

// Attachment modes: how the files attached to the suspect email reach the
// record (the mapping's top-level attachments key).
const (
	// AttachmentsZip uploads them in one ZIP archive encrypted with
	// ArchivePassword, so that no analyst opens one by accident. The
	// default.
	AttachmentsZip = "zip"
	// AttachmentsNone uploads none; the record still lists them.
	AttachmentsNone = "none"
	// AttachmentsRaw uploads each as it is, under its own (sanitized)
	// name; one click in Archer opens it.
	AttachmentsRaw = "raw"
)

// ArchivePassword is the password of the attachments archive: the
// convention for sharing malware samples.
const ArchivePassword = "infected"

// Mapping is the parsed mapping file.
type Mapping struct {
	// Application is the Archer application's name.
	Application string `yaml:"application"`
	// Level is the level's name; needed only when the application has
	// several levels.
	Level string `yaml:"level,omitempty"`
	// Attachments is how the suspect email's attachments are uploaded:
	// AttachmentsZip (the default), AttachmentsNone or AttachmentsRaw.
	Attachments string `yaml:"attachments,omitempty"`
	// Key names the idempotency key field and how its value is made.
	Key Key `yaml:"key"`
	// Fields maps Archer field names to how each is filled.
	Fields map[string]Field `yaml:"fields"`
	// Campaign groups the reports of one email onto one record; nil
	// creates a record per report.
	Campaign *Campaign `yaml:"campaign,omitempty"`
	// Rules decide, in order, what happens to a report before it becomes
	// an incident: skip it, or set or tag fields (rules.go).
	Rules []Rule `yaml:"rules,omitempty"`
	// Ack is the acknowledgment sent to the reporter; nil sends none
	// (ack.go).
	Ack *Ack `yaml:"ack,omitempty"`
}

// Key is the idempotency key: a text field holding a value unique to the
// reported email, looked up before creating a record after a crash.
type Key struct {
	Field    string `yaml:"field"`
	Template string `yaml:"template,omitempty"`
}

// Field says how one Archer field is filled: exactly one of Value (a
// literal: text, number, or values-list names), Template (a template in Go
// template syntax over the report, see package tmpl) or Attach (attachment
// sources). Format, Markup and Machine say how text reaches a text field
// (docs/mapping.md, "Escaping").
type Field struct {
	Value    any      `yaml:"value,omitempty"`
	Template string   `yaml:"template,omitempty"`
	Attach   []string `yaml:"attach,omitempty"`
	// Format is the text field's display control: FormatRich (the
	// default) or FormatPlain.
	Format string `yaml:"format,omitempty"`
	// Markup trusts the template's own text as HTML in a rich text field;
	// the values it prints are still escaped.
	Markup bool `yaml:"markup,omitempty"`
	// Machine keeps the URLs in values live, for a field read by programs
	// (a SOAR playbook) rather than people.
	Machine bool `yaml:"machine,omitempty"`
}

// Load reads and parses a mapping file.
func Load(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping file: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("mapping file %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a mapping strictly (unknown keys are errors) and checks its
// shape; names are checked against Archer by Compile.
func Parse(data []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var more any
	if err := dec.Decode(&more); err == nil {
		return nil, errors.New("parse: the file holds more than one YAML document")
	}
	if m.Key.Template == "" {
		m.Key.Template = DefaultKeyTemplate
	}
	var problems Problems
	switch m.Attachments {
	case "":
		m.Attachments = AttachmentsZip
	case AttachmentsZip, AttachmentsNone, AttachmentsRaw:
	default:
		problems = append(problems, fmt.Sprintf("attachments: %q is not one of zip, none, raw", m.Attachments))
	}
	if strings.TrimSpace(m.Application) == "" {
		problems = append(problems, "application: the Archer application's name is required")
	}
	if strings.TrimSpace(m.Key.Field) == "" {
		problems = append(problems, "key.field: name the text field that holds the idempotency key (e.g. Reported Email Key)")
	}
	if len(m.Fields) == 0 {
		problems = append(problems, "fields: map at least the application's required fields")
	}
	for _, name := range sortedKeys(m.Fields) {
		f := m.Fields[name]
		set := 0
		if f.Value != nil {
			set++
		}
		if f.Template != "" {
			set++
		}
		if len(f.Attach) > 0 {
			set++
		}
		if set != 1 {
			problems = append(problems, fmt.Sprintf("fields.%s: give exactly one of value, template or attach", name))
		}
		for _, a := range f.Attach {
			switch a {
			case AttachOriginal, AttachReport, AttachAttachments:
			default:
				problems = append(problems, fmt.Sprintf("fields.%s.attach: %q is not one of original, report, attachments", name, a))
			}
		}
		switch f.Format {
		case "", FormatRich, FormatPlain:
		default:
			problems = append(problems, fmt.Sprintf("fields.%s.format: %q is not one of rich, plain", name, f.Format))
		}
		if f.Markup && f.Format == FormatPlain {
			problems = append(problems, fmt.Sprintf("fields.%s: markup needs format: rich; a plain field shows HTML as text", name))
		}
		if len(f.Attach) > 0 && (f.Format != "" || f.Markup || f.Machine) {
			problems = append(problems, fmt.Sprintf("fields.%s: format, markup and machine apply to text, not to attachments", name))
		}
		if name == m.Key.Field {
			problems = append(problems, fmt.Sprintf("fields.%s: the key field is filled from key.template; remove it from fields", name))
		}
	}
	problems = append(problems, m.checkCampaign()...)
	_, ruleProblems := checkRules(m.Rules)
	problems = append(problems, ruleProblems...)
	problems = append(problems, m.checkAck()...)
	if len(problems) > 0 {
		return nil, problems
	}
	return &m, nil
}

// Problems lists every problem found in a mapping; the service does not
// start until all are fixed.
type Problems []string

// Error lists the problems one per line.
func (p Problems) Error() string {
	return "the mapping has problems:\n  - " + strings.Join(p, "\n  - ")
}
