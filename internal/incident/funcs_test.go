package incident

import (
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

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
		{2, "日本語", "日…"},
		{1, "abc", "…"},
		{0, "abc", ""},
		{10, "", ""},
	}
	for _, tt := range tests {
		if got := truncate(tt.n, tt.in); got != tt.want {
			t.Errorf("truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
	}
}

// renderFuncs executes a template over the data templates see.
func renderFuncs(t *testing.T, text string, d Data) string {
	t.Helper()
	tm, err := tmpl.Compile("t", text, dataType, tmpl.Options{Funcs: Funcs()})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tm.ExecuteString(d)
	if err != nil {
		t.Fatalf("execute %q: %v", text, err)
	}
	return out
}

func funcsData() Data {
	m := &email.Message{
		From:    email.Address{Name: "Contoso IT", Address: "it@contosso.com"},
		To:      []email.Address{{Name: "Alice Smith", Address: "alice@contoso.com"}, {Address: "bob@contoso.com"}},
		CC:      []email.Address{},
		Subject: "Action required",
		Date:    time.Date(2026, 3, 12, 7, 41, 0, 0, time.UTC),
		Text:    "Dear Alice,\r\n\r\n\r\n\r\nSign in at https://login.contoso.com/owa today.\r\n",
		Attachments: []email.Attachment{
			{Name: "a.zip"}, {Name: "b.pdf"},
		},
		Received: []email.Hop{{IP: "192.0.2.1"}, {IP: "192.0.2.2"}},
		Observables: email.Observables{
			URLs:    []email.URL{{URL: "https://c0ntoso.example/x"}, {URL: "http://198.51.100.1/y"}},
			Domains: []string{"c0ntoso.example", "contosso.com"},
		},
	}
	return Data{Report: &email.Report{Suspect: m, Originals: []*email.Message{m}}}
}

func TestFuncsInTemplates(t *testing.T) {
	t.Parallel()
	d := funcsData()
	tests := []struct{ tmpl, want string }{
		{`{{.Suspect.Subject | truncate 8}}`, "Action …"},
		{`{{.Suspect.To | join ", "}}`, `"Alice Smith" <alice@contoso.com>, bob@contoso.com`},
		{`{{.Suspect.Attachments | join "; "}}`, "a.zip; b.pdf"},
		{`{{.Suspect.Received | join "|"}}`, "192.0.2.1|192.0.2.2"},
		{`{{.Suspect.Observables.URLs | join "\n" | defang}}`, "hxxps://c0ntoso[.]example/x\nhxxp://198.51.100[.]1/y"},
		{`{{range defang .Suspect.Observables.Domains}}{{.}} {{end}}`, "c0ntoso[.]example contosso[.]com "},
		{`{{range defang .Suspect.Observables.URLs}}[{{.}}]{{end}}`, "[hxxps://c0ntoso[.]example/x][hxxp://198.51.100[.]1/y]"},
		{`{{defang .Suspect.From.Address}}`, "it@contosso[.]com"},
		{`{{defang .Suspect.From}}`, `"Contoso IT" <it@contosso[.]com>`},
		{`{{defang .Suspect.To}}`, `"Alice Smith" <alice@contoso[.]com>, bob@contoso[.]com`},
		{`{{defang (index .Suspect.Observables.URLs 0)}}`, "hxxps://c0ntoso[.]example/x"},
		{`{{defang .Suspect.Attachments}}`, "a[.]zip, b.pdf"}, // .zip is a top-level domain
		{`{{list "a" "b" | join "+"}}`, "a+b"},
		{`{{join "," .Suspect.CC}}`, ""},
		{`{{join "," "solo"}}`, "solo"},
		{`{{join "," 42}}`, "42"},
		{`{{join "," nil}}`, ""},
		{`{{date "2006-01-02 15:04" .Suspect.Date}}`, "2026-03-12 07:41"},
		{`{{date "2006-01-02" .ReceivedAt}}`, ""},
	}
	for _, tt := range tests {
		if got := renderFuncs(t, tt.tmpl, d); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	d := funcsData()
	want := `From: "Contoso IT" <it@contosso[.]com>
Sent: Thu, 12 Mar 2026 07:41:00 +0000
To: "Alice Smith" <alice@contoso[.]com>; bob@contoso[.]com
CC: 
Subject: Action required

Dear Alice,

Sign in at hxxps://login[.]contoso[.]com/owa today.
`
	if got := renderFuncs(t, `{{summary .Suspect}}`, d); got != want {
		t.Errorf("summary =\n%s\nwant\n%s", got, want)
	}
	short := renderFuncs(t, `{{summary .Suspect 12}}`, d)
	if !strings.HasSuffix(short, "Subject: Action required\n\nDear Alice,…\n") {
		t.Errorf("summary with a 12-character excerpt ends %q", short[max(0, len(short)-40):])
	}
	if summary(nil, 10) != "" {
		t.Error("summary(nil) is not empty")
	}
	if empty := summaryText(&email.Message{}, 10); empty != "From: \nSent: \nTo: \nCC: \nSubject: \n" {
		t.Errorf("summary of an empty message = %q", empty)
	}
}

func TestSummaryOfAHugeBodyReadsOnlyItsStart(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("word  \t ", 1<<20) + "\nEND"
	start := time.Now()
	got := summaryText(&email.Message{Text: body}, 20)
	if !strings.HasSuffix(got, "\nword word word word…\n") {
		t.Errorf("excerpt %q", got[strings.LastIndex(got, "\n\n"):])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a 8 MB body took %v", d)
	}
}
