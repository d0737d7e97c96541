package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
)

// Rule is one entry of the mapping's rules section: a name, the conditions
// under which it applies (a preset, or when), and one action (skip, set or
// tag). Rules are evaluated in order on the analysis of each report; the
// first whose conditions all hold decides (docs/mapping.md, "Rules").
type Rule struct {
	// Name names the rule in jobs list, in the metrics and in errors:
	// letters, digits, "-" and "_", unique in the mapping.
	Name string `yaml:"name"`
	// Preset names a documented condition for a simulation platform (see
	// presets.go); a rule with a preset and no action skips the report as
	// a simulation.
	Preset string `yaml:"preset,omitempty"`
	// When lists conditions that must all hold.
	When *When `yaml:"when,omitempty"`
	// Skip creates no incident.
	Skip *Skip `yaml:"skip,omitempty"`
	// Set overrides fields of the incident with literals, by Archer field
	// name.
	Set map[string]any `yaml:"set,omitempty"`
	// Tag adds a value to fields of the incident: a values-list value to
	// those the field has, or a line to a text field.
	Tag map[string]any `yaml:"tag,omitempty"`
	// Line is the rule's line in the mapping file (0 when the rule was not
	// read from a file).
	Line int `yaml:"-"`

	// decodeProblems are what reading the rule's YAML found (unknown keys,
	// values of the wrong type).
	decodeProblems []string
}

// When lists the conditions of a rule; every condition given must hold.
// Lists hold when any of their entries matches.
type When struct {
	// Headers are conditions on the header fields of the reported
	// original (email.Message.Headers).
	Headers []HeaderCondition `yaml:"headers,omitempty"`
	// Sender lists addresses of the original's From.
	Sender StringList `yaml:"sender,omitempty"`
	// SenderDomain lists domains of the original's From; a domain matches
	// itself and its subdomains.
	SenderDomain StringList `yaml:"sender_domain,omitempty"`
	// Reporter lists addresses of the person who reported the email.
	Reporter StringList `yaml:"reporter,omitempty"`
	// ReporterDomain lists domains of the reporter's address.
	ReporterDomain StringList `yaml:"reporter_domain,omitempty"`
	// Auth lists accepted authentication verdicts of the original.
	Auth *AuthCondition `yaml:"auth,omitempty"`
	// Signals names email.Signals fields that must be true (flags) or
	// greater than 0 (counts and levels).
	Signals StringList `yaml:"signals,omitempty"`
	// CampaignKey lists campaign keys ("mid:<id>", "fp:<sha-256>"), one of
	// which the report must have.
	CampaignKey StringList `yaml:"campaign_key,omitempty"`
}

// HeaderCondition holds when a header of the reported original is present
// (no operator) or when one of its values equals or contains a text
// (ignoring case, after trimming) or matches a regular expression (RE2
// syntax, applied as written: (?i) ignores case).
type HeaderCondition struct {
	Name     string  `yaml:"name"`
	Equals   *string `yaml:"equals,omitempty"`
	Contains *string `yaml:"contains,omitempty"`
	Matches  *string `yaml:"matches,omitempty"`
}

// AuthCondition lists, for each verdict, the values that satisfy it,
// compared ignoring case with the original's email.Auth.
type AuthCondition struct {
	SPF      StringList `yaml:"spf,omitempty"`
	DKIM     StringList `yaml:"dkim,omitempty"`
	DMARC    StringList `yaml:"dmarc,omitempty"`
	CompAuth StringList `yaml:"compauth,omitempty"`
}

// Skip is the action that creates no incident.
type Skip struct {
	// Category is the category written back to the reported message;
	// "Simulation" by default for a simulation.
	Category string `yaml:"category,omitempty"`
	// Simulation marks the report as a correctly reported simulation: it
	// picks the simulation acknowledgment. A preset rule is a simulation
	// unless it says simulation: false.
	Simulation *bool `yaml:"simulation,omitempty"`
}

// StringList is a YAML list of strings that may also be written as one
// string.
type StringList []string

// UnmarshalYAML reads a string or a list of strings.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
				return fmt.Errorf("line %d: give a string", item.Line)
			}
			out = append(out, item.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: give a string or a list of strings", n.Line)
}

// Rule actions, as RuleMatch.Action names them.
const (
	RuleSkip = "skip"
	RuleSet  = "set"
	RuleTag  = "tag"
)

// DefaultSimulationCategory is the category a simulation rule writes back
// when it names none.
const DefaultSimulationCategory = "Simulation"

// ruleKeys are the keys a rule may have.
var ruleKeys = []string{"name", "preset", "when", "skip", "set", "tag"}

// UnmarshalYAML reads a rule, keeping its line and every problem with its
// shape for Parse to report with the rule's name; unknown keys are
// problems, as everywhere in the mapping.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	*r = Rule{Line: n.Line}
	bad := func(format string, args ...any) {
		r.decodeProblems = append(r.decodeProblems, fmt.Sprintf(format, args...))
	}
	if n.Kind != yaml.MappingNode {
		bad("a rule is a mapping of name, a condition (preset or when) and an action (skip, set or tag)")
		return nil
	}
	r.decodeProblems = append(r.decodeProblems, checkKeys(n, "", ruleKeys)...)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "name":
			err = v.Decode(&r.Name)
		case "preset":
			err = v.Decode(&r.Preset)
		case "when":
			r.When = &When{}
			r.decodeProblems = append(r.decodeProblems, checkWhenKeys(v)...)
			err = v.Decode(r.When)
		case "skip":
			r.Skip = &Skip{}
			r.decodeProblems = append(r.decodeProblems, checkKeys(v, "skip.", []string{"category", "simulation"})...)
			err = v.Decode(r.Skip)
		case "set":
			err = decodeLiterals(v, &r.Set)
		case "tag":
			err = decodeLiterals(v, &r.Tag)
		default:
			continue // reported by checkKeys
		}
		if err != nil {
			bad("%s: %s", k.Value, yamlProblem(err))
		}
	}
	return nil
}

// decodeLiterals reads the field → literal map of set and tag; an empty
// map is kept (not nil) so that the rule says it has the action.
func decodeLiterals(n *yaml.Node, out *map[string]any) error {
	m := map[string]any{}
	if n.Tag != "!!null" {
		if err := n.Decode(&m); err != nil {
			return err
		}
	}
	*out = m
	return nil
}

// yamlProblem is a decoding error's message without the library's prefix.
func yamlProblem(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	return strings.Join(strings.Fields(msg), " ")
}

// checkKeys reports a node that is not a mapping, and its unknown and
// repeated keys, each named with prefix and its line.
func checkKeys(n *yaml.Node, prefix string, allowed []string) []string {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil
		}
		return []string{fmt.Sprintf("%s (line %d): give a mapping of %s", strings.TrimSuffix(prefix, "."), n.Line, strings.Join(allowed, ", "))}
	}
	var out []string
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case !slices.Contains(allowed, k.Value):
			out = append(out, fmt.Sprintf("%s%s (line %d): unknown key; the keys are %s", prefix, k.Value, k.Line, strings.Join(allowed, ", ")))
		case seen[k.Value]:
			out = append(out, fmt.Sprintf("%s%s (line %d): given twice", prefix, k.Value, k.Line))
		}
		seen[k.Value] = true
	}
	return out
}

var whenKeys = []string{"headers", "sender", "sender_domain", "reporter", "reporter_domain", "auth", "signals", "campaign_key"}

// checkWhenKeys checks the keys of when and of its nested mappings.
func checkWhenKeys(n *yaml.Node) []string {
	out := checkKeys(n, "when.", whenKeys)
	if n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "headers":
			if v.Kind != yaml.SequenceNode {
				continue // the decoder reports it
			}
			for j, h := range v.Content {
				out = append(out, checkKeys(h, fmt.Sprintf("when.headers[%d].", j), []string{"name", "equals", "contains", "matches"})...)
			}
		case "auth":
			out = append(out, checkKeys(v, "when.auth.", []string{"spf", "dkim", "dmarc", "compauth"})...)
		}
	}
	return out
}

// ruleSpec is a checked rule: its matcher and action, before the fields
// of set and tag are resolved against Archer.
type ruleSpec struct {
	name     string
	match    *matcher
	action   string
	category string
	sim      bool
	set, tag map[string]any
	// headersOnly is true when every condition is a header's presence,
	// which any sender can fake.
	headersOnly bool
}

// where names a rule in errors: its position, name and line.
func ruleWhere(i int, r *Rule) string {
	s := fmt.Sprintf("rules[%d]", i)
	if r.Name != "" {
		s += " (name " + r.Name + ")"
	}
	if r.Line > 0 {
		s += fmt.Sprintf(" at line %d", r.Line)
	}
	return s
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkRules checks every rule's shape and returns the checked rules; a
// problem names the rule and its line.
func checkRules(rules []Rule) ([]ruleSpec, Problems) {
	var problems Problems
	specs := make([]ruleSpec, 0, len(rules))
	names := map[string]int{}
	for i := range rules {
		r := &rules[i]
		where := ruleWhere(i, r)
		var p []string
		p = append(p, r.decodeProblems...)
		switch {
		case r.Name == "":
			p = append(p, "name: give the rule a name (letters, digits, - and _)")
		case !ruleName.MatchString(r.Name):
			p = append(p, fmt.Sprintf("name: %q may hold only letters, digits, - and _, at most 64", r.Name))
		default:
			if j, dup := names[r.Name]; dup {
				p = append(p, fmt.Sprintf("name: rules[%d] has the same name", j))
			} else {
				names[r.Name] = i
			}
		}
		spec, more := checkRule(r)
		p = append(p, more...)
		for _, s := range p {
			problems = append(problems, where+": "+s)
		}
		if len(p) == 0 {
			spec.name = r.Name
			specs = append(specs, spec)
		}
	}
	return specs, problems
}

// checkRule checks one rule's condition and action.
func checkRule(r *Rule) (ruleSpec, []string) {
	var spec ruleSpec
	var p []string
	switch {
	case r.Preset != "" && r.When != nil:
		p = append(p, "give preset or when, not both")
	case r.Preset != "":
		pr, ok := presets[r.Preset]
		if !ok {
			p = append(p, fmt.Sprintf("preset: %q is not a preset; the presets are %s", r.Preset, strings.Join(PresetNames(), ", ")))
			break
		}
		m, more := buildMatcher(&pr.when)
		p = append(p, more...)
		spec.match = m
	case r.When != nil:
		m, more := buildMatcher(r.When)
		p = append(p, more...)
		spec.match = m
	default:
		p = append(p, "no condition: give preset (a simulation platform) or when (conditions that must all hold)")
	}
	if spec.match != nil {
		spec.headersOnly = spec.match.headersOnly()
	}
	actions := 0
	if r.Skip != nil {
		actions++
		spec.action = RuleSkip
		spec.category = strings.TrimSpace(r.Skip.Category)
		spec.sim = r.Preset != ""
		if r.Skip.Simulation != nil {
			spec.sim = *r.Skip.Simulation
		}
	}
	if r.Set != nil {
		actions++
		spec.action, spec.set = RuleSet, r.Set
		if len(r.Set) == 0 {
			p = append(p, "set: name at least one field and its value")
		}
	}
	if r.Tag != nil {
		actions++
		spec.action, spec.tag = RuleTag, r.Tag
		if len(r.Tag) == 0 {
			p = append(p, "tag: name at least one field and the value to add")
		}
	}
	switch {
	case actions == 0 && r.Preset != "":
		spec.action, spec.sim = RuleSkip, true
	case actions == 0:
		p = append(p, "no action: give one of skip, set or tag")
	case actions > 1:
		p = append(p, "give one action: skip, set or tag")
	}
	if spec.action == RuleSkip {
		if spec.category == "" && spec.sim {
			spec.category = DefaultSimulationCategory
		}
		if msg := checkCategory(spec.category); msg != "" {
			p = append(p, "skip.category: "+msg)
		}
	}
	return spec, p
}

// maxCategory bounds a write-back category, in characters.
const maxCategory = 255

// checkCategory describes what is wrong with a write-back category, or
// returns "".
func checkCategory(c string) string {
	switch {
	case c == "":
		return "name the category written back to the reported message (e.g. Skipped)"
	case utf8.RuneCountInString(c) > maxCategory:
		return fmt.Sprintf("at most %d characters", maxCategory)
	case strings.ContainsFunc(c, unicode.IsControl):
		return "a category is one line without control characters"
	}
	return ""
}

// matcher is a rule's checked conditions.
type matcher struct {
	headers         []headerMatch
	senders         []string // lower case
	senderDomains   []string // lower case, no leading or trailing dot
	reporters       []string
	reporterDomains []string
	auth            [4][]string // spf, dkim, dmarc, compauth; lower case
	signals         []signalField
	campaignKeys    []string
}

type headerMatch struct {
	name     string // lower case
	label    string // as the rule writes it
	equals   *string
	contains *string // lower case
	re       *regexp.Regexp
}

type signalField struct {
	name  string
	index []int
	flag  bool
}

// buildMatcher checks conditions and compiles them.
func buildMatcher(w *When) (*matcher, []string) {
	m := &matcher{}
	var p []string
	conditions := 0
	for i, h := range w.Headers {
		where := fmt.Sprintf("when.headers[%d]", i)
		hm := headerMatch{name: strings.ToLower(strings.TrimSpace(h.Name)), label: strings.TrimSpace(h.Name)}
		conditions++
		if !validHeaderName(hm.name) {
			p = append(p, fmt.Sprintf("%s.name: %q is not a header name", where, h.Name))
		}
		ops := 0
		if h.Equals != nil {
			ops++
			v := strings.TrimSpace(*h.Equals)
			hm.equals = &v
		}
		if h.Contains != nil {
			ops++
			v := strings.ToLower(strings.TrimSpace(*h.Contains))
			hm.contains = &v
			if v == "" {
				p = append(p, where+".contains: give the text to look for (no operator checks the header's presence)")
			}
		}
		if h.Matches != nil {
			ops++
			re, err := regexp.Compile(*h.Matches)
			if err != nil {
				p = append(p, fmt.Sprintf("%s.matches: %v", where, err))
			}
			hm.re = re
		}
		if ops > 1 {
			p = append(p, where+": give at most one of equals, contains, matches")
		}
		m.headers = append(m.headers, hm)
	}
	addresses := func(key string, in []string) []string {
		var out []string
		for _, a := range in {
			a = strings.ToLower(strings.TrimSpace(a))
			if at := strings.LastIndexByte(a, '@'); at <= 0 || at == len(a)-1 {
				p = append(p, fmt.Sprintf("when.%s: %q is not an e-mail address", key, a))
			}
			out = append(out, a)
		}
		return out
	}
	domains := func(key string, in []string) []string {
		var out []string
		for _, d := range in {
			d = strings.Trim(strings.ToLower(strings.TrimSpace(d)), ".")
			if d == "" || strings.ContainsAny(d, "@ /") {
				p = append(p, fmt.Sprintf("when.%s: %q is not a domain", key, d))
			}
			out = append(out, d)
		}
		return out
	}
	m.senders = addresses("sender", w.Sender)
	m.senderDomains = domains("sender_domain", w.SenderDomain)
	m.reporters = addresses("reporter", w.Reporter)
	m.reporterDomains = domains("reporter_domain", w.ReporterDomain)
	conditions += len(w.Sender) + len(w.SenderDomain) + len(w.Reporter) + len(w.ReporterDomain)
	if a := w.Auth; a != nil {
		for i, vals := range [4]StringList{a.SPF, a.DKIM, a.DMARC, a.CompAuth} {
			for _, v := range vals {
				v = strings.ToLower(strings.TrimSpace(v))
				if v == "" {
					p = append(p, "when.auth: a verdict is a word such as pass, fail, softfail or none")
				}
				m.auth[i] = append(m.auth[i], v)
			}
			conditions += len(vals)
		}
		if len(a.SPF)+len(a.DKIM)+len(a.DMARC)+len(a.CompAuth) == 0 {
			p = append(p, "when.auth: give at least one of spf, dkim, dmarc, compauth")
		}
	}
	for _, name := range w.Signals {
		f, ok := lookupSignal(strings.TrimSpace(name))
		if !ok {
			p = append(p, fmt.Sprintf("when.signals: %q is not a flag or count of the signals; they are %s", name, strings.Join(signalNames(), ", ")))
			continue
		}
		m.signals = append(m.signals, f)
	}
	conditions += len(w.Signals)
	for _, k := range w.CampaignKey {
		if k = strings.TrimSpace(k); k == "" {
			p = append(p, "when.campaign_key: a key is not empty")
		}
		m.campaignKeys = append(m.campaignKeys, k)
	}
	conditions += len(w.CampaignKey)
	if conditions == 0 && len(p) == 0 {
		p = append(p, "when: give at least one condition ("+strings.Join(whenKeys, ", ")+")")
	}
	return m, p
}

// validHeaderName reports whether s is a header field name: printable
// ASCII without colon or space.
func validHeaderName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

var signalsType = reflect.TypeFor[email.Signals]()

// lookupSignal finds a flag or count of email.Signals by its Go name
// (AuthFailed) or its JSON name (auth_failed).
func lookupSignal(name string) (signalField, bool) {
	usable := func(f reflect.StructField) (signalField, bool) {
		switch f.Type.Kind() {
		case reflect.Bool:
			return signalField{name: f.Name, index: f.Index, flag: true}, true
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return signalField{name: f.Name, index: f.Index}, true
		}
		return signalField{}, false
	}
	if f, ok := signalsType.FieldByName(name); ok && f.IsExported() {
		return usable(f)
	}
	for i := range signalsType.NumField() {
		f := signalsType.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name && f.IsExported() {
			return usable(f)
		}
	}
	return signalField{}, false
}

// signalNames lists the signals a rule may name, sorted.
func signalNames() []string {
	var out []string
	for i := range signalsType.NumField() {
		if f, ok := lookupSignal(signalsType.Field(i).Name); ok {
			out = append(out, f.name)
		}
	}
	sort.Strings(out)
	return out
}

// headersOnly reports whether the matcher checks nothing but the presence
// of headers.
func (m *matcher) headersOnly() bool {
	if len(m.headers) == 0 || len(m.senders)+len(m.senderDomains)+len(m.reporters)+len(m.reporterDomains)+
		len(m.auth[0])+len(m.auth[1])+len(m.auth[2])+len(m.auth[3])+len(m.signals)+len(m.campaignKeys) > 0 {
		return false
	}
	for _, h := range m.headers {
		if h.equals != nil || h.contains != nil || h.re != nil {
			return false
		}
	}
	return true
}

// match reports whether every condition holds for rep. A header condition
// examines at most maxHeaderBytesExamined of its header's values, and its
// work is linear in them: regular expressions are RE2.
func (m *matcher) match(rep *email.Report, campaignKeys []string) bool {
	s := rep.Suspect
	needSuspect := len(m.headers)+len(m.senders)+len(m.senderDomains)+len(m.signals)+
		len(m.auth[0])+len(m.auth[1])+len(m.auth[2])+len(m.auth[3]) > 0
	if s == nil && needSuspect {
		return false
	}
	for _, h := range m.headers {
		if !h.match(s.Headers) {
			return false
		}
	}
	if s != nil {
		from := strings.ToLower(strings.TrimSpace(s.From.Address))
		if len(m.senders) > 0 && !slices.Contains(m.senders, from) {
			return false
		}
		if len(m.senderDomains) > 0 && !inDomains(from, m.senderDomains) {
			return false
		}
		for i, got := range [4]string{s.Auth.SPF, s.Auth.DKIM, s.Auth.DMARC, s.Auth.CompAuth} {
			if len(m.auth[i]) > 0 && !slices.Contains(m.auth[i], strings.ToLower(strings.TrimSpace(got))) {
				return false
			}
		}
		if len(m.signals) > 0 {
			v := reflect.ValueOf(&s.Signals).Elem()
			for _, f := range m.signals {
				fv := v.FieldByIndex(f.index)
				if f.flag && !fv.Bool() || !f.flag && fv.Int() <= 0 {
					return false
				}
			}
		}
	}
	reporter := strings.ToLower(strings.TrimSpace(rep.Reporter.Address))
	if len(m.reporters) > 0 && !slices.Contains(m.reporters, reporter) {
		return false
	}
	if len(m.reporterDomains) > 0 && !inDomains(reporter, m.reporterDomains) {
		return false
	}
	if len(m.campaignKeys) > 0 && !slices.ContainsFunc(campaignKeys, func(k string) bool { return slices.Contains(m.campaignKeys, k) }) {
		return false
	}
	return true
}

// inDomains reports whether the domain of addr (lower case) is one of
// domains or below one.
func inDomains(addr string, domains []string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	d := strings.TrimSuffix(addr[at+1:], ".")
	if d == "" {
		return false
	}
	for _, want := range domains {
		if d == want || strings.HasSuffix(d, "."+want) {
			return true
		}
	}
	return false
}

// maxHeaderBytesExamined bounds the bytes of one header's values that a
// header condition examines: the values of a header repeated many times
// are read up to it, in order.
const maxHeaderBytesExamined = 64 << 10

// match reports whether one of the header's values satisfies the
// condition, looking at no more values and bytes than the model keeps
// (each value's first email.MaxHeaderValueBytes) and at most
// maxHeaderBytesExamined in all.
func (h headerMatch) match(headers map[string][]string) bool {
	vals, ok := headers[h.name]
	if !ok {
		return false
	}
	if h.equals == nil && h.contains == nil && h.re == nil {
		return true
	}
	budget := maxHeaderBytesExamined
	for _, v := range vals {
		if budget <= 0 {
			break
		}
		if len(v) > email.MaxHeaderValueBytes {
			v = v[:email.MaxHeaderValueBytes]
		}
		if len(v) > budget {
			v = v[:budget]
		}
		budget -= max(len(v), 1)
		switch {
		case h.equals != nil:
			if strings.EqualFold(strings.TrimSpace(v), *h.equals) {
				return true
			}
		case h.contains != nil:
			if strings.Contains(strings.ToLower(v), *h.contains) {
				return true
			}
		case h.re.MatchString(v):
			return true
		}
	}
	return false
}

// compiledRule is a rule resolved against Archer.
type compiledRule struct {
	ruleSpec
	set []compiledField // literals
	tag []compiledField // literals: text or values-list ids
}

// compileRules checks the rules and resolves the fields of set and tag
// against the level, as a field's value is resolved. It returns warnings
// for rules that skip on a header any sender can add.
func (m *Mapping) compileRules(ctx context.Context, meta Metadata, c *Compiled) ([]compiledRule, []string, Problems) {
	specs, problems := checkRules(m.Rules)
	if len(problems) > 0 {
		return nil, nil, problems
	}
	reserved := map[int64]string{c.KeyField.ID: "the key field"}
	if cc := c.Campaign; cc != nil {
		for _, f := range []archer.Field{cc.count, cc.reporters, cc.latest} {
			if f.ID != 0 {
				reserved[f.ID] = "filled by the campaign"
			}
		}
	}
	mapped := map[int64]compiledField{}
	for _, cf := range c.fields {
		mapped[cf.field.ID] = cf
	}
	var warnings []string
	out := make([]compiledRule, 0, len(specs))
	for i, spec := range specs {
		cr := compiledRule{ruleSpec: spec}
		where := ruleWhere(i, &m.Rules[i])
		if spec.action == RuleSkip && spec.headersOnly {
			warnings = append(warnings, fmt.Sprintf("%s skips every report whose original carries %s, a header any sender can add: "+
				"a phish carrying it becomes no incident; match the header's value your platform sets, or add sender_domain or auth conditions",
				where, headerList(spec.match)))
		}
		resolve := func(action string, literals map[string]any) []compiledField {
			var fields []compiledField
			for _, name := range sortedKeys(literals) {
				w := fmt.Sprintf("%s: %s.%s", where, action, name)
				f, ok := c.Level.FieldByName(name)
				if !ok {
					problems = append(problems, unknownField(fmt.Sprintf("%s: %s", where, action), name, c.Level))
					continue
				}
				if why, ok := reserved[f.ID]; ok {
					problems = append(problems, fmt.Sprintf("%s: %q is %s; a rule cannot change it", w, f.Name, why))
					continue
				}
				v := literals[name]
				if action == RuleTag && f.Type != archer.FieldText && f.Type != archer.FieldValuesList {
					problems = append(problems, fmt.Sprintf("%s: tag adds to text and values-list fields; %q is a %s field: use set", w, f.Name, f.Type))
					continue
				}
				if s, isText := v.(string); v == nil || isText && strings.TrimSpace(s) == "" {
					problems = append(problems, fmt.Sprintf("%s: give a value", w))
					continue
				}
				cf, errs := compileField(ctx, meta, w, f, Field{Value: v}, Funcs())
				if len(errs) > 0 {
					problems = append(problems, errs...)
					continue
				}
				if prev, ok := mapped[f.ID]; ok && f.Type == archer.FieldText {
					cf.mode = prev.mode // written as the mapping writes the field
				}
				fields = append(fields, cf)
			}
			return fields
		}
		cr.set = resolve(RuleSet, spec.set)
		cr.tag = resolve(RuleTag, spec.tag)
		out = append(out, cr)
	}
	if len(problems) > 0 {
		return nil, nil, problems
	}
	return out, warnings, nil
}

// headerList names the headers a matcher checks.
func headerList(m *matcher) string {
	names := make([]string, 0, len(m.headers))
	for _, h := range m.headers {
		names = append(names, h.label)
	}
	return strings.Join(names, ", ")
}

// RuleMatch is the rule that decided a report.
type RuleMatch struct {
	// Name is the rule's name.
	Name string
	// Action is RuleSkip, RuleSet or RuleTag.
	Action string
	// Skip is true when no incident is to be created.
	Skip bool
	// Category is the category a skip rule writes back to the reported
	// message.
	Category string
	// Simulation is true for a skip rule that marks a simulation: the
	// simulation acknowledgment applies.
	Simulation bool
}

// MatchRules evaluates the rules in order on a report and returns the
// first whose conditions all hold; false when none does. campaignKeys are
// the report's campaign keys (package campaign), for campaign_key
// conditions. It is safe for concurrent use, and its work is bounded by
// the size of the model whatever the email holds.
func (c *Compiled) MatchRules(rep *email.Report, campaignKeys []string) (*RuleMatch, bool) {
	if rep == nil {
		return nil, false
	}
	for i := range c.rules {
		r := &c.rules[i]
		if r.match.match(rep, campaignKeys) {
			return &RuleMatch{Name: r.name, Action: r.action, Skip: r.action == RuleSkip,
				Category: r.category, Simulation: r.action == RuleSkip && r.sim}, true
		}
	}
	return nil, false
}

// RuleNames lists the rules' names in order, for metrics.
func (c *Compiled) RuleNames() []string {
	out := make([]string, 0, len(c.rules))
	for _, r := range c.rules {
		out = append(out, r.name)
	}
	return out
}

// ApplyRule applies the set or tag rule called name to a rendered incident:
// set replaces the named fields' values, tag adds its value to a
// values-list field's values or a line to a text field. Other fields are
// untouched. A skip rule has no incident to change: an error.
func (c *Compiled) ApplyRule(inc *Incident, name string) error {
	i := slices.IndexFunc(c.rules, func(r compiledRule) bool { return r.name == name })
	if i < 0 {
		return fmt.Errorf("apply rule %q: no such rule", name)
	}
	r := &c.rules[i]
	if inc == nil || inc.Record == nil {
		return fmt.Errorf("apply rule %q: no incident", name)
	}
	switch r.action {
	case RuleSet:
		for _, cf := range r.set {
			switch cf.field.Type {
			case archer.FieldNumeric:
				inc.Record.Numeric(cf.field, cf.number)
			case archer.FieldValuesList:
				inc.Record.ValuesList(cf.field, cf.ids, "")
			default:
				if err := cf.fill(inc.Record, []piece{{s: cf.text}}); err != nil {
					return fmt.Errorf("apply rule %q: field %q: %w", name, cf.field.Name, err)
				}
			}
		}
	case RuleTag:
		for _, cf := range r.tag {
			if err := tagField(inc.Record, cf); err != nil {
				return fmt.Errorf("apply rule %q: field %q: %w", name, cf.field.Name, err)
			}
		}
	default:
		return fmt.Errorf("apply rule %q: a %s rule creates no incident", name, r.action)
	}
	if err := inc.Record.Err(); err != nil {
		return fmt.Errorf("apply rule %q: %w", name, err)
	}
	return nil
}

// tagField adds a tag's values-list ids to those the field has, or its
// text as a new line of the field's text (a space in a single-line
// field), unless the field already holds it.
func tagField(rec *archer.Record, cf compiledField) error {
	if cf.field.Type == archer.FieldValuesList {
		ids, err := valuesListIDs(rec, cf.field)
		if err != nil {
			return err
		}
		for _, id := range cf.ids {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		rec.ValuesList(cf.field, ids, "")
		return nil
	}
	add := escapeText([]piece{{s: cf.text}}, cf.mode)
	had, _ := rec.TextValue(cf.field)
	var text string
	switch {
	case had == "":
		text = add
	case cf.mode.kind == kindPlain:
		text = had
		if had != add && !strings.HasPrefix(had, add+" ") && !strings.HasSuffix(had, " "+add) && !strings.Contains(had, " "+add+" ") {
			text = had + " " + add
		}
	default:
		text = mergeLines(had, add)
	}
	rec.Text(cf.field, text)
	return nil
}

// valuesListIDs reads the value ids a record sets in a values-list field,
// from the record's create body.
func valuesListIDs(rec *archer.Record, f archer.Field) ([]int64, error) {
	if !rec.Has(f) {
		return nil, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("read the record: %w", err)
	}
	var wire struct {
		Content struct {
			FieldContents map[string]struct{ Value json.RawMessage }
		}
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		return nil, fmt.Errorf("read the record: %w", err)
	}
	var v struct {
		IDs []int64 `json:"ValuesListIds"`
	}
	if err := json.Unmarshal(wire.Content.FieldContents[strconv.FormatInt(f.ID, 10)].Value, &v); err != nil {
		return nil, fmt.Errorf("read the values of %q: %w", f.Name, err)
	}
	return v.IDs, nil
}
