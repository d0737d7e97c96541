package incident

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
)

// Data is what templates see: the report's fields (.Suspect, .Reporter,
// .Mailbox, .MessageID, .ReceivedAt, …) and .Now, the time of rendering.
type Data struct {
	*email.Report
	Now time.Time
}

// File is an attachment to upload before the record is created.
type File struct {
	Field archer.Field
	Name  string
	Data  []byte
}

// Incident is a rendered record: the key, the record without its attachment
// fields, and the files those fields take. The caller uploads the files and
// adds their ids with AttachFiles.
type Incident struct {
	Key    string
	Record *archer.Record
	Files  []File
}

// Render fills the mapping from one report. reportMIME is the message as it
// arrived in the mailbox. Errors name the field and the problem; they are
// permanent for this report (rendering again gives the same result).
func (c *Compiled) Render(rep *email.Report, reportMIME []byte, now time.Time) (*Incident, error) {
	if rep == nil || rep.Suspect == nil {
		return nil, fmt.Errorf("render: the report has no message to describe")
	}
	data := Data{Report: rep, Now: now.UTC()}
	key, err := execute(c.key, data)
	if err != nil {
		return nil, fmt.Errorf("render key: %w", err)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, fmt.Errorf("render key: the key template gave an empty key")
	}
	inc := &Incident{Key: key, Record: archer.NewRecord(c.Level.ID)}
	inc.Record.Text(c.KeyField, key)
	for _, cf := range c.fields {
		if len(cf.attach) > 0 {
			inc.Files = append(inc.Files, files(cf, rep, reportMIME)...)
			continue
		}
		out := cf.text
		switch {
		case cf.literal && cf.field.Type == archer.FieldNumeric:
			inc.Record.Numeric(cf.field, cf.number)
			continue
		case cf.literal && cf.field.Type == archer.FieldValuesList:
			inc.Record.ValuesList(cf.field, cf.ids, "")
			continue
		case cf.tmpl != nil:
			out, err = execute(cf.tmpl, data)
			if err != nil {
				return nil, fmt.Errorf("render field %q: %w", cf.field.Name, err)
			}
		}
		if err := cf.set(inc.Record, out); err != nil {
			return nil, fmt.Errorf("render field %q: %w", cf.field.Name, err)
		}
	}
	if err := inc.Record.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return inc, nil
}

// AttachFiles puts uploaded attachment ids into their fields, in the order
// of Files.
func (inc *Incident) AttachFiles(ids []int64) error {
	if len(ids) != len(inc.Files) {
		return fmt.Errorf("attach: %d ids for %d files", len(ids), len(inc.Files))
	}
	byField := map[int64][]int64{}
	fields := map[int64]archer.Field{}
	var order []int64
	for i, f := range inc.Files {
		if _, ok := fields[f.Field.ID]; !ok {
			order = append(order, f.Field.ID)
			fields[f.Field.ID] = f.Field
		}
		byField[f.Field.ID] = append(byField[f.Field.ID], ids[i])
	}
	for _, id := range order {
		inc.Record.Attachments(fields[id], byField[id])
	}
	return inc.Record.Err()
}

func execute(t *template.Template, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// set converts text (a template's output or a literal) into the field's
// type. Empty text leaves the field out of the record.
func (cf compiledField) set(r *archer.Record, text string) error {
	f := cf.field
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return nil
	}
	switch f.Type {
	case archer.FieldText:
		r.Text(f, text)
	case archer.FieldNumeric:
		v, err := parseNumber(trimmed)
		if err != nil {
			return err
		}
		r.Numeric(f, v)
	case archer.FieldDate:
		t, err := parseDate(trimmed)
		if err != nil {
			return err
		}
		r.Date(f, t)
	case archer.FieldValuesList:
		var ids []int64
		for _, name := range lines(trimmed) {
			id, err := archer.MatchValue(f, cf.values, name)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		r.ValuesList(f, ids, "")
	case archer.FieldExternalLinks:
		var links []archer.Link
		for _, l := range lines(trimmed) {
			name, u, ok := strings.Cut(l, " | ")
			if !ok {
				name, u = l, l
			}
			links = append(links, archer.Link{Name: strings.TrimSpace(name), URL: strings.TrimSpace(u)})
		}
		r.ExternalLinks(f, links)
	case archer.FieldCrossReference:
		var ids []int64
		for _, s := range strings.FieldsFunc(trimmed, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("%q is not a record id", s)
			}
			ids = append(ids, id)
		}
		r.CrossReference(f, ids)
	case archer.FieldIPAddress:
		r.IP(f, trimmed)
	default:
		return fmt.Errorf("%s fields cannot be filled by the mapping", f.Type)
	}
	return nil
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func files(cf compiledField, rep *email.Report, reportMIME []byte) []File {
	var out []File
	for _, src := range cf.attach {
		switch src {
		case AttachOriginal:
			s := rep.Suspect
			if len(s.Raw) > 0 && s.Source != "self" {
				out = append(out, File{Field: cf.field, Name: fileName(s.RawName, "original.eml"), Data: s.Raw})
			} else {
				out = append(out, File{Field: cf.field, Name: "reported-email.eml", Data: reportMIME})
			}
		case AttachReport:
			out = append(out, File{Field: cf.field, Name: "report.eml", Data: reportMIME})
		case AttachAttachments:
			for _, a := range rep.Suspect.Attachments {
				if len(a.Data) == 0 {
					continue
				}
				out = append(out, File{Field: cf.field, Name: fileName(a.Name, "attachment.bin"), Data: a.Data})
			}
		}
	}
	return out
}

// fileName keeps the base name of an attacker-chosen file name, without
// control characters or path separators, at most 200 bytes.
func fileName(name, fallback string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, path.Base(strings.ReplaceAll(name, "\\", "/")))
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." || name == "_" {
		return fallback
	}
	if len(name) > 200 {
		ext := path.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		name = strings.ToValidUTF8(name[:200-len(ext)], "") + ext
	}
	return name
}
