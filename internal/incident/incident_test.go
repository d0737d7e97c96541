package incident

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

func archerClient(t *testing.T) *archer.Client {
	t.Helper()
	sim, err := archersim.New(archersim.Options{VirtualDir: "/RSAArcher", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := archer.New(archer.Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default",
		Username: "mail2archer", Password: "mail2archer-sandbox"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exampleMapping(t *testing.T) *Mapping {
	t.Helper()
	m, err := Load("../../api/mapping.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExampleMappingMatchesTheSchema(t *testing.T) {
	t.Parallel()
	schema, err := jsonschema.NewCompiler().Compile("../../api/mapping.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		yaml  string
		valid bool
	}{
		{"example", mustRead(t, "../../api/mapping.example.yaml"), true},
		{"two sources", "application: A\nkey: {field: K}\nfields: {T: {value: x, template: y}}\n", false},
		{"unknown key", "application: A\nkey: {field: K}\nfields: {T: {value: x}}\nextra: 1\n", false},
		{"bad attach", "application: A\nkey: {field: K}\nfields: {T: {attach: [everything]}}\n", false},
		{"formats", "application: A\nattachments: none\nkey: {field: K}\nfields: {T: {template: x, format: plain}, D: {template: y, markup: true}, O: {template: z, machine: true}}\n", true},
		{"bad format", "application: A\nkey: {field: K}\nfields: {T: {template: x, format: html}}\n", false},
		{"markup in plain", "application: A\nkey: {field: K}\nfields: {T: {template: x, format: plain, markup: true}}\n", false},
		{"format of an attachment", "application: A\nkey: {field: K}\nfields: {T: {attach: [original], format: plain}}\n", false},
		{"bad attachments mode", "application: A\nattachments: all\nkey: {field: K}\nfields: {T: {value: x}}\n", false},
	} {
		var doc any
		if err := yaml.Unmarshal([]byte(tc.yaml), &doc); err != nil {
			t.Fatal(err)
		}
		// Round-trip through JSON so the validator sees JSON types.
		b, _ := json.Marshal(doc)
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		err := schema.Validate(inst)
		if (err == nil) != tc.valid {
			t.Errorf("%s: valid=%v, error %v", tc.name, tc.valid, err)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseRejectsMalformedMappings(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"not yaml", "application: [", "parse"},
		{"unknown key", "application: A\nkey: {field: K}\nfields: {T: {value: x}}\ncolour: red\n", "colour"},
		{"no application", "key: {field: K}\nfields: {T: {value: x}}\n", "application"},
		{"no key field", "application: A\nfields: {T: {value: x}}\n", "key.field"},
		{"two sources", "application: A\nkey: {field: K}\nfields: {T: {value: x, template: y}}\n", "exactly one"},
		{"nothing", "application: A\nkey: {field: K}\nfields: {T: {}}\n", "exactly one"},
		{"bad attach", "application: A\nkey: {field: K}\nfields: {T: {attach: [all]}}\n", `"all"`},
		{"key in fields", "application: A\nkey: {field: K}\nfields: {K: {value: x}}\n", "key field"},
		{"two documents", "application: A\nkey: {field: K}\nfields: {T: {value: x}}\n---\na: 1\n", "more than one"},
		{"bad attachments mode", "application: A\nattachments: all\nkey: {field: K}\nfields: {T: {value: x}}\n", `attachments: "all" is not one of zip, none, raw`},
		{"bad format", "application: A\nkey: {field: K}\nfields: {T: {template: x, format: html}}\n", `fields.T.format: "html"`},
		{"markup in plain", "application: A\nkey: {field: K}\nfields: {T: {template: x, format: plain, markup: true}}\n", "markup needs format: rich"},
		{"format of an attachment", "application: A\nkey: {field: K}\nfields: {T: {attach: [original], machine: true}}\n", "not to attachments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCompileTheExampleAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Level.ID != 232 || c.KeyField.Name != "Reported Email Key" {
		t.Errorf("level %d key %q", c.Level.ID, c.KeyField.Name)
	}
}

func TestPreflightListsEveryProblem(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte(`
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Titel: {template: "{{.Suspect.Subject}}"}
  Incident Category: {value: Phish}
  Criticality SOC: {value: [Low, Severe]}
  Source: {template: "{{.Suspect.Subject"}
  Attachment Count: {value: many}
  Tracking ID: {value: x}
  Email Attachments: {template: x}
  Sender IP: {value: "not an ip"}
  Date Reported: {template: '{{.ReceivedAt.Format "2006-01-02"}}'}
  Reference Links: {template: x, format: plain}
  Date Received: {template: x, machine: true}
  Reported Subject: {template: "{{frobnicate .Suspect.Subject}}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Compile(context.Background(), archerClient(t))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`"Titel" is not a field`, `did you mean "Title"`,
		`"Phish"`, "available: Email Threats/Phishing",
		`"Severe"`,
		"fields.Source.template:1: unclosed action",
		`fields.Date Reported.template:1:14: .ReceivedAt.Format: a time has no fields; templates call no methods: use {{date "2006-01-02" .ReceivedAt}}`,
		`fields.Reference Links: format and markup apply to text fields, and "Reference Links" is of type external links`,
		`fields.Date Received: machine applies to text and external-links fields, and "Date Received" is of type date`,
		`fields.Reported Subject.template:1:3: function "frobnicate" is not defined; functions: and, date, defang,`,
		`"Attachment Count" is a numeric field; give a number`,
		`"Tracking ID" is a system field`,
		`"Email Attachments" is an attachment field; fill it with attach`,
		"not an ip",
		`"Title" is required in Archer but not mapped`,
		`"Incident Description" is required`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("preflight error lacks %q:\n%s", want, msg)
		}
	}
}

func TestPreflightUnknownApplicationAndLevel(t *testing.T) {
	t.Parallel()
	c := archerClient(t)
	m, _ := Parse([]byte("application: Incidents\nkey: {field: K}\nfields: {T: {value: x}}\n"))
	if _, err := m.Compile(context.Background(), c); err == nil || !strings.Contains(err.Error(), "Incidents") {
		t.Errorf("unknown application: %v", err)
	}
	m, _ = Parse([]byte("application: Security Incidents\nlevel: Nope\nkey: {field: K}\nfields: {T: {value: x}}\n"))
	if _, err := m.Compile(context.Background(), c); err == nil || !strings.Contains(err.Error(), `"Security Incidents"`) {
		t.Errorf("unknown level: %v", err)
	}
}

func report() *email.Report {
	orig := &email.Message{
		From:    email.Address{Name: "IT Helpdesk", Address: "it@contoso-support.example"},
		Subject: "Your mailbox is full",
		Date:    time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
		Raw:     []byte("From: it@contoso-support.example\r\nSubject: Your mailbox is full\r\n\r\nhi\r\n"),
		RawName: "Your mailbox is full.eml",
		Source:  "rfc822",
		Observables: email.Observables{
			URLs:    []email.URL{{URL: "https://contoso-support.example/login", Text: "https://contoso.com", Mismatch: true}},
			Domains: []string{"contoso-support.example"},
		},
		Attachments: []email.Attachment{{Name: "../../invoice.zip", Size: 3, SHA256: "abc", Kind: "archive", Data: []byte("zip")}},
		Auth:        email.Auth{SPF: "fail", DMARC: "fail", SCL: 5, BCL: -1, PCL: -1},
		Indicators:  email.Indicators{Lookalike: "contoso-support.example", LookalikeOf: "contoso.com"},
		// What email.Analyze gathers for the mapping's rating rules.
		Signals: email.Signals{SCL: 5, BCL: -1, PCL: -1, SPF: "fail", DMARC: "fail", AuthFailed: true,
			Lookalike: "contoso-support.example", LookalikeOf: "contoso.com", URLs: 1, LinkTextMismatch: 1,
			Attachments: 1, RiskyAttachments: 1, Archives: 1},
	}
	return &email.Report{
		Mailbox: "phish@contoso.com", MessageID: "AAMkAGI2TG93AAA=",
		Reporter:   email.Address{Name: "Adele Vance", Address: "adelev@contoso.com"},
		ReceivedAt: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC),
		IsReport:   true, Originals: []*email.Message{orig}, Suspect: orig, Classification: "phishing",
	}
}

func TestRenderTheExample(t *testing.T) {
	t.Parallel()
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("warnings %q", c.Warnings())
	}
	inc, err := c.Render(report(), FromBytes([]byte("the report mime")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if inc.Key != "phish@contoso.com/AAMkAGI2TG93AAA=" {
		t.Errorf("key %q", inc.Key)
	}
	b, err := json.Marshal(inc.Record)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{
		`"Tag":"Title","Value":"Reported phishing: Your mailbox is full"`,
		`"Tag":"Reported Email Key","Value":"phish@contoso.com/AAMkAGI2TG93AAA="`,
		`"ValuesListIds":[201701]`, // Malware: the suspect has an attachment
		`"ValuesListIds":[401003]`, // High: lookalike
		`hxxps://contoso-support[.]example/login (link text differs: hxxps://contoso[.]com)`,
		`SPF=fail DKIM=unknown DMARC=fail compauth=unknown`,
		`"Tag":"Sender","Value":"\"IT Helpdesk\" ‹it@contoso-support[.]example›"`,
		`Reported by \u0026#34;Adele Vance\u0026#34; \u0026lt;adelev@contoso.com\u0026gt; on 2026-11-28 08:00 UTC. Reporter\u0026#39;s verdict: phishing.`,
		`- ../../invoice.zip: 3 bytes, archive, SHA-256 abc`,
		`"Tag":"Date Reported","Value":"2026-11-28T08:00:00"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("record lacks %s:\n%s", want, body)
		}
	}
	if len(inc.Files) != 2 || inc.Files[0].Name != "Your mailbox is full.eml" || inc.Files[1].Name != "attachments-phish@contoso.com_AAMkAGI2TG93AAA_.zip" {
		t.Fatalf("files %+v", inc.Files)
	}
	if got := readFile(t, inc.Files[0]); string(got) != string(report().Suspect.Raw) {
		t.Errorf("original %q", got)
	}
	if err := inc.AttachFiles([]int64{901, 902}); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(inc.Record)
	if !strings.Contains(string(b), `"Tag":"Email Attachments","Value":[901,902]`) {
		t.Errorf("attachments not set: %s", b)
	}
}

func TestRenderErrorsNameTheField(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte(`
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Title: {template: "x"}
  Incident Description: {template: "x"}
  Incident Category: {template: "{{.Suspect.Subject}}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	ac := archerClient(t)
	c, err := m.Compile(context.Background(), ac)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Render(report(), nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), `"Incident Category"`) || !strings.Contains(err.Error(), "available") {
		t.Errorf("error %v", err)
	}
	m.Fields["Incident Category"] = Field{Value: "Phishing"}
	m.Fields["Date Received"] = Field{Template: "yesterday"}
	if c, err = m.Compile(context.Background(), ac); err != nil {
		t.Fatal(err)
	}
	if _, err = c.Render(report(), nil, time.Now()); err == nil || !strings.Contains(err.Error(), `"Date Received"`) {
		t.Errorf("error %v", err)
	}
	if _, err := c.Render(&email.Report{}, nil, time.Now()); err == nil {
		t.Error("a report without a suspect rendered")
	}
}

func TestFileNamesAreSanitised(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"../../etc/passwd":                "passwd",
		`C:\Users\x\invoice.pdf`:          "invoice.pdf",
		"a\x00b\nc.txt":                   "a_b_c.txt",
		"":                                "fallback",
		"..":                              "fallback",
		strings.Repeat("a", 300) + ".pdf": strings.Repeat("a", 196) + ".pdf",
	} {
		if got := fileName(in, "fallback"); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}
