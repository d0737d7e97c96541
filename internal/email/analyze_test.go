package email

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnalyzeBounds(t *testing.T) {
	t.Parallel()
	plain := mustRead(t, "testdata/corpus/plain.eml")
	manyParts := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("From: a@fabrikam.example\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "--x\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
		}
		b.WriteString("--x--\r\n")
		return b.Bytes()
	}
	tests := []struct {
		name string
		raw  []byte
		opts Options
		want error
	}{
		{"size over MaxBytes", plain, Options{MaxBytes: 100}, ErrTooLarge},
		{"multipart nesting over MaxDepth", nestedMultipart(20), Options{MaxDepth: 5}, ErrTooDeep},
		{"nesting within MaxDepth", nestedMultipart(4), Options{MaxDepth: 5}, nil},
		{"parts over MaxParts", manyParts(30), Options{MaxParts: 10}, ErrTooManyParts},
		{"parts within MaxParts", manyParts(5), Options{MaxParts: 10}, nil},
		{"thousands of delimiter lines", manyParts(20000), Options{}, ErrTooManyParts},
		{"attached emails nested over MaxDepth", nestedRFC822(8), Options{MaxDepth: 3}, ErrTooDeep},
		{"attached emails within MaxDepth", nestedRFC822(3), Options{MaxDepth: 5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Analyze(tt.raw, Metadata{MessageID: "m1", Subject: "from graph"}, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if rep == nil || rep.Suspect == nil {
				t.Fatal("Analyze returned no report or no suspect")
			}
			if err != nil && !strings.Contains(err.Error(), "m1") {
				t.Errorf("error %q does not name the message", err)
			}
			if rep.ReportSubject != "from graph" {
				t.Errorf("ReportSubject = %q, want the Graph subject", rep.ReportSubject)
			}
		})
	}
}

func TestAnalyzeTooDeepKeepsHeaders(t *testing.T) {
	t.Parallel()
	rep, err := Analyze(nestedMultipart(50), Metadata{}, Options{})
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("error = %v, want ErrTooDeep", err)
	}
	if rep.Suspect.From.Address != "nest@proseware.example" || rep.Suspect.Subject != "nested" {
		t.Errorf("suspect = %+v %q, want the top headers", rep.Suspect.From, rep.Suspect.Subject)
	}
}

// steppingClock advances by step on every reading.
type steppingClock struct {
	now  time.Time
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.now = c.now.Add(c.step)
	return c.now
}

func TestAnalyzeTimeout(t *testing.T) {
	t.Parallel()
	raw := mustRead(t, "testdata/corpus/report-rfc822.eml")
	clock := &steppingClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), step: time.Second}
	rep, err := analyze(bytesSource(raw), Metadata{MessageID: "m2"}, Options{Timeout: 500 * time.Millisecond}, clock.Now)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error = %v, want ErrTimeout", err)
	}
	if rep == nil || rep.Suspect == nil {
		t.Fatal("no report on timeout")
	}

	still := &steppingClock{now: clock.now}
	if _, err := analyze(bytesSource(raw), Metadata{}, Options{Timeout: time.Second}, still.Now); err != nil {
		t.Fatalf("with a stopped clock: %v", err)
	}
}

func TestAnalyzeMetadataTakesPrecedence(t *testing.T) {
	t.Parallel()
	raw := mustRead(t, "testdata/corpus/report-rfc822.eml")
	received := time.Date(2026, 3, 9, 10, 20, 40, 0, time.UTC)
	meta := Metadata{
		Mailbox:           "phish@contoso.com",
		MessageID:         "AAMkGraphId",
		Subject:           "Phishing: subject from Graph",
		WebLink:           "https://outlook.office365.com/owa/?ItemID=AAMkGraphId",
		InternetMessageID: "<graph-id@contoso.com>",
		ReceivedAt:        received,
		From:              Address{Name: "Alice (Graph)", Address: "alice@contoso.com"},
	}
	rep, err := Analyze(raw, meta, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reporter != meta.From || rep.ReportSubject != meta.Subject || !rep.ReceivedAt.Equal(received) ||
		rep.WebLink != meta.WebLink || rep.InternetMessageID != meta.InternetMessageID || rep.Mailbox != meta.Mailbox || rep.MessageID != meta.MessageID {
		t.Errorf("report does not carry the metadata: %+v", rep)
	}
	if rep.ReportHeaders["X-MS-Exchange-Organization-Network-Message-Id"] != "5b0c2f7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f" {
		t.Errorf("ReportHeaders = %v", rep.ReportHeaders)
	}
	if !bytes.HasPrefix(rep.Suspect.Raw, []byte("Received: from BN8NAM12FT045")) {
		t.Errorf("suspect Raw does not start with the original's headers: %q", rep.Suspect.Raw[:40])
	}
}

func TestAnalyzeMultipleOriginals(t *testing.T) {
	t.Parallel()
	one := "From: One <one@fabrikam.example>\r\nSubject: first\r\n\r\nbody one https://one.fabrikam.example/\r\n"
	two := "From: Two <two@northwindtraders.example>\r\nSubject: second\r\n\r\nbody two\r\n"
	raw := "From: Alice <alice@contoso.com>\r\nSubject: 1|two junk mails\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n" +
		"--r\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--r\r\nContent-Type: message/rfc822\r\n\r\n" + one + "\r\n" +
		"--r\r\nContent-Type: application/octet-stream; name=\"second.eml\"\r\nContent-Disposition: attachment; filename=\"second.eml\"\r\n\r\n" + two + "\r\n" +
		"--r--\r\n"
	rep, err := Analyze([]byte(raw), Metadata{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.IsReport || !rep.MultipleOriginals || len(rep.Originals) != 2 {
		t.Fatalf("IsReport=%v Multiple=%v originals=%d", rep.IsReport, rep.MultipleOriginals, len(rep.Originals))
	}
	if rep.Suspect != rep.Originals[0] || rep.Originals[0].Subject != "first" || rep.Originals[1].Subject != "second" {
		t.Errorf("originals out of order: %q, %q", rep.Originals[0].Subject, rep.Originals[1].Subject)
	}
	if rep.Classification != "junk" {
		t.Errorf("Classification = %q, want junk", rep.Classification)
	}
	if rep.Originals[1].RawName != "second.eml" || rep.Originals[1].Source != "rfc822" {
		t.Errorf("second original: name %q source %q", rep.Originals[1].RawName, rep.Originals[1].Source)
	}
	if len(rep.Originals[0].Observables.URLs) != 1 {
		t.Errorf("first original URLs = %v", rep.Originals[0].Observables.URLs)
	}
}

func TestAnalyzeForwardedReportIsUnwrapped(t *testing.T) {
	t.Parallel()
	inner := "From: Mallory <m@quota-alerts.example>\r\nSubject: the phish\r\n\r\nclick https://quota-alerts.example/\r\n"
	wrapper := "From: Bob <bob@contoso.com>\r\nSubject: FW: the phish\r\nContent-Type: multipart/mixed; boundary=\"w\"\r\n\r\n" +
		"--w\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "\r\n--w--\r\n"
	raw := "From: Alice <alice@contoso.com>\r\nSubject: Phishing: FW: the phish\r\nContent-Type: multipart/mixed; boundary=\"r\"\r\n\r\n" +
		"--r\r\nContent-Type: message/rfc822\r\n\r\n" + wrapper + "\r\n--r--\r\n"
	rep, err := Analyze([]byte(raw), Metadata{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Suspect.Subject != "the phish" || rep.Suspect.From.Address != "m@quota-alerts.example" {
		t.Errorf("suspect = %q from %q, want the innermost message", rep.Suspect.Subject, rep.Suspect.From.Address)
	}
}

func TestAnalyzeHostileInputNeverFails(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"empty":             nil,
		"binary":            {0x00, 0xff, 0xfe, 0x01, '\n', '\n', 0x80},
		"header only":       []byte("Subject: x"),
		"no blank line":     []byte("From: a@b.example\r\nSubject: y\r\nbody without separator"),
		"bad content type":  []byte("Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n"),
		"bad base64":        []byte("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"),
		"cfb garbage":       []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/vnd.ms-outlook; name=a.msg\r\n\r\n\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1garbage\r\n--b--\r\n"),
		"rfc822 of garbage": []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\x00\x01\x02\r\n--b--\r\n"),
		"unterminated":      []byte("Content-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/html\r\n\r\n<a href=\"http://x.example"),
	}
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rep, err := Analyze(raw, Metadata{Subject: "s"}, Options{})
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if rep.Suspect == nil {
				t.Fatal("no suspect")
			}
		})
	}
}

func TestAnalyzeMalformedMsgIsAWarning(t *testing.T) {
	t.Parallel()
	msg := buildMsg(testMsg{subject: "ok", body: "text"})
	// Cut the compound file short: the reader must fail, not panic.
	raw := reportWithMsg("From: a@contoso.com\nSubject: Phishing: cut", "cut", "cut.msg", msg[:700])
	rep, err := Analyze(raw, Metadata{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) == 0 {
		t.Error("no warning for an unreadable .msg")
	}
	if rep.Classification != "phishing" || !rep.IsReport || rep.Suspect.Source != "self" {
		t.Errorf("classification %q IsReport %v source %q", rep.Classification, rep.IsReport, rep.Suspect.Source)
	}
	if len(rep.Suspect.Attachments) != 1 || !rep.Suspect.Attachments[0].IsEmail {
		t.Errorf("the .msg is not listed as an email attachment: %+v", rep.Suspect.Attachments)
	}
}

func TestMsgRoundTrip(t *testing.T) {
	t.Parallel()
	submit := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	big := bytes.Repeat([]byte("0123456789abcdef"), 600) // above the mini stream cutoff
	msg := buildMsg(testMsg{
		subject:     "Grüße aus Köln",
		senderName:  "Sender",
		senderEmail: "sender@fabrikam.example",
		body:        "see https://fabrikam.example/a",
		html:        `<a href="https://fabrikam.example/b">b</a>`,
		submit:      submit,
		recipients:  []testRecip{{name: "To One", addr: "one@contoso.com", kind: 1}, {name: "Cc Two", addr: "two@contoso.com", kind: 2}},
		attachments: []testAttach{{name: "big.bin", mime: "application/octet-stream", data: big}, {name: "small.txt", mime: "text/plain", data: []byte("hi")}},
	})
	a := &analyzer{opts: DefaultOptions(), now: time.Now, ex: newExtractor()}
	a.deadline = time.Now().Add(time.Minute)
	p, err := a.parseMSG(msg, "test")
	if err != nil {
		t.Fatal(err)
	}
	m := p.msg
	if m.Subject != "Grüße aus Köln" || m.From.Address != "sender@fabrikam.example" || !m.Date.Equal(submit) {
		t.Errorf("header fields: %q %q %v", m.Subject, m.From.Address, m.Date)
	}
	if len(m.To) != 1 || m.To[0].Address != "one@contoso.com" || len(m.CC) != 1 || m.CC[0].Address != "two@contoso.com" {
		t.Errorf("recipients: to %v cc %v", m.To, m.CC)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].Size != int64(len(big)) || m.Attachments[1].Name != "small.txt" {
		t.Fatalf("attachments: %+v", m.Attachments)
	}
	if m.Attachments[0].SHA256 != newAttachment("", "", big).SHA256 {
		t.Error("large attachment content differs")
	}
	if m.Text != "see https://fabrikam.example/a" || !strings.Contains(m.HTML, "fabrikam.example/b") {
		t.Errorf("bodies: %q %q", m.Text, m.HTML)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"1|Cheap watches":        "junk",
		"Junk: Cheap watches":    "junk",
		"2|Team lunch":           "not-junk",
		"Not junk: Team lunch":   "not-junk",
		"3|Verify your account":  "phishing",
		"  phishing: Verify now": "phishing",
		"FW: Verify":             "",
		"":                       "",
		"4|unknown":              "",
	}
	for subject, want := range tests {
		if got := classify(subject); got != want {
			t.Errorf("classify(%q) = %q, want %q", subject, got, want)
		}
	}
}
