package incident

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
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

// File is an attachment to upload before the record is created. Open
// returns its content, which the caller reads and must close; each call
// gives the content from its start, so a failed upload can be retried.
// The attachments archive is produced while it is read and is never held
// whole in memory.
type File struct {
	Field archer.Field
	Name  string
	Open  Opener
}

// Opener gives a file's content from its start; the caller closes it.
type Opener func() (io.ReadCloser, error)

// FromBytes is the Opener of content in memory.
func FromBytes(b []byte) Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// Incident is a rendered record: the key, the record without its attachment
// fields, and the files those fields take. The caller uploads the files and
// adds their ids with AttachFiles.
type Incident struct {
	Key    string
	Record *archer.Record
	Files  []File
}

// Render fills the mapping from one report. report opens the message as it
// arrived in the mailbox (the service's spooled file), uploaded when the
// mapping attaches the report, or the original when the report is its only
// copy. Errors name the field and the problem; they are permanent for this
// report (rendering again gives the same result).
func (c *Compiled) Render(rep *email.Report, report Opener, now time.Time) (*Incident, error) {
	if rep == nil || rep.Suspect == nil {
		return nil, fmt.Errorf("render: the report has no message to describe")
	}
	if report == nil {
		report = FromBytes(nil)
	}
	data := Data{Report: rep, Now: now.UTC()}
	key, err := c.key.ExecuteString(data)
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
			inc.Files = append(inc.Files, c.files(cf, rep, report, key, data.Now)...)
			continue
		}
		var pieces []piece
		switch {
		case cf.literal && cf.field.Type == archer.FieldNumeric:
			inc.Record.Numeric(cf.field, cf.number)
			continue
		case cf.literal && cf.field.Type == archer.FieldValuesList:
			inc.Record.ValuesList(cf.field, cf.ids, "")
			continue
		case cf.tmpl != nil:
			var w pieceWriter
			if err := cf.tmpl.Execute(&w, data); err != nil {
				return nil, fmt.Errorf("render field %q: %w", cf.field.Name, err)
			}
			pieces = w.pieces
		default:
			pieces = []piece{{s: cf.text}}
		}
		if err := cf.fill(inc.Record, pieces); err != nil {
			return nil, fmt.Errorf("render field %q: %w", cf.field.Name, err)
		}
	}
	if err := inc.Record.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return inc, nil
}

// pieceWriter keeps a template's output as pieces, the template's own text
// apart from the values it prints.
type pieceWriter struct{ pieces []piece }

func (w *pieceWriter) WriteText(s string) error {
	w.pieces = append(w.pieces, piece{s: s})
	return nil
}

func (w *pieceWriter) WriteValue(s string) error {
	w.pieces = append(w.pieces, piece{s: s, value: true})
	return nil
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

// fill converts a template's output (or a literal) into the field's type:
// text through escapeText, other types read from the plain text. Empty
// output leaves the field out of the record.
func (cf compiledField) fill(r *archer.Record, pieces []piece) error {
	f := cf.field
	switch f.Type {
	case archer.FieldText:
		if text := escapeText(pieces, cf.mode); text != "" {
			r.Text(f, text)
		}
		return nil
	case archer.FieldExternalLinks:
		return setLinks(r, f, escapeText(pieces, cf.mode))
	}
	var b strings.Builder
	for _, p := range pieces {
		b.WriteString(p.s)
	}
	trimmed := strings.TrimSpace(b.String())
	if trimmed == "" {
		return nil
	}
	switch f.Type {
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

// setLinks reads external links, one "Name | URL" or URL per line.
func setLinks(r *archer.Record, f archer.Field, text string) error {
	var links []archer.Link
	for _, l := range lines(text) {
		name, u, ok := strings.Cut(l, " | ")
		if !ok {
			name, u = l, l
		}
		links = append(links, archer.Link{Name: strings.TrimSpace(name), URL: strings.TrimSpace(u)})
	}
	if len(links) > 0 {
		r.ExternalLinks(f, links)
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

// files lists the files of an attachment field. key names the archive of
// the suspect's attachments; now dates its entries.
func (c *Compiled) files(cf compiledField, rep *email.Report, report Opener, key string, now time.Time) []File {
	var out []File
	for _, src := range cf.attach {
		switch src {
		case AttachOriginal:
			s := rep.Suspect
			switch {
			case s.Source != "self" && len(s.Raw) > 0:
				out = append(out, File{Field: cf.field, Name: fileName(s.RawName, "original.eml"), Open: FromBytes(s.Raw)})
			case s.Source != "self" && s.RawName != "":
				// Forwarded inline: the report is the original's only copy.
				out = append(out, File{Field: cf.field, Name: fileName(s.RawName, "original.eml"), Open: report})
			default:
				out = append(out, File{Field: cf.field, Name: "reported-email.eml", Open: report})
			}
		case AttachReport:
			out = append(out, File{Field: cf.field, Name: "report.eml", Open: report})
		case AttachAttachments:
			out = append(out, c.attachmentFiles(cf.field, rep.Suspect.Attachments, key, now)...)
		}
	}
	return out
}

// attachmentFiles uploads the suspect's attachments as the mapping's
// attachment mode says. Attachments without content (an Outlook item
// listed by name) are left out.
func (c *Compiled) attachmentFiles(f archer.Field, atts []email.Attachment, key string, now time.Time) []File {
	var with []email.Attachment
	for _, a := range atts {
		if len(a.Data) > 0 {
			with = append(with, a)
		}
	}
	if len(with) == 0 {
		return nil
	}
	switch c.attachments {
	case AttachmentsNone:
		return nil
	case AttachmentsRaw:
		out := make([]File, 0, len(with))
		for _, a := range with {
			out = append(out, File{Field: f, Name: fileName(a.Name, "attachment.bin"), Open: FromBytes(a.Data)})
		}
		return out
	}
	return []File{{Field: f, Name: ArchiveName(key), Open: openArchive(with, now)}}
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
	name = strings.TrimSpace(strings.ToValidUTF8(name, "_"))
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
