package incident

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

// Metadata is the part of the Archer client that preflight needs.
type Metadata interface {
	Application(ctx context.Context, name string) (*archer.Application, error)
	ValuesListValues(ctx context.Context, listID int64) ([]archer.Value, error)
}

// Compiled is a mapping resolved against one Archer instance: every field
// name is a field id, every literal values-list name an id, every template
// compiled and checked against Data. It is safe for concurrent use.
type Compiled struct {
	App      *archer.Application
	Level    *archer.Level
	KeyField archer.Field
	key      *tmpl.Template
	fields   []compiledField
	// Campaign groups the reports of one email onto one record; nil when
	// the mapping has no (enabled) campaign section.
	Campaign *CompiledCampaign
	// attachments is the attachment mode (AttachmentsZip, …).
	attachments string
	warnings    []string
	// rules are the mapping's rules in order; ack its acknowledgments
	// (nil: none).
	rules []compiledRule
	ack   *compiledAck
}

type compiledField struct {
	field   archer.Field
	tmpl    *tmpl.Template // nil for literals and attachments
	mode    textMode       // text and external-links fields
	literal bool           // a literal value (text, number or ids below)
	text    string         // literal text
	number  float64        // literal number
	ids     []int64        // literal values-list ids
	attach  []string
	values  []archer.Value // values-list fields: the values, for template output
}

// dataType is the static type templates are checked against.
var dataType = reflect.TypeFor[Data]()

// Warnings lists what the service should log at start: choices in the
// mapping that are allowed but unsafe (attachments: raw).
func (c *Compiled) Warnings() []string { return c.warnings }

// Compile checks the mapping against Archer's metadata and returns one error
// listing every problem: unknown fields (with close matches), unknown
// values (with the available ones), required fields left unmapped,
// templates that do not parse and literals of the wrong type.
func (m *Mapping) Compile(ctx context.Context, meta Metadata) (*Compiled, error) {
	app, err := meta.Application(ctx, m.Application)
	if err != nil {
		return nil, fmt.Errorf("preflight: application %q: %w", m.Application, err)
	}
	var problems Problems
	c := &Compiled{App: app, attachments: m.Attachments}
	switch c.attachments {
	case "":
		c.attachments = AttachmentsZip
	case AttachmentsZip, AttachmentsNone, AttachmentsRaw:
	default:
		problems = append(problems, fmt.Sprintf("attachments: %q is not one of zip, none, raw", c.attachments))
	}
	if c.attachments == AttachmentsRaw {
		c.warnings = append(c.warnings, "attachments: raw uploads the suspect email's attachments as they are: "+
			"an analyst opens a malicious file from the record with one click; zip is the safe default")
	}
	funcs := Funcs()
	switch {
	case m.Level != "":
		l, ok := app.LevelByName(m.Level)
		if !ok {
			return nil, Problems{fmt.Sprintf("level: %q is not a level of %q; levels: %s", m.Level, app.Name, levelNames(app))}
		}
		c.Level = l
	case len(app.Levels) == 1:
		c.Level = &app.Levels[0]
	case len(app.Levels) == 0:
		return nil, Problems{fmt.Sprintf("application %q has no levels the API user can see", app.Name)}
	default:
		return nil, Problems{fmt.Sprintf("level: application %q has several levels; name one of: %s", app.Name, levelNames(app))}
	}

	kf, ok := c.Level.FieldByName(m.Key.Field)
	switch {
	case !ok:
		problems = append(problems, unknownField("key.field", m.Key.Field, c.Level))
	case kf.Type != archer.FieldText:
		problems = append(problems, fmt.Sprintf("key.field: %q is a %s field; the key needs a text field", kf.Name, kf.Type))
	default:
		c.KeyField = kf
	}
	if t, err := tmpl.Compile("key.template", m.Key.Template, dataType, tmpl.Options{Funcs: funcs}); err != nil {
		problems = append(problems, err.Error())
	} else {
		c.key = t
	}

	mapped := map[int64]bool{c.KeyField.ID: true}
	for _, name := range sortedKeys(m.Fields) {
		spec := m.Fields[name]
		where := "fields." + name
		f, ok := c.Level.FieldByName(name)
		if !ok {
			problems = append(problems, unknownField(where, name, c.Level))
			continue
		}
		mapped[f.ID] = true
		cf, errs := compileField(ctx, meta, where, f, spec, funcs)
		problems = append(problems, errs...)
		if len(errs) == 0 {
			c.fields = append(c.fields, cf)
		}
	}
	cc, errs := compileCampaign(m.Campaign, c.Level, c.fields)
	problems = append(problems, errs...)
	c.Campaign = cc
	if cc != nil {
		for _, f := range []archer.Field{cc.count, cc.reporters, cc.latest} {
			mapped[f.ID] = true
		}
	}
	rules, warnings, errs := m.compileRules(ctx, meta, c)
	problems = append(problems, errs...)
	c.rules, c.warnings = rules, append(c.warnings, warnings...)
	c.ack, errs = m.compileAck()
	problems = append(problems, errs...)
	for _, f := range c.Level.Fields {
		if f.Required && !mapped[f.ID] {
			problems = append(problems, fmt.Sprintf("fields: %q is required in Archer but not mapped", f.Name))
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

func compileField(ctx context.Context, meta Metadata, where string, f archer.Field, spec Field, funcs tmpl.Funcs) (compiledField, Problems) {
	cf := compiledField{field: f}
	var problems Problems
	if f.Type.System() {
		return cf, Problems{fmt.Sprintf("%s: %q is a system field (%s) that Archer fills itself", where, f.Name, f.Type)}
	}
	switch {
	case (spec.Format != "" || spec.Markup) && f.Type != archer.FieldText:
		return cf, Problems{fmt.Sprintf("%s: format and markup apply to text fields, and %q is of type %s", where, f.Name, f.Type)}
	case spec.Machine && f.Type != archer.FieldText && f.Type != archer.FieldExternalLinks:
		return cf, Problems{fmt.Sprintf("%s: machine applies to text and external-links fields, and %q is of type %s", where, f.Name, f.Type)}
	}
	cf.mode = textMode{kind: kindRich, markup: spec.Markup, machine: spec.Machine}
	switch {
	case f.Type == archer.FieldExternalLinks:
		cf.mode.kind = kindLinks
	case spec.Format == FormatPlain:
		cf.mode.kind = kindPlain
	}
	if len(spec.Attach) > 0 {
		if f.Type != archer.FieldAttachment {
			return cf, Problems{fmt.Sprintf("%s: attach needs an attachment field; %q is a %s field", where, f.Name, f.Type)}
		}
		cf.attach = spec.Attach
		return cf, nil
	}
	switch f.Type {
	case archer.FieldText, archer.FieldNumeric, archer.FieldDate, archer.FieldValuesList,
		archer.FieldExternalLinks, archer.FieldCrossReference, archer.FieldIPAddress:
	case archer.FieldAttachment:
		return cf, Problems{fmt.Sprintf("%s: %q is an attachment field; fill it with attach: [original]", where, f.Name)}
	default:
		return cf, Problems{fmt.Sprintf("%s: %q is a field of type %s, which the mapping cannot fill", where, f.Name, f.Type)}
	}
	if f.Type == archer.FieldValuesList {
		vals, err := meta.ValuesListValues(ctx, f.ValuesListID)
		if err != nil {
			return cf, Problems{fmt.Sprintf("%s: read the values of %q: %v", where, f.Name, err)}
		}
		cf.values = vals
	}
	if spec.Template != "" {
		t, err := tmpl.Compile(where+".template", spec.Template, dataType, tmpl.Options{Funcs: funcs})
		if err != nil {
			return cf, Problems{err.Error()}
		}
		cf.tmpl = t
		return cf, nil
	}
	// A literal.
	switch f.Type {
	case archer.FieldText:
		s, ok := spec.Value.(string)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.value: %q is a text field; give a string", where, f.Name))
		}
		cf.text = s
		cf.literal = true
	case archer.FieldNumeric:
		switch v := spec.Value.(type) {
		case int:
			cf.number = float64(v)
		case float64:
			cf.number = v
		default:
			problems = append(problems, fmt.Sprintf("%s.value: %q is a numeric field; give a number", where, f.Name))
		}
		cf.literal = true
	case archer.FieldValuesList:
		names, ok := stringList(spec.Value)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.value: %q is a values list; give a value name or a list of names", where, f.Name))
			break
		}
		for _, n := range names {
			id, err := archer.MatchValue(f, cf.values, n)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s.value: %v", where, err))
				continue
			}
			cf.ids = append(cf.ids, id)
		}
		cf.literal = true
	default:
		// Dates, links, cross-references and IPs: the literal is read like
		// a template's output, so check it now.
		s, ok := spec.Value.(string)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.value: give a string for the %s field %q", where, f.Type, f.Name))
			break
		}
		cf.text = s
		cf.literal = true
		probe := archer.NewRecord(f.LevelID)
		err := cf.fill(probe, []piece{{s: s}})
		if err == nil {
			err = probe.Err()
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s.value: %v", where, err))
		}
	}
	return cf, problems
}

func unknownField(where, name string, l *archer.Level) string {
	var close []string
	for _, f := range l.Fields {
		if levenshtein.ComputeDistance(strings.ToLower(f.Name), strings.ToLower(name)) <= 3 ||
			strings.Contains(strings.ToLower(f.Name), strings.ToLower(name)) {
			close = append(close, fmt.Sprintf("%q", f.Name))
		}
	}
	msg := fmt.Sprintf("%s: %q is not a field of level %q", where, name, l.Name)
	if len(close) > 0 {
		msg += "; did you mean " + strings.Join(close, " or ") + "?"
	}
	return msg
}

func levelNames(app *archer.Application) string {
	var names []string
	for _, l := range app.Levels {
		names = append(names, fmt.Sprintf("%q", l.Name))
	}
	return strings.Join(names, ", ")
}

func stringList(v any) ([]string, bool) {
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseDate reads a rendered date: RFC 3339, or a plain date.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (print a time as it is, {{.ReceivedAt}}, or with {{date \"2006-01-02T15:04:05Z07:00\" .ReceivedAt}})", s)
}

func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New("not a number: " + strconv.Quote(s))
	}
	return v, nil
}
