package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

var wrapAt = time.Date(2026, 3, 17, 9, 30, 15, 0, time.UTC)

// unwrapped is a wrapped report as a mail reader sees it.
type unwrapped struct {
	header   mail.Header
	subject  string // decoded
	text     string
	partHdr  map[string]string // the attachment's headers
	filename string
	attached []byte
}

// unwrap reads a report with net/mail and mime/multipart, failing the test
// when it is not a multipart/mixed message of a text part and one
// message/rfc822 attachment.
func unwrap(t *testing.T, report []byte) unwrapped {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(report))
	if err != nil {
		t.Fatalf("net/mail cannot read the report: %v", err)
	}
	var u unwrapped
	u.header = msg.Header
	if u.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("subject %q: %v", msg.Header.Get("Subject"), err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil {
		t.Fatalf("text part: %v", err)
	}
	b, _ := io.ReadAll(text)
	u.text = string(b)
	att, err := mr.NextPart()
	if err != nil {
		t.Fatalf("attachment: %v", err)
	}
	u.partHdr = map[string]string{}
	for k := range att.Header {
		u.partHdr[k] = att.Header.Get(k)
	}
	u.filename = att.FileName()
	if u.attached, err = io.ReadAll(att); err != nil {
		t.Fatalf("read the attachment: %v", err)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("a third part or a broken end: %v", err)
	}
	return u
}

// headerKeys are the header fields every report has, and only these.
var headerKeys = []string{"Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To",
	"X-Ms-Exchange-Organization-Authas", "X-Ms-Exchange-Organization-Network-Message-Id", "X-Ms-Has-Attach"}

// checkHeaderLines fails the test when a line of the report's header is
// longer than RFC 5322 allows or a continuation line is blank.
func checkHeaderLines(t *testing.T, report []byte) {
	t.Helper()
	head, _, _ := bytes.Cut(report, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if len(line) > 998 {
			t.Errorf("header line of %d bytes", len(line))
		}
		if strings.TrimSpace(line) == "" {
			t.Errorf("blank line inside the header")
		}
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("bare CR or LF in header line %q", line)
		}
	}
}

func TestWrapAsReportCarriesTheOriginalByteForByte(t *testing.T) {
	t.Parallel()
	campaign, err := samples.ReadFile("samples/campaign/06-docusign-invoice.eml")
	if err != nil {
		t.Fatal(err)
	}
	crlf := sample(t, "03-")
	cases := []struct {
		name, original, subject, encoding string
	}{
		{"the campaign sample, LF lines", string(campaign), "Please DocuSign: Northwind_Invoice_INV-58813.pdf", "7bit"},
		{"a CRLF original", string(crlf), "3|Payroll change confirmation required", "7bit"},
		{"no final line break", "From: a@b.example\nSubject: short\n\nbody without end", "short", "7bit"},
		{"ends in CRLF CRLF", "Subject: blank end\r\n\r\nbody\r\n\r\n", "blank end", "7bit"},
		{"raw UTF-8", "Subject: Rechnung für März\n\nGrüße\n", "Rechnung für März", "8bit"},
		{"encoded subject", "Subject: =?utf-8?B?0KHRh9C10YIg4oSWIDQy?=\n\nx\n", "Счет № 42", "7bit"},
		{"a NUL byte", "Subject: nul\n\na\x00b\n", "nul", "binary"},
		{"a bare CR", "Subject: cr\n\na\rb\n", "cr", "binary"},
		{"a 2000-byte line", "Subject: long\n\n" + strings.Repeat("x", 2000) + "\n", "long", "binary"},
		{"holds boundary-like lines", "Subject: parts\n\n--_report_\n--_report_0_\r\n--\r\n", "parts", "7bit"},
		{"no header at all", "just some text", "(no subject)", "7bit"},
		{"empty subject", "Subject:   \n\nx", "(no subject)", "7bit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			report, err := WrapAsReport([]byte(tc.original), "alice@contoso.com", wrapAt)
			if err != nil {
				t.Fatal(err)
			}
			checkHeaderLines(t, report)
			u := unwrap(t, report)
			if !bytes.Equal(u.attached, []byte(tc.original)) {
				t.Fatalf("attachment differs from the original:\n got %q\nwant %q", u.attached, tc.original)
			}
			if u.subject != "Phishing: "+tc.subject {
				t.Errorf("Subject %q, want %q", u.subject, "Phishing: "+tc.subject)
			}
			from, err := u.header.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Address != "alice@contoso.com" {
				t.Errorf("From %v %v", from, err)
			}
			to, err := u.header.AddressList("To")
			if err != nil || len(to) != 1 || to[0].Address != Mailbox {
				t.Errorf("To %v %v", to, err)
			}
			if d, err := u.header.Date(); err != nil || !d.Equal(wrapAt) {
				t.Errorf("Date %v %v", d, err)
			}
			if id := u.header.Get("Message-Id"); !strings.HasPrefix(id, "<report-") || !strings.HasSuffix(id, "@contoso.com>") {
				t.Errorf("Message-ID %q", id)
			}
			if got := u.partHdr["Content-Transfer-Encoding"]; got != tc.encoding {
				t.Errorf("Content-Transfer-Encoding %q, want %q", got, tc.encoding)
			}
			if ct, _, _ := mime.ParseMediaType(u.partHdr["Content-Type"]); ct != "message/rfc822" {
				t.Errorf("attachment Content-Type %q", u.partHdr["Content-Type"])
			}
			if u.filename != attachmentName(tc.subject) || !strings.HasSuffix(u.filename, ".eml") {
				t.Errorf("file name %q", u.filename)
			}
			if !strings.Contains(u.text, "reported as phishing") {
				t.Errorf("text part %q", u.text)
			}
		})
	}
}

func TestWrappedReportIsReadAsAReportByTheService(t *testing.T) {
	t.Parallel()
	original, err := samples.ReadFile("samples/campaign/06-docusign-invoice.eml")
	if err != nil {
		t.Fatal(err)
	}
	report, err := WrapAsReport(original, "Bob Brown <bob@contoso.com>", wrapAt)
	if err != nil {
		t.Fatal(err)
	}
	opts := email.DefaultOptions()
	opts.InternalDomains = []string{"contoso.com"}
	rep, err := email.Analyze(report, email.Metadata{Mailbox: Mailbox}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.IsReport || rep.Classification != "phishing" || rep.Reporter.Address != "bob@contoso.com" || rep.Reporter.Name != "Bob Brown" {
		t.Errorf("report %v, classification %q, reporter %+v", rep.IsReport, rep.Classification, rep.Reporter)
	}
	s := rep.Suspect
	if len(rep.Originals) != 1 || s == nil || s.Source != "rfc822" || !bytes.Equal(s.Raw, original) {
		t.Fatalf("%d originals; suspect from %q, raw equal %v", len(rep.Originals), s.Source, s != nil && bytes.Equal(s.Raw, original))
	}
	if s.Subject != "Please DocuSign: Northwind_Invoice_INV-58813.pdf" || s.From.Address != "dse_na3@docusiqn.example" ||
		s.MessageID != "<b7e1c0d4a2f94f58.58813@app-na3.docusiqn.example>" {
		t.Errorf("suspect %q from %q, Message-ID %q", s.Subject, s.From.Address, s.MessageID)
	}
}

func TestWrapAsReportRefusesOrNeutralisesHostileValues(t *testing.T) {
	t.Parallel()
	const plain = "Subject: invoice\n\nbody\n"
	cases := []struct {
		name, reporter, original string
		// refused, when set, is part of the expected error.
		refused string
		// from is the expected From address and display name; subject
		// the expected decoded subject.
		fromAddr, fromName, subject string
	}{
		{name: "CRLF and a Bcc in the reporter", reporter: "alice@contoso.com\r\nBcc: all@contoso.com", original: plain, refused: "line break"},
		{name: "LF in the reporter", reporter: "alice@contoso.com\nX-Injected: 1", original: plain, refused: "line break"},
		{name: "CR in a quoted name", reporter: "\"Al\rice\" <alice@contoso.com>", original: plain, refused: "line break"},
		{name: "a tab-free control character", reporter: "alice\x00@contoso.com", original: plain, refused: "control character"},
		{name: "two addresses", reporter: "alice@contoso.com, bob@contoso.com", original: plain, refused: "reporter"},
		{name: "not an address", reporter: "alice", original: plain, refused: "reporter"},
		{name: "empty", reporter: "  ", original: plain, refused: "no address"},
		{name: "too long", reporter: strings.Repeat("a", 320) + "@contoso.com", original: plain, refused: "320"},
		{name: "encoded line break in the name", reporter: "=?utf-8?q?Eve=0D=0ABcc=3A_all=40contoso=2Ecom?= <eve@contoso.com>", original: plain,
			fromAddr: "eve@contoso.com", fromName: "Eve Bcc: all@contoso.com", subject: "invoice"},
		{name: "a name with specials", reporter: `"Smith, Alice (IT) \"A\"" <alice@contoso.com>`, original: plain,
			fromAddr: "alice@contoso.com", fromName: `Smith, Alice (IT) "A"`, subject: "invoice"},
		{name: "encoded CRLF in the subject", reporter: "alice@contoso.com", original: "Subject: =?utf-8?q?Hi=0D=0ABcc:_all@contoso.com=0D=0A=0D=0Abody?=\n\nx",
			fromAddr: "alice@contoso.com", subject: "Hi Bcc: all@contoso.com body"},
		{name: "a folded subject", reporter: "alice@contoso.com", original: "Subject: part one\r\n\tpart two\r\nX-Other: y\r\n\r\nx",
			fromAddr: "alice@contoso.com", subject: "part one part two"},
		{name: "line separators and invalid UTF-8", reporter: "alice@contoso.com", original: "Subject: a\u2028b\xff\xfec\n\nx",
			fromAddr: "alice@contoso.com", subject: "a b\uFFFDc"},
		{name: "a 5000-character subject", reporter: "alice@contoso.com", original: "Subject: " + strings.Repeat("word ", 1000) + "\n\nx",
			fromAddr: "alice@contoso.com", subject: strings.TrimSpace(strings.Repeat("word ", 40)) + "…"},
		{name: "a long subject in Cyrillic", reporter: "alice@contoso.com", original: "Subject: " + strings.Repeat("счёт ", 100) + "\n\nx",
			fromAddr: "alice@contoso.com", subject: strings.TrimSpace(strings.Repeat("счёт ", 40)) + "…"},
		{name: "a subject of encoded-word syntax", reporter: "alice@contoso.com", original: "Subject: =?x?= ?= =?utf-8?q?\n\nx",
			fromAddr: "alice@contoso.com", subject: "=?x?= ?= =?utf-8?q?"},
		{name: "path characters for the file name", reporter: "alice@contoso.com", original: "Subject: ../../etc/passwd: \"x\" <y>|z\n\nx",
			fromAddr: "alice@contoso.com", subject: "../../etc/passwd: \"x\" <y>|z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			report, err := WrapAsReport([]byte(tc.original), tc.reporter, wrapAt)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.refused)
				}
				if strings.ContainsAny(err.Error(), "\r\n") {
					t.Errorf("the error carries a line break: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkHeaderLines(t, report)
			u := unwrap(t, report)
			var keys []string
			for k := range u.header {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, headerKeys) {
				t.Errorf("header fields %v, want %v", keys, headerKeys)
			}
			from, err := u.header.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Address != tc.fromAddr || from[0].Name != tc.fromName {
				t.Errorf("From %+v %v, want %q <%s>", from, err, tc.fromName, tc.fromAddr)
			}
			if u.subject != "Phishing: "+tc.subject {
				t.Errorf("Subject %q, want %q", u.subject, "Phishing: "+tc.subject)
			}
			if !bytes.Equal(u.attached, []byte(tc.original)) {
				t.Error("the original did not survive")
			}
			if strings.ContainsAny(u.filename, `/\:*?"<>|`) || len(u.filename) > 104 {
				t.Errorf("file name %q", u.filename)
			}
		})
	}
}

func TestWrapAsReportIsDeterministicAndBounded(t *testing.T) {
	t.Parallel()
	original := []byte("Subject: same\n\nx\n")
	a, errA := WrapAsReport(original, "alice@contoso.com", wrapAt)
	b, errB := WrapAsReport(original, "alice@contoso.com", wrapAt.In(time.FixedZone("CET", 3600)))
	c, errC := WrapAsReport(original, "bob@contoso.com", wrapAt)
	if err := errors.Join(errA, errB, errC); err != nil {
		t.Fatal(err)
	}
	ua, ub, uc := unwrap(t, a), unwrap(t, b), unwrap(t, c)
	if ua.header.Get("Message-Id") != ub.header.Get("Message-Id") {
		t.Error("the same report at the same instant got two Message-IDs")
	}
	if ua.header.Get("Message-Id") == uc.header.Get("Message-Id") {
		t.Error("two reporters' reports share a Message-ID")
	}
	again, _ := WrapAsReport(original, "alice@contoso.com", wrapAt)
	if !bytes.Equal(a, again) {
		t.Error("the same arguments gave different reports")
	}

	if _, err := WrapAsReport(nil, "alice@contoso.com", wrapAt); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty original: %v", err)
	}
	big := make([]byte, MaxWrappedOriginal+1)
	if _, err := WrapAsReport(big, "alice@contoso.com", wrapAt); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized original: %v", err)
	}
}

func TestTheCampaignSampleIsOneOriginalReportedByThreePeople(t *testing.T) {
	t.Parallel()
	original, err := samples.ReadFile("samples/campaign/06-docusign-invoice.eml")
	if err != nil {
		t.Fatal(err)
	}
	var names, reporters []string
	for _, s := range Samples() {
		names = append(names, s.Name)
		if !strings.HasPrefix(s.Name, "06-") {
			continue
		}
		u := unwrap(t, s.MIME)
		if !bytes.Equal(u.attached, original) {
			t.Errorf("%s does not carry the stored original", s.Name)
		}
		from, err := u.header.AddressList("From")
		if err != nil || len(from) != 1 {
			t.Fatalf("%s: From %v", s.Name, err)
		}
		reporters = append(reporters, from[0].Address)
	}
	want := []string{"01-credential-phish.eml", "02-malware-attachment.eml", "03-report-message-msg.eml",
		"04-newsletter-reported.eml", "05-inline-forward-outlook.eml", "06-docusign-invoice-reported-by-alice.eml",
		"06-docusign-invoice-reported-by-bob.eml", "06-docusign-invoice-reported-by-carol.eml",
		"07-training-simulation-reported-by-dave.eml"}
	if !slices.Equal(names, want) {
		t.Errorf("samples %v, want %v", names, want)
	}
	if fmt.Sprint(reporters) != "[alice@contoso.com bob@contoso.com carol@contoso.com]" {
		t.Errorf("reporters %v", reporters)
	}
}

func TestWriteTableShowsHowManyReportsEachRecordHolds(t *testing.T) {
	t.Parallel()
	recs := []archersim.Record{
		{ID: 239643, Fields: map[string]any{"Reported Subject": "Action required", "Incident Category": []any{"Phishing"}}},
		{ID: 239644, Fields: map[string]any{"Reported Subject": "Please DocuSign", "Number of Reports": float64(3)}},
		{ID: 239645, Fields: map[string]any{"Reported Subject": "odd", "Number of Reports": float64(-2)}},
	}
	var out strings.Builder
	if err := WriteTable(&out, recs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "RECORD  REPORTS  REPORTED SUBJECT") {
		t.Fatalf("table:\n%s", out.String())
	}
	for i, want := range []string{"239643  1        Action required", "239644  3        Please DocuSign", "239645  1        odd"} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d = %q, want it to start with %q", i+1, lines[i+1], want)
		}
	}
}

func TestWatcherPrintsOneLinePerCreateAndUpdate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 17, 8, 10, 0, 0, time.UTC)
	rec := func(id int64, updated time.Time, reports float64) archersim.Record {
		f := map[string]any{"Reported Subject": fmt.Sprintf("subject %d", id), "Incident Category": []any{"Phishing"}, "Criticality SOC": []any{"High"}}
		if reports > 0 {
			f["Number of Reports"] = reports
		}
		return archersim.Record{ID: id, Created: t0, Updated: updated, Fields: f}
	}
	w := NewWatcher([]archersim.Record{rec(239643, t0, 0)})
	if got := w.Changes([]archersim.Record{rec(239643, t0, 0)}); len(got) != 0 {
		t.Errorf("nothing changed, but: %q", got)
	}
	steps := []struct {
		recs []archersim.Record
		want []string
	}{
		{[]archersim.Record{rec(239643, t0, 0), rec(239644, t0, 0)},
			[]string{"record 239644 created: 1 report, Phishing, High: subject 239644"}},
		{[]archersim.Record{rec(239643, t0, 0), rec(239644, t0.Add(5*time.Minute), 2)},
			[]string{"record 239644 updated: 2 reports"}},
		{[]archersim.Record{rec(239643, t0, 0), rec(239644, t0.Add(5*time.Minute), 2)}, nil},
		{[]archersim.Record{rec(239643, t0, 0), rec(239644, t0.Add(9*time.Minute), 3), rec(239645, t0, 0)},
			[]string{"record 239644 updated: 3 reports", "record 239645 created: 1 report, Phishing, High: subject 239645"}},
		{[]archersim.Record{{ID: 239646, Updated: t0, Fields: map[string]any{}}},
			[]string{"record 239646 created: 1 report, -, -: "}},
	}
	for i, s := range steps {
		if got := w.Changes(s.recs); !slices.Equal(got, s.want) {
			t.Errorf("step %d: %q, want %q", i, got, s.want)
		}
	}
}

// WriteTable and Reports read "Number of Reports" by name: the built-in
// fixture must have it, with the other campaign fields, as Archer types
// them.
func TestTheFixtureHasTheCampaignFieldsTheTableReads(t *testing.T) {
	t.Parallel()
	want := map[string]archer.FieldType{"Number of Reports": archer.FieldNumeric, "Reporters": archer.FieldText, "Latest Report": archer.FieldDate}
	got := map[string]archer.FieldType{}
	for _, f := range archersim.DefaultFixture().Applications[0].Levels[0].Fields {
		if _, ok := want[f.Name]; ok {
			got[f.Name] = archer.FieldType(f.Type)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("campaign fields %v, want %v", got, want)
	}
}

func TestFoldHeaderFoldsOnlyWhereUnfoldingGivesTheLineBack(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 120)
	cases := []struct {
		name, line string
		lines      int
	}{
		{"short", "Subject: short", 1},
		{"words", "Subject: " + strings.Repeat("word ", 30) + "end", 3},
		{"one long word", "Subject: " + long, 2},
		{"a long quoted parameter", `Content-Type: message/rfc822; name="` + strings.Repeat("a b ", 25) + `.eml"`, 2},
		{"double spaces stay", "Subject: " + strings.Repeat("a  b ", 30), 3},
		{"escaped quote", `From: "` + strings.Repeat(`a \" b `, 15) + `" <a@b.example> ` + strings.Repeat("c ", 30), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			folded := foldHeader(tc.line)
			if got := strings.ReplaceAll(folded, "\r\n", ""); got != tc.line {
				t.Fatalf("unfolded %q, want %q", got, tc.line)
			}
			lines := strings.Split(folded, "\r\n")
			if len(lines) != tc.lines {
				t.Errorf("%d lines, want %d: %q", len(lines), tc.lines, folded)
			}
			for i, l := range lines {
				if i > 0 && (!strings.HasPrefix(l, " ") || strings.TrimSpace(l) == "") {
					t.Errorf("continuation line %q", l)
				}
				if len(l) > 78 && strings.Contains(strings.TrimSpace(l), " ") && !strings.Contains(l, `"`) {
					t.Errorf("line of %d characters that could have been folded: %q", len(l), l)
				}
			}
		})
	}
}
