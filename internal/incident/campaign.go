package incident

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
)

// Campaign key kinds the mapping's campaign.keys may name (package campaign
// computes them).
const (
	CampaignKeyMessageID   = "message_id"
	CampaignKeyFingerprint = "fingerprint"
)

// DefaultCampaignWindow is how long after a campaign's first report later
// reports of the same email still join it.
const DefaultCampaignWindow = 72 * time.Hour

// Campaign is the mapping's campaign section: reports of the same email by
// several people go onto one record. The first report creates the record;
// each later one updates only the fields named here.
type Campaign struct {
	// Enabled turns grouping off when false; a campaign section turns it
	// on.
	Enabled *bool `yaml:"enabled,omitempty"`
	// Keys are the kinds of key that make two reports one campaign:
	// message_id, fingerprint, or both (the default).
	Keys []string `yaml:"keys,omitempty"`
	// Window is a Go duration (72h by default), counted from the
	// campaign's first report.
	Window string `yaml:"window,omitempty"`
	// ReportCount names a numeric field for the number of reports.
	ReportCount string `yaml:"report_count,omitempty"`
	// Reporters names a text field for the list of reporters, one line
	// each with the time of the report.
	Reporters string `yaml:"reporters,omitempty"`
	// LatestReport names a date field for the time of the latest report.
	LatestReport string `yaml:"latest_report,omitempty"`
	// Append names rich text fields of fields: whose lines from each later
	// report are added to the record's (the observables, typically).
	Append []string `yaml:"append,omitempty"`
	// AttachEachReport uploads each later report's original too, into the
	// attachment fields that take it; by default only the first report's
	// is attached.
	AttachEachReport bool `yaml:"attach_each_report,omitempty"`
}

// checkCampaign checks the campaign section's shape; names are checked
// against Archer by compileCampaign.
func (m *Mapping) checkCampaign() Problems {
	c := m.Campaign
	if c == nil {
		return nil
	}
	var p Problems
	for _, k := range c.Keys {
		if k != CampaignKeyMessageID && k != CampaignKeyFingerprint {
			p = append(p, fmt.Sprintf("campaign.keys: %q is not one of message_id, fingerprint", k))
		}
	}
	if c.Window != "" {
		d, err := time.ParseDuration(c.Window)
		switch {
		case err != nil:
			p = append(p, fmt.Sprintf("campaign.window: %q is not a duration such as 72h", c.Window))
		case d < time.Hour || d > 30*24*time.Hour:
			p = append(p, fmt.Sprintf("campaign.window: %s is out of range 1h..720h", d))
		}
	}
	named := map[string]string{}
	for what, name := range map[string]string{"report_count": c.ReportCount, "reporters": c.Reporters, "latest_report": c.LatestReport} {
		if name == "" {
			continue
		}
		if _, ok := m.Fields[name]; ok {
			p = append(p, fmt.Sprintf("campaign.%s: %q is filled by the campaign; remove it from fields", what, name))
		}
		if other, ok := named[name]; ok {
			p = append(p, fmt.Sprintf("campaign.%s: %q is also campaign.%s", what, name, other))
		}
		named[name] = what
	}
	for _, name := range c.Append {
		f, ok := m.Fields[name]
		switch {
		case !ok:
			p = append(p, fmt.Sprintf("campaign.append: %q is not in fields: only a field the mapping fills can grow", name))
		case f.Template == "":
			p = append(p, fmt.Sprintf("campaign.append: fields.%s is not a template: each report would add the same text", name))
		case f.Format == FormatPlain:
			p = append(p, fmt.Sprintf("campaign.append: fields.%s is a single-line field; append needs a multi-line (rich) one", name))
		}
	}
	slices.Sort(p)
	return p
}

// CompiledCampaign is the campaign section resolved against Archer.
type CompiledCampaign struct {
	// Keys are the kinds of key, in order.
	Keys []string
	// Window is how long a campaign takes new reports.
	Window time.Duration

	count, reporters, latest archer.Field
	reportersMode            textMode
	appendFields             []archer.Field
	attachEach               []archer.Field
}

func compileCampaign(c *Campaign, level *archer.Level, fields []compiledField) (*CompiledCampaign, Problems) {
	if c == nil || (c.Enabled != nil && !*c.Enabled) {
		return nil, nil
	}
	cc := &CompiledCampaign{Keys: c.Keys, Window: DefaultCampaignWindow}
	if len(cc.Keys) == 0 {
		cc.Keys = []string{CampaignKeyMessageID, CampaignKeyFingerprint}
	}
	if c.Window != "" {
		cc.Window, _ = time.ParseDuration(c.Window) // checked by Parse
	}
	var p Problems
	resolve := func(what, name string, want archer.FieldType) archer.Field {
		if name == "" {
			return archer.Field{}
		}
		f, ok := level.FieldByName(name)
		switch {
		case !ok:
			p = append(p, unknownField("campaign."+what, name, level))
		case f.Type != want:
			p = append(p, fmt.Sprintf("campaign.%s: %q is a %s field; it needs a %s field", what, name, f.Type, want))
		default:
			return f
		}
		return archer.Field{}
	}
	cc.count = resolve("report_count", c.ReportCount, archer.FieldNumeric)
	cc.reporters = resolve("reporters", c.Reporters, archer.FieldText)
	cc.latest = resolve("latest_report", c.LatestReport, archer.FieldDate)
	cc.reportersMode = textMode{kind: kindRich}
	for _, name := range c.Append {
		f, ok := level.FieldByName(name)
		if ok && f.Type == archer.FieldText {
			cc.appendFields = append(cc.appendFields, f)
		} // otherwise the field's own entry in fields: reports it
	}
	if c.AttachEachReport {
		for _, cf := range fields {
			if slices.Contains(cf.attach, AttachOriginal) {
				cc.attachEach = append(cc.attachEach, cf.field)
			}
		}
		if len(cc.attachEach) == 0 {
			p = append(p, "campaign.attach_each_report: no field of fields: attaches the original (attach: [original])")
		}
	}
	return cc, p
}

// CampaignReport is one report of a campaign.
type CampaignReport struct {
	Reporter string
	At       time.Time
}

// CampaignState is what a campaign's record shows so far.
type CampaignState struct {
	// Reports are the campaign's reports in the order they came.
	Reports []CampaignReport
	// Append holds, by field id, the text of each append field on the
	// record.
	Append map[int64]string
	// Attachments holds, by field id, the attachments of each field that
	// takes each report's original.
	Attachments map[int64][]int64
}

// SetReports writes the number of reports, the reporters and the time of
// the latest report into rec, for the fields the mapping names.
func (cc *CompiledCampaign) SetReports(rec *archer.Record, reports []CampaignReport) {
	if len(reports) == 0 {
		return
	}
	if cc.count.ID != 0 {
		rec.Numeric(cc.count, float64(len(reports)))
	}
	if cc.reporters.ID != 0 {
		var pieces []piece
		for i, r := range reports {
			if i > 0 {
				pieces = append(pieces, piece{s: "\n"})
			}
			who := r.Reporter
			if who == "" {
				who = "(no reporter)"
			}
			pieces = append(pieces, piece{s: who, value: true},
				piece{s: " at " + r.At.UTC().Format("2006-01-02 15:04 MST")})
		}
		if text := escapeText(pieces, cc.reportersMode); text != "" {
			rec.Text(cc.reporters, text)
		}
	}
	if cc.latest.ID != 0 {
		latest := reports[0].At
		for _, r := range reports[1:] {
			if r.At.After(latest) {
				latest = r.At
			}
		}
		rec.Date(cc.latest, latest)
	}
}

// AppendValues returns, by field id, the text of each append field in rec
// (a report's rendered record).
func (cc *CompiledCampaign) AppendValues(rec *archer.Record) map[int64]string {
	out := map[int64]string{}
	for _, f := range cc.appendFields {
		if v, ok := rec.TextValue(f); ok {
			out[f.ID] = v
		}
	}
	return out
}

// Update builds the record update of a later report: the reports' fields,
// and each append field grown by the lines of this report's rendering
// (inc) that it lacks. It returns the update and the append fields' new
// text; changed is false when the record already shows all of it.
func (cc *CompiledCampaign) Update(inc *Incident, st CampaignState, applied int) (rec *archer.Record, grown map[int64]string, changed bool) {
	rec = archer.NewRecord(inc.Record.LevelID())
	if len(st.Reports) != applied {
		cc.SetReports(rec, st.Reports)
		changed = true
	}
	grown = map[int64]string{}
	for _, f := range cc.appendFields {
		had := st.Append[f.ID]
		mine, _ := inc.Record.TextValue(f)
		merged := mergeLines(had, mine)
		grown[f.ID] = merged
		if merged != had {
			rec.Text(f, merged)
			changed = true
		}
	}
	return rec, grown, changed
}

// ReportCountField is the field that counts the reports; its ID is zero
// when the mapping names none.
func (cc *CompiledCampaign) ReportCountField() archer.Field { return cc.count }

// AttachEach lists the attachment fields that take each later report's
// original (campaign.attach_each_report).
func (cc *CompiledCampaign) AttachEach() []archer.Field { return cc.attachEach }

// lineBreak separates the lines of a rich text field's escaped text.
const lineBreak = "<br>"

// mergeLines adds to had the lines of mine it does not hold yet, in
// mine's order.
func mergeLines(had, mine string) string {
	if had == "" {
		return mine
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(had, lineBreak) {
		seen[strings.TrimSpace(l)] = true
	}
	out := had
	for _, l := range strings.Split(mine, lineBreak) {
		k := strings.TrimSpace(l)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		out += lineBreak + l
	}
	return out
}
