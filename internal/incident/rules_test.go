package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/internal/email"
)

// ruleBase is a mapping whose rules section starts on line 5.
const ruleBase = "application: A\nkey: {field: K}\nfields: {T: {value: x}}\nrules:\n"

func TestParseReportsRuleProblemsWithTheirRuleAndLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, rules string
		want        []string
	}{
		{"unknown key in a rule", "  - name: a\n    preset: knowbe4\n    colour: red\n",
			[]string{`rules[0] (name a) at line 5: colour (line 7): unknown key; the keys are name, preset, when, skip, set, tag`}},
		{"unknown key in when", "  - name: a\n    when:\n      sender_domians: [x.example]\n    skip: {category: X}\n",
			[]string{`rules[0] (name a) at line 5: when.sender_domians (line 7): unknown key`}},
		{"unknown key in a header condition", "  - name: a\n    when: {headers: [{name: X-A, equal: b}]}\n    skip: {category: X}\n",
			[]string{`rules[0] (name a) at line 5: when.headers[0].equal (line 6): unknown key; the keys are name, equals, contains, matches`}},
		{"unknown key in auth", "  - name: a\n    when: {auth: {arc: pass}}\n    skip: {category: X}\n",
			[]string{`when.auth.arc (line 6): unknown key`, `when.auth: give at least one of spf, dkim, dmarc, compauth`}},
		{"unknown key in skip", "  - name: a\n    preset: knowbe4\n    skip: {categori: X}\n",
			[]string{`rules[0] (name a) at line 5: skip.categori (line 7): unknown key`}},
		{"a key given twice", "  - name: a\n    preset: knowbe4\n    name: b\n",
			[]string{`name (line 7): given twice`}},
		{"no condition", "  - name: a\n    skip: {category: X}\n", []string{`rules[0] (name a) at line 5: no condition`}},
		{"empty when", "  - name: a\n    when: {}\n    skip: {category: X}\n", []string{`rules[0] (name a) at line 5: when: give at least one condition`}},
		{"preset and when", "  - name: a\n    preset: knowbe4\n    when: {sender: [a@b.example]}\n", []string{`give preset or when, not both`}},
		{"two actions", "  - name: a\n    when: {sender: [a@b.example]}\n    skip: {category: X}\n    set: {T: y}\n",
			[]string{`rules[0] (name a) at line 5: give one action: skip, set or tag`}},
		{"no action", "  - name: a\n    when: {sender: [a@b.example]}\n", []string{`no action: give one of skip, set or tag`}},
		{"empty set", "  - name: a\n    when: {sender: [a@b.example]}\n    set: {}\n", []string{`set: name at least one field`}},
		{"unknown preset", "  - name: a\n    preset: knowbe5\n", []string{`preset: "knowbe5" is not a preset; the presets are knowbe4`}},
		{"bad regular expression", "  - name: a\n    when: {headers: [{name: X-A, matches: '(['}]}\n    skip: {category: X}\n",
			[]string{`rules[0] (name a) at line 5: when.headers[0].matches: error parsing regexp`}},
		{"two operators", "  - name: a\n    when: {headers: [{name: X-A, equals: b, contains: c}]}\n    skip: {category: X}\n",
			[]string{`when.headers[0]: give at most one of equals, contains, matches`}},
		{"bad header name", "  - name: a\n    when: {headers: [{name: 'X A:'}]}\n    skip: {category: X}\n",
			[]string{`when.headers[0].name: "X A:" is not a header name`}},
		{"headers not a list", "  - name: a\n    when: {headers: X-PHISHTEST}\n    skip: {category: X}\n",
			[]string{`rules[0] (name a) at line 5: when: line 6: cannot unmarshal`}},
		{"unknown signal", "  - name: a\n    when: {signals: [AuthFail]}\n    skip: {category: X}\n",
			[]string{`when.signals: "AuthFail" is not a flag or count of the signals; they are `, "AuthFailed"}},
		{"a text signal", "  - name: a\n    when: {signals: [Lookalike]}\n    skip: {category: X}\n",
			[]string{`when.signals: "Lookalike" is not a flag or count`}},
		{"not an address", "  - name: a\n    when: {sender: [knowbe4.com]}\n    skip: {category: X}\n",
			[]string{`when.sender: "knowbe4.com" is not an e-mail address`}},
		{"not a domain", "  - name: a\n    when: {reporter_domain: [a@contoso.com]}\n    skip: {category: X}\n",
			[]string{`when.reporter_domain: "a@contoso.com" is not a domain`}},
		{"skip without a category", "  - name: a\n    when: {sender: [a@b.example]}\n    skip: {}\n",
			[]string{`skip.category: name the category written back`}},
		{"category on two lines", "  - name: a\n    when: {sender: [a@b.example]}\n    skip: {category: \"a\\nb\"}\n",
			[]string{`skip.category: a category is one line`}},
		{"no name", "  - preset: knowbe4\n", []string{`rules[0] at line 5: name: give the rule a name`}},
		{"bad name", "  - name: my rule!\n    preset: knowbe4\n", []string{`rules[0] (name my rule!) at line 5: name: "my rule!" may hold only letters, digits, - and _`}},
		{"a rule that is not a mapping", "  - knowbe4\n", []string{`rules[0] at line 5: a rule is a mapping`}},
		{"same name twice, third rule's line", "  - name: a\n    preset: knowbe4\n  - name: b\n    preset: knowbe4\n  - name: a\n    preset: knowbe4\n",
			[]string{`rules[2] (name a) at line 9: name: rules[0] has the same name`}},
		{"every rule's problems at once", "  - name: a\n    preset: nope\n  - name: b\n    when: {signals: [Nope]}\n    skip: {category: X}\n",
			[]string{`rules[0] (name a) at line 5: preset: "nope"`, `rules[1] (name b) at line 7: when.signals: "Nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(ruleBase + tt.rules))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseAcceptsRules(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte(ruleBase + `  - name: knowbe4
    preset: knowbe4
  - name: own-platform
    when:
      headers:
        - {name: X-Sim-Token, equals: s3cr3t}
        - {name: X-Sim-Campaign}
      sender_domain: sim.example
      auth: {dmarc: [pass, bestguesspass]}
      signals: [auth_failed, URLs]
    skip: {category: Phish test, simulation: true}
  - name: vip
    when: {reporter: [ceo@contoso.com]}
    set: {T: VIP}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rules) != 3 || m.Rules[1].Line != 7 || m.Rules[2].Line != 16 {
		t.Fatalf("rules %+v", m.Rules)
	}
	if got := m.Rules[1].When.SenderDomain; len(got) != 1 || got[0] != "sim.example" {
		t.Errorf("a single string is a list of one: %q", got)
	}
	// The rules survive a round trip through YAML (the bench writes the
	// example mapping back).
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, b)
	}
	if len(again.Rules) != 3 || again.Rules[1].When.Headers[0].Equals == nil || *again.Rules[1].When.Headers[0].Equals != "s3cr3t" {
		t.Errorf("round trip lost the rules:\n%s", b)
	}
}

// rulesOnly parses rules and compiles them without Archer: enough for
// MatchRules, which needs no field.
func rulesOnly(t *testing.T, rules string) *Compiled {
	t.Helper()
	m, err := Parse([]byte(ruleBase + rules))
	if err != nil {
		t.Fatal(err)
	}
	specs, problems := checkRules(m.Rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	c := &Compiled{}
	for _, s := range specs {
		c.rules = append(c.rules, compiledRule{ruleSpec: s})
	}
	return c
}

func ruleReport() *email.Report {
	rep := report()
	rep.Suspect.Headers = map[string][]string{
		"x-phishtest": {"  KB4-Account-1234 "},
		"received":    {"from a", "from b"},
		"x-sim":       {"first", "second-match"},
	}
	rep.Suspect.Auth = email.Auth{SPF: "pass", DKIM: "none", DMARC: "FAIL", CompAuth: "softfail", SCL: -1, BCL: -1, PCL: -1}
	rep.Suspect.From.Address = "Alerts@Mail.KnowBe4.com"
	rep.Suspect.Signals = email.Signals{SCL: -1, BCL: -1, PCL: -1, AuthFailed: true, URLs: 2}
	return rep
}

func TestMatchRulesEvaluatesEveryCondition(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", email.MaxHeaderValueBytes) + "needle"
	// Values of 1 KiB: the 64th is the last examined.
	many := make([]string, 100)
	for i := range many {
		many[i] = strings.Repeat("h", 1024)
	}
	many[70] = "needle"
	tests := []struct {
		name string
		when string
		edit func(*email.Report)
		keys []string
		want bool
	}{
		{"header present", "headers: [{name: X-PHISHTEST}]", nil, nil, true},
		{"header names ignore case", "headers: [{name: x-PhishTest}]", nil, nil, true},
		{"header absent", "headers: [{name: X-Other}]", nil, nil, false},
		{"equals ignores case and spaces", "headers: [{name: X-PHISHTEST, equals: ' kb4-account-1234'}]", nil, nil, true},
		{"equals is not contains", "headers: [{name: X-PHISHTEST, equals: kb4}]", nil, nil, false},
		{"contains ignores case", "headers: [{name: X-PHISHTEST, contains: ACCOUNT-12}]", nil, nil, true},
		{"matches is applied as written", "headers: [{name: X-PHISHTEST, matches: '^kb4-'}]", nil, nil, false},
		{"matches with (?i)", "headers: [{name: X-PHISHTEST, matches: '(?i)^\\s*kb4-account-[0-9]+'}]", nil, nil, true},
		{"any occurrence suffices", "headers: [{name: X-Sim, equals: second-match}]", nil, nil, true},
		{"no occurrence matches", "headers: [{name: X-Sim, contains: third}]", nil, nil, false},
		{"every header condition must hold", "headers: [{name: X-PHISHTEST}, {name: X-Other}]", nil, nil, false},
		{"bytes past the bound are not examined", "headers: [{name: X-Long, contains: needle}]",
			func(r *email.Report) { r.Suspect.Headers["x-long"] = []string{long} }, nil, false},
		{"values past the byte budget are not examined", "headers: [{name: X-Many, equals: needle}]",
			func(r *email.Report) { r.Suspect.Headers["x-many"] = many }, nil, false},
		{"a value within the bounds is", "headers: [{name: X-Many, equals: needle}]",
			func(r *email.Report) {
				many := append([]string(nil), many...)
				many[60] = "needle"
				r.Suspect.Headers["x-many"] = many
			}, nil, true},
		{"a hostile value against a nested repeat", "headers: [{name: X-Long, matches: '(a+)+$'}]",
			func(r *email.Report) { r.Suspect.Headers["x-long"] = []string{strings.Repeat("a", 4000) + "!"} }, nil, false},
		{"no headers at all", "headers: [{name: X-PHISHTEST}]", func(r *email.Report) { r.Suspect.Headers = nil }, nil, false},
		{"sender ignores case", "sender: [alerts@mail.knowbe4.com]", nil, nil, true},
		{"sender is the whole address", "sender: [mail.knowbe4.com@x.example]", nil, nil, false},
		{"sender domain matches subdomains", "sender_domain: [knowbe4.com]", nil, nil, true},
		{"sender domain matches itself", "sender_domain: [MAIL.knowbe4.com.]", nil, nil, true},
		{"sender domain is not a suffix of a word", "sender_domain: [owbe4.com]", nil, nil, false},
		{"reporter", "reporter: [AdeleV@contoso.com]", nil, nil, true},
		{"reporter domain", "reporter_domain: [contoso.com]", nil, nil, true},
		{"another reporter domain", "reporter_domain: [fabrikam.com]", nil, nil, false},
		{"auth verdicts ignore case", "auth: {dmarc: fail, spf: [softfail, pass]}", nil, nil, true},
		{"auth verdict differs", "auth: {compauth: fail}", nil, nil, false},
		{"a true flag", "signals: [AuthFailed]", nil, nil, true},
		{"a false flag", "signals: [DisplayNameSpoof]", nil, nil, false},
		{"a count above 0, by its JSON name", "signals: [urls]", nil, nil, true},
		{"a level of -1 is not above 0", "signals: [SCL]", nil, nil, false},
		{"campaign key", "campaign_key: ['fp:abc', 'mid:x@y']", nil, []string{"mid:x@y"}, true},
		{"campaign keys are exact", "campaign_key: ['MID:x@y']", nil, []string{"mid:x@y"}, false},
		{"no campaign keys", "campaign_key: ['mid:x@y']", nil, nil, false},
		{"all conditions must hold", "sender_domain: [knowbe4.com]\n      signals: [DisplayNameSpoof]", nil, nil, false},
		{"no suspect: reporter conditions still hold", "reporter_domain: [contoso.com]", func(r *email.Report) { r.Suspect = nil }, nil, true},
		{"no suspect: header conditions do not", "headers: [{name: X-PHISHTEST}]", func(r *email.Report) { r.Suspect = nil }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rulesOnly(t, "  - name: r\n    when:\n      "+tt.when+"\n    skip: {category: Skipped}\n")
			rep := ruleReport()
			if tt.edit != nil {
				tt.edit(rep)
			}
			got, ok := c.MatchRules(rep, tt.keys)
			if ok != tt.want {
				t.Fatalf("match = %v, want %v", ok, tt.want)
			}
			if ok && (got.Name != "r" || !got.Skip || got.Category != "Skipped" || got.Simulation || got.Action != RuleSkip) {
				t.Errorf("match %+v", got)
			}
		})
	}
}

func TestMatchRulesFirstMatchWins(t *testing.T) {
	t.Parallel()
	c := rulesOnly(t, `  - name: never
    when: {sender: [nobody@nowhere.example]}
    skip: {category: X}
  - name: knowbe4
    preset: knowbe4
  - name: renamed
    preset: knowbe4
    skip: {category: Phish test}
  - name: raise
    when: {signals: [AuthFailed]}
    set: {T: y}
`)
	got, ok := c.MatchRules(ruleReport(), nil)
	if !ok || *got != (RuleMatch{Name: "knowbe4", Action: RuleSkip, Skip: true, Category: "Simulation", Simulation: true}) {
		t.Errorf("match %+v, %v", got, ok)
	}
	rep := ruleReport()
	delete(rep.Suspect.Headers, "x-phishtest")
	if got, ok = c.MatchRules(rep, nil); !ok || *got != (RuleMatch{Name: "raise", Action: RuleSet}) {
		t.Errorf("without the header: %+v, %v", got, ok)
	}
	if _, ok := c.MatchRules(nil, nil); ok {
		t.Error("a nil report matched")
	}
	c.rules = c.rules[2:3]
	if got, ok = c.MatchRules(ruleReport(), nil); !ok || got.Category != "Phish test" || !got.Simulation {
		t.Errorf("a preset rule keeps simulation when it renames the category: %+v", got)
	}
	if names := rulesOnly(t, "  - name: b\n    preset: knowbe4\n  - name: a\n    preset: knowbe4\n").RuleNames(); strings.Join(names, ",") != "b,a" {
		t.Errorf("RuleNames %q, want the mapping's order", names)
	}
}

// ruleMapping maps the sandbox application with rules that set and tag.
const ruleMapping = `
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Title: {format: plain, template: "Reported: {{.Suspect.Subject}}"}
  Incident Description: {template: "{{.Suspect.Subject}}"}
  Incident Category: {value: Phishing}
  Criticality SOC: {value: Low}
  Source: {value: Email}
  SIEM Name: {format: plain, value: mail2archer}
  Observables: {template: "{{range .Suspect.Observables.Domains}}{{.}}\n{{end}}"}
rules:
  - name: raise
    when: {signals: [RiskyAttachments]}
    set:
      Criticality SOC: Critical
      Incident Category: Malware
      SIEM Name: "forced <by rule>"
      Attachment Count: 7
  - name: mark
    when: {reporter_domain: [contoso.com]}
    tag:
      Source: User Report
      Incident Description: "Tagged by rule: <b>simulation</b>"
      SIEM Name: sim
  - name: skip-it
    preset: knowbe4
`

// recordFields returns each field's JSON value in a record, by name.
func recordFields(t *testing.T, inc *Incident) map[string]string {
	t.Helper()
	b, err := json.Marshal(inc.Record)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Content struct {
			FieldContents map[string]struct {
				Tag   string
				Value json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, fc := range wire.Content.FieldContents {
		out[fc.Tag] = string(fc.Value)
	}
	return out
}

func TestApplyRuleChangesExactlyTheNamedFields(t *testing.T) {
	t.Parallel()
	c := compileYAML(t, ruleMapping)
	tests := []struct {
		rule string
		want map[string]string
	}{
		{"raise", map[string]string{
			"Criticality SOC":   `{"ValuesListIds":[401004],"OtherText":null}`,
			"Incident Category": `{"ValuesListIds":[201701],"OtherText":null}`,
			"SIEM Name":         `"forced \u003cby rule\u003e"`,
			"Attachment Count":  `7`,
		}},
		{"mark", map[string]string{
			"Source":               `{"ValuesListIds":[301001,301002],"OtherText":null}`,
			"Incident Description": `"Your mailbox is full\u003cbr\u003eTagged by rule: \u0026lt;b\u0026gt;simulation\u0026lt;/b\u0026gt;"`,
			"SIEM Name":            `"mail2archer sim"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			t.Parallel()
			inc, err := c.Render(report(), nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			before := recordFields(t, inc)
			if err := c.ApplyRule(inc, tt.rule); err != nil {
				t.Fatal(err)
			}
			after := recordFields(t, inc)
			for name, v := range after {
				want, named := tt.want[name]
				switch {
				case named && v != want:
					t.Errorf("%s = %s, want %s", name, v, want)
				case !named && v != before[name]:
					t.Errorf("%s changed from %s to %s, but the rule does not name it", name, before[name], v)
				}
			}
			for name := range tt.want {
				if _, ok := after[name]; !ok {
					t.Errorf("%s not set", name)
				}
			}
			for name := range before {
				if _, ok := after[name]; !ok {
					t.Errorf("%s was removed", name)
				}
			}
			// Applying a rule twice changes nothing more: a tag already
			// there is not added again.
			if err := c.ApplyRule(inc, tt.rule); err != nil {
				t.Fatal(err)
			}
			if again := recordFields(t, inc); fmt.Sprint(again) != fmt.Sprint(after) {
				t.Errorf("applied twice:\n%v\nonce:\n%v", again, after)
			}
		})
	}
	inc, err := c.Render(report(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyRule(inc, "skip-it"); err == nil || !strings.Contains(err.Error(), "creates no incident") {
		t.Errorf("a skip rule applied: %v", err)
	}
	if err := c.ApplyRule(inc, "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("an unknown rule applied: %v", err)
	}
}

// TestTagAddsToAFieldTheRecordLacks tags fields the rendering left empty.
func TestTagAddsToAFieldTheRecordLacks(t *testing.T) {
	t.Parallel()
	c := compileYAML(t, `
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Title: {template: x}
  Incident Description: {template: x}
  Incident Category: {value: Phishing}
rules:
  - name: t
    when: {reporter_domain: [contoso.com]}
    tag: {Source: [Email, User Report], Observables: "line <1>"}
`)
	inc, err := c.Render(report(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyRule(inc, "t"); err != nil {
		t.Fatal(err)
	}
	got := recordFields(t, inc)
	if got["Source"] != `{"ValuesListIds":[301001,301002],"OtherText":null}` || got["Observables"] != `"line \u0026lt;1\u0026gt;"` {
		t.Errorf("fields %v", got)
	}
}

func TestCompileResolvesRuleFieldsAgainstArcher(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte(`
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Title: {template: x}
  Incident Description: {template: x}
  Incident Category: {value: Phishing}
campaign: {reporters: Reporters}
rules:
  - name: a
    when: {signals: [AuthFailed]}
    set: {Criticality: High, Incident Category: Severe, Reported Email Key: x, Reporters: y, Source: "  ", Attachment Count: many}
  - name: b
    when: {signals: [AuthFailed]}
    tag: {Attachment Count: 1, Date Reported: "2026-01-01", Criticality SOC: Urgent}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Compile(context.Background(), archerClient(t))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`rules[0] (name a) at line 10: set: "Criticality" is not a field of level "Security Incidents"; did you mean "Criticality SOC"?`,
		`rules[0] (name a) at line 10: set.Incident Category.value: `, `"Severe"`,
		`rules[0] (name a) at line 10: set.Reported Email Key: "Reported Email Key" is the key field; a rule cannot change it`,
		`rules[0] (name a) at line 10: set.Reporters: "Reporters" is filled by the campaign`,
		`rules[0] (name a) at line 10: set.Source: give a value`,
		`set.Attachment Count.value: "Attachment Count" is a numeric field; give a number`,
		`rules[1] (name b) at line 13: tag.Attachment Count: tag adds to text and values-list fields; "Attachment Count" is a numeric field: use set`,
		`rules[1] (name b) at line 13: tag.Date Reported: tag adds to text and values-list fields`,
		`rules[1] (name b) at line 13: tag.Criticality SOC.value: `, `"Urgent"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestCompileWarnsOfSkipRulesOnAHeaderAnySenderCanAdd(t *testing.T) {
	t.Parallel()
	base := "application: Security Incidents\nkey: {field: Reported Email Key}\nfields:\n  Title: {template: x}\n" +
		"  Incident Description: {template: x}\n  Incident Category: {value: Phishing}\nrules:\n"
	tests := []struct {
		rules string
		warn  bool
	}{
		{"  - {name: kb4, preset: knowbe4}\n", true},
		{"  - {name: kb4, when: {headers: [{name: X-PHISHTEST}]}, skip: {category: S}}\n", true},
		{"  - {name: kb4, when: {headers: [{name: X-PHISHTEST, equals: tok}]}, skip: {category: S}}\n", false},
		{"  - {name: kb4, when: {headers: [{name: X-PHISHTEST}], sender_domain: [sim.example]}, skip: {category: S}}\n", false},
		{"  - {name: kb4, when: {headers: [{name: X-PHISHTEST}]}, set: {Title: t}}\n", false},
	}
	for _, tt := range tests {
		c := compileYAML(t, base+tt.rules)
		got := strings.Join(c.Warnings(), "\n")
		if strings.Contains(got, "a header any sender can add") != tt.warn {
			t.Errorf("%s: warnings %q, want a warning: %v", tt.rules, got, tt.warn)
		}
	}
}

func TestRuleAndAckSnippetsMatchTheSchema(t *testing.T) {
	t.Parallel()
	schema, err := jsonschema.NewCompiler().Compile("../../api/mapping.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	base := "application: A\nkey: {field: K}\nfields: {T: {value: x}}\n"
	tests := []struct {
		name, yaml string
		valid      bool
	}{
		{"preset", "rules: [{name: kb4, preset: knowbe4}]", true},
		{"preset, renamed category", "rules: [{name: kb4, preset: knowbe4, skip: {category: Phish test}}]", true},
		{"every condition", `rules:
  - name: all-of-them
    when:
      headers: [{name: X-A}, {name: X-B, equals: v}, {name: X-C, contains: v}, {name: X-D, matches: "(?i)v"}]
      sender: a@b.example
      sender_domain: [b.example]
      reporter: [r@contoso.com]
      reporter_domain: contoso.com
      auth: {spf: pass, dkim: [pass], dmarc: fail, compauth: [fail, softfail]}
      signals: [AuthFailed, urls]
      campaign_key: ["mid:x@y"]
    skip: {category: Skipped, simulation: false}`, true},
		{"set and tag", "rules: [{name: a, when: {sender: [a@b.example]}, set: {Criticality SOC: High, Count: 3}}, {name: b, when: {signals: [URLs]}, tag: {Source: [Email]}}]", true},
		{"ack", "ack: {subject: s, text: t, html: h, simulation: {subject: s, text: t}, skipped: {subject: s, text: t}}", true},
		{"unknown rule key", "rules: [{name: a, preset: knowbe4, colour: red}]", false},
		{"bad rule name", "rules: [{name: 'a b', preset: knowbe4}]", false},
		{"no name", "rules: [{preset: knowbe4}]", false},
		{"no condition", "rules: [{name: a, skip: {category: X}}]", false},
		{"preset and when", "rules: [{name: a, preset: knowbe4, when: {sender: [a@b.example]}}]", false},
		{"when without an action", "rules: [{name: a, when: {sender: [a@b.example]}}]", false},
		{"two actions", "rules: [{name: a, when: {sender: [a@b.example]}, skip: {category: X}, set: {T: y}}]", false},
		{"two header operators", "rules: [{name: a, when: {headers: [{name: X, equals: a, contains: b}]}, skip: {category: X}}]", false},
		{"unknown preset", "rules: [{name: a, preset: nope}]", false},
		{"empty when", "rules: [{name: a, when: {}, skip: {category: X}}]", false},
		{"unknown ack key", "ack: {subject: s, text: t, footer: f}", false},
		{"ack without text", "ack: {subject: s}", false},
	}
	for _, tt := range tests {
		var doc any
		if err := yaml.Unmarshal([]byte(base+tt.yaml), &doc); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := json.Marshal(doc)
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		if err := schema.Validate(inst); (err == nil) != tt.valid {
			t.Errorf("%s: valid=%v, error %v", tt.name, tt.valid, err)
		}
	}
}

// BenchmarkMatchRulesWorstCase evaluates ten rules against an original
// whose headers fill the model's bounds: one header repeated
// email.MaxHeaderFields times with values of email.MaxHeaderValueBytes,
// which every rule examines up to its byte budget, and none matches.
func BenchmarkMatchRulesWorstCase(b *testing.B) {
	var rules strings.Builder
	for i := range 10 {
		op := []string{"contains: needle", "matches: '(?i)(a+)+needle'", "equals: needle"}[i%3]
		fmt.Fprintf(&rules, "  - name: r%d\n    when: {headers: [{name: X-Big, %s}], sender_domain: [example.com]}\n    skip: {category: S}\n", i, op)
	}
	m, err := Parse([]byte(ruleBase + rules.String()))
	if err != nil {
		b.Fatal(err)
	}
	specs, problems := checkRules(m.Rules)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	c := &Compiled{}
	for _, s := range specs {
		c.rules = append(c.rules, compiledRule{ruleSpec: s})
	}
	rep := report()
	vals := make([]string, email.MaxHeaderFields)
	for i := range vals {
		vals[i] = strings.Repeat("a", email.MaxHeaderValueBytes)
	}
	rep.Suspect.Headers = map[string][]string{"x-big": vals}
	b.SetBytes(10 * maxHeaderBytesExamined)
	b.ResetTimer()
	for range b.N {
		if _, ok := c.MatchRules(rep, nil); ok {
			b.Fatal("matched")
		}
	}
}

// TestDocumentedExamplesCompile compiles the rules and ack examples of
// docs/mapping.md against the sandbox's Archer, so the documentation shows
// what works.
func TestDocumentedExamplesCompile(t *testing.T) {
	t.Parallel()
	doc := mustRead(t, "../../docs/mapping.md")
	var blocks []string
	for _, part := range strings.Split(doc, "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(block, "rules:") || strings.HasPrefix(block, "ack:") {
			blocks = append(blocks, block)
		}
	}
	if len(blocks) != 2 {
		t.Fatalf("found %d rules and ack examples, want 2", len(blocks))
	}
	c := compileYAML(t, "application: Security Incidents\nkey: {field: Reported Email Key}\nfields:\n"+
		"  Title: {template: x}\n  Incident Description: {template: x}\n  Incident Category: {value: Phishing}\n"+
		strings.Join(blocks, ""))
	if got := strings.Join(c.RuleNames(), ","); got != "knowbe4,own-simulations,newsletter,executives,invoice-campaign" {
		t.Errorf("rules %s", got)
	}
	for _, kind := range []AckKind{AckRecord, AckSimulation, AckSkipped} {
		ack, ok, err := c.RenderAck(kind, AckData{Report: report(), RecordID: 239643, Reports: 2, Rule: "knowbe4"})
		if err != nil || !ok || ack.Subject == "" || ack.Text == "" {
			t.Errorf("%s: %+v, %v, %v", kind, ack, ok, err)
		}
	}
}
