package email

import (
	"strings"
	"testing"
	"text/template"
	"time"
)

func TestDefang(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://login.c0ntoso.example/owa?x=1.2": "hxxps://login[.]c0ntoso[.]example/owa?x=1.2",
		"http://203.0.113.9:8080/a.php":           "hxxp://203[.]0[.]113[.]9:8080/a.php",
		"ftp://files.example/x":                   "fxp://files[.]example/x",
		"contosso.com":                            "contosso[.]com",
		"it@contosso.com":                         "it@contosso[.]com",
		"198.51.100.23":                           "198[.]51[.]100[.]23",
		"see (https://a.example/b), then stop.":   "see (hxxps://a[.]example/b), then stop.",
		"Hello. World":                            "Hello. World",
		"version 1.2":                             "version 1.2",
		"":                                        "",
	}
	for in, want := range tests {
		if got := Defang(in); got != want {
			t.Errorf("Defang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int
		in   string
		want string
	}{
		{5, "hello", "hello"},
		{4, "hello", "hel…"},
		{3, "Prüfbericht", "Pr…"},
		{1, "abc", "…"},
		{0, "abc", ""},
		{10, "", ""},
	}
	for _, tt := range tests {
		if got := Truncate(tt.n, tt.in); got != tt.want {
			t.Errorf("Truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
	}
}

func render(t *testing.T, text string, data any) string {
	t.Helper()
	tmpl, err := template.New("t").Option("missingkey=error").Funcs(FuncMap()).Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("execute %q: %v", text, err)
	}
	return b.String()
}

func sampleReport() *Report {
	m := &Message{
		From:    Address{Name: "Contoso IT", Address: "it@contosso.com"},
		To:      []Address{{Name: "Alice Smith", Address: "alice@contoso.com"}, {Address: "bob@contoso.com"}},
		CC:      []Address{},
		Subject: "Action required",
		Date:    time.Date(2026, 3, 12, 7, 41, 0, 0, time.UTC),
		Text:    "Dear Alice,\r\n\r\n\r\n\r\nSign in at https://login.contoso.com/owa today.\r\n",
		Attachments: []Attachment{
			{Name: "a.zip"}, {Name: "b.pdf"},
		},
		Observables: Observables{
			URLs:    []URL{{URL: "https://c0ntoso.example/x"}, {URL: "http://198.51.100.1/y"}},
			Domains: []string{"c0ntoso.example", "contosso.com"},
		},
	}
	return &Report{Suspect: m, Originals: []*Message{m}}
}

func TestFuncMapInTemplates(t *testing.T) {
	t.Parallel()
	rep := sampleReport()
	tests := []struct{ tmpl, want string }{
		{`{{.Suspect.Subject | truncate 8}}`, "Action …"},
		{`{{.Suspect.To | join ", "}}`, `"Alice Smith" <alice@contoso.com>, bob@contoso.com`},
		{`{{.Suspect.Attachments | join "; "}}`, "a.zip; b.pdf"},
		{`{{.Suspect.Observables.URLs | join "\n" | defang}}`, "hxxps://c0ntoso[.]example/x\nhxxp://198[.]51[.]100[.]1/y"},
		{`{{range defang .Suspect.Observables.Domains}}{{.}} {{end}}`, "c0ntoso[.]example contosso[.]com "},
		{`{{range defang .Suspect.Observables.URLs}}[{{.}}]{{end}}`, "[hxxps://c0ntoso[.]example/x][hxxp://198[.]51[.]100[.]1/y]"},
		{`{{defang .Suspect.From.Address}}`, "it@contosso[.]com"},
		{`{{list "a" "b" | join "+"}}`, "a+b"},
		{`{{join "," .Suspect.CC}}`, ""},
		{`{{date "2006-01-02 15:04" .Suspect.Date}}`, "2026-03-12 07:41"},
		{`{{date "2006-01-02" .ReceivedAt}}`, ""},
	}
	for _, tt := range tests {
		if got := render(t, tt.tmpl, rep); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	rep := sampleReport()
	want := `From: "Contoso IT" <it@contosso.com>
Sent: Thu, 12 Mar 2026 07:41:00 +0000
To: "Alice Smith" <alice@contoso.com>; bob@contoso.com
CC: 
Subject: Action required

Dear Alice,

Sign in at https://login.contoso.com/owa today.
`
	if got := render(t, `{{summary .Suspect}}`, rep); got != want {
		t.Errorf("summary =\n%s\nwant\n%s", got, want)
	}
	short := render(t, `{{summary .Suspect 12}}`, rep)
	if !strings.HasSuffix(short, "Subject: Action required\n\nDear Alice,…\n") {
		t.Errorf("summary with a 12-character excerpt ends %q", short[len(short)-40:])
	}
	if Summary(nil, 10) != "" {
		t.Error("Summary(nil) is not empty")
	}
	empty := Summary(&Message{}, 10)
	if empty != "From: \nSent: \nTo: \nCC: \nSubject: \n" {
		t.Errorf("Summary of an empty message = %q", empty)
	}
}

func TestJoinRejectsNothingAndHandlesScalars(t *testing.T) {
	t.Parallel()
	if got, err := joinAny(",", "solo"); err != nil || got != "solo" {
		t.Errorf("joinAny(string) = %q, %v", got, err)
	}
	if got, err := joinAny(",", 42); err != nil || got != "42" {
		t.Errorf("joinAny(int) = %q, %v", got, err)
	}
	if got, err := joinAny(",", nil); err != nil || got != "" {
		t.Errorf("joinAny(nil) = %q, %v", got, err)
	}
	if got, err := joinAny("|", []Hop{{IP: "192.0.2.1"}, {IP: "192.0.2.2"}}); err != nil || got != "192.0.2.1|192.0.2.2" {
		t.Errorf("joinAny(hops) = %q, %v", got, err)
	}
}
