package incident

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// ackOnly parses a mapping with an ack section and compiles the section
// alone (it needs no Archer).
func ackOnly(t *testing.T, ack string) *Compiled {
	t.Helper()
	m, err := Parse([]byte("application: A\nkey: {field: K}\nfields: {T: {value: x}}\nack:\n" + ack))
	if err != nil {
		t.Fatal(err)
	}
	a, problems := m.compileAck()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return &Compiled{ack: a}
}

const fullAck = `  subject: "Thank you for reporting: {{.Report.Suspect.Subject | truncate 120}}"
  text: |-
    Hello {{.Report.Reporter.Name}},
    we are looking at "{{.Report.Suspect.Subject}}" (reference {{.RecordID}}).
    {{if gt .Reports 1}}{{.Reports}} people reported it.{{end}}
  html: |-
    <p>Hello {{.Report.Reporter.Name}},</p>
    <p>we are looking at <b>{{.Report.Suspect.Subject}}</b> (reference {{.RecordID}}).</p>
  simulation:
    subject: "Well spotted: {{.Report.Suspect.Subject}}"
    text: "This was a training exercise ({{.Rule}})."
`

func TestRenderAckEscapesWhatTheEmailWrote(t *testing.T) {
	t.Parallel()
	c := ackOnly(t, fullAck)
	rep := report()
	rep.Suspect.Subject = "<img src=x onerror=alert(1)> Invoice\r\nBcc: victim@contoso.com\r\n\r\n<script>alert('x')</script> https://evil.example/pay\x00\x07 \u202Efdp.exe"
	rep.Reporter.Name = `Adele "<b>" Vance`
	ack, ok, err := c.RenderAck(AckRecord, AckData{Report: rep, RecordID: 239643, Reports: 3})
	if err != nil || !ok {
		t.Fatalf("RenderAck: %v, %v", ok, err)
	}
	// The subject is one line, without control characters, capped.
	if strings.ContainsAny(ack.Subject, "\r\n\x00\x07") {
		t.Errorf("subject holds a line break or control character: %q", ack.Subject)
	}
	// (The template cuts the subject to 120 characters before cleaning.)
	if want := "Thank you for reporting: <img src=x onerror=alert(1)> Invoice Bcc: victim@contoso.com <script>alert('x')</script> hxxps://evil.example/pay…"; ack.Subject != want {
		t.Errorf("subject\n got %q\nwant %q", ack.Subject, want)
	}
	// The text body keeps its lines, drops control characters and has no
	// live link from the email.
	for _, bad := range []string{"\x00", "\x07", "\r", "https://evil", "\u202E"} {
		if strings.Contains(ack.Text, bad) {
			t.Errorf("text holds %q:\n%s", bad, ack.Text)
		}
	}
	for _, want := range []string{"Hello Adele \"<b>\" Vance,\nwe are looking at", "(reference 239643)", "3 people reported it.", "hxxps://evil.example/pay", "[U+202E]fdp.exe"} {
		if !strings.Contains(ack.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, ack.Text)
		}
	}
	// In the HTML body the template's markup stays, every value is
	// escaped.
	if strings.Contains(strings.NewReplacer("<p>", "", "</p>", "", "<b>", "", "</b>", "", "<br>", "").Replace(ack.HTML), "<") {
		t.Errorf("HTML holds markup the template did not write:\n%s", ack.HTML)
	}
	for _, want := range []string{
		"<p>Hello Adele &#34;&lt;b&gt;&#34; Vance,</p>",
		"<b>&lt;img src=x onerror=alert(1)&gt; Invoice<br>Bcc: victim@contoso.com<br><br>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; hxxps://evil.example/pay [U+202E]fdp.exe</b>",
		"(reference 239643)",
	} {
		if !strings.Contains(ack.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, ack.HTML)
		}
	}
}

func TestRenderAckSubjectIsCut(t *testing.T) {
	t.Parallel()
	c := ackOnly(t, "  subject: '{{.Report.Suspect.Subject}}'\n  text: t\n")
	rep := report()
	rep.Suspect.Subject = strings.Repeat("é", 300)
	ack, _, err := c.RenderAck(AckRecord, AckData{Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(ack.Subject); n != MaxAckSubject || !strings.HasSuffix(ack.Subject, "…") {
		t.Errorf("subject of %d characters: %q", n, ack.Subject)
	}
}

func TestRenderAckKinds(t *testing.T) {
	t.Parallel()
	full := ackOnly(t, fullAck)
	skippedOnly := ackOnly(t, "  skipped: {subject: 'Skipped {{.Rule}}', text: 'Nothing to do ({{.RecordID}})'}\n")
	none := &Compiled{}
	tests := []struct {
		name    string
		c       *Compiled
		kind    AckKind
		ok      bool
		subject string
		text    string
	}{
		{"record", full, AckRecord, true, "Thank you for reporting: Your mailbox is full", ""},
		{"simulation", full, AckSimulation, true, "Well spotted: Your mailbox is full", "This was a training exercise (knowbe4)."},
		{"skipped: none given", full, AckSkipped, false, "", ""},
		{"simulation falls back to skipped", skippedOnly, AckSimulation, true, "Skipped knowbe4", "Nothing to do (0)"},
		{"skipped", skippedOnly, AckSkipped, true, "Skipped knowbe4", "Nothing to do (0)"},
		{"record: none given", skippedOnly, AckRecord, false, "", ""},
		{"no ack section", none, AckRecord, false, "", ""},
		{"no ack section, simulation", none, AckSimulation, false, "", ""},
		{"an unknown kind", full, AckKind(7), false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.c.HasAck(tt.kind); got != tt.ok {
				t.Errorf("HasAck = %v", got)
			}
			ack, ok, err := tt.c.RenderAck(tt.kind, AckData{Report: report(), Reports: 1, Rule: "knowbe4"})
			if err != nil || ok != tt.ok {
				t.Fatalf("RenderAck: %v, %v", ok, err)
			}
			if ack.Subject != tt.subject || tt.text != "" && ack.Text != tt.text {
				t.Errorf("ack %+v", ack)
			}
			if tt.kind == AckSimulation && ack.HTML != "" {
				t.Errorf("the simulation text has no html, got %q", ack.HTML)
			}
		})
	}
}

func TestRenderAckWithoutAReport(t *testing.T) {
	t.Parallel()
	c := ackOnly(t, fullAck)
	ack, ok, err := c.RenderAck(AckRecord, AckData{RecordID: 5})
	if err != nil || !ok || ack.Subject != "Thank you for reporting:" || !strings.Contains(ack.Text, "(reference 5)") {
		t.Errorf("ack %+v, %v, %v", ack, ok, err)
	}
	empty := ackOnly(t, "  subject: s\n  text: '{{.Report.Suspect.Subject}}'\n")
	if _, _, err := empty.RenderAck(AckRecord, AckData{}); err == nil || !strings.Contains(err.Error(), "empty body") {
		t.Errorf("an empty body: %v", err)
	}
}

func TestAckProblems(t *testing.T) {
	t.Parallel()
	parse := []struct{ name, ack, want string }{
		{"empty section", "  {}\n", "ack: give subject and text"},
		{"no text", "  subject: s\n", "ack.text: give the plain text body"},
		{"no subject", "  text: t\n  html: h\n", "ack.subject: give the acknowledgment's subject"},
		{"simulation without text", "  subject: s\n  text: t\n  simulation: {subject: s}\n", "ack.simulation.text: give the plain text body"},
		{"skipped empty", "  skipped: {}\n", "ack.skipped: give subject and text"},
		{"unknown key", "  subject: s\n  text: t\n  footer: f\n", "field footer not found"},
	}
	for _, tt := range parse {
		_, err := Parse([]byte("application: A\nkey: {field: K}\nfields: {T: {value: x}}\nack:\n" + tt.ack))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	// Templates are compiled with the mapping, against AckData; errors
	// give the template's line and column.
	m, err := Parse([]byte(`
application: Security Incidents
key: {field: Reported Email Key}
fields:
  Title: {template: x}
  Incident Description: {template: x}
  Incident Category: {value: Phishing}
ack:
  subject: "Re: {{.Report.Suspect.Subjet}}"
  text: |-
    Hello,
    reference {{.RecordID.Format}}
  html: "<p>{{frobnicate .Rule}}</p>"
  skipped:
    subject: s
    text: "{{.Report.Suspect.Subject"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Compile(context.Background(), archerClient(t))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"ack.subject:1:", "email.Message has no field Subjet",
		"ack.text:2:22: .RecordID.Format",
		`ack.html:1:6: function "frobnicate" is not defined`,
		"ack.skipped.text:1: unclosed action",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestAckKindNames(t *testing.T) {
	t.Parallel()
	for k, want := range map[AckKind]string{AckRecord: "record", AckSimulation: "simulation", AckSkipped: "skipped", 9: "AckKind(9)"} {
		if k.String() != want {
			t.Errorf("%d: %q", int(k), k.String())
		}
	}
}
