package incident

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/email"
)

// readFile reads a File's content through its Open function.
func readFile(t *testing.T, f File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", f.Name, err)
	}
	return b
}

// textFields returns the text field values of a record, by field name.
func textFields(t *testing.T, inc *Incident) map[string]string {
	t.Helper()
	b, err := json.Marshal(inc.Record)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Content struct {
			FieldContents map[string]struct {
				Type  int
				Tag   string
				Value any
			}
		}
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, fc := range wire.Content.FieldContents {
		if s, ok := fc.Value.(string); ok && fc.Type == 1 {
			out[fc.Tag] = s
		}
	}
	return out
}

func compileYAML(t *testing.T, yaml string) *Compiled {
	t.Helper()
	m, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostileReport is a report whose every part an attacker wrote carries
// markup, scripts, control characters and nested redirect URLs.
func hostileReport() *email.Report {
	rep := report()
	s := rep.Suspect
	s.Subject = "<img src=x onerror=alert(document.cookie)> Invoice\u202Efdp.exe\x00 https://evil.example/a"
	s.From = email.Address{Name: `IT Desk <script>alert(1)</script>`, Address: "it@evil.example"}
	s.Text = "Dear user,\r\n<a href=\"https://evil.example/login\">click</a> <img src=\"http://tracker.example/p.gif\">\r\n" +
		"https://r.example/redirect?url=https://landing.example/x\x07\r\njavascript:alert(1) &amp; &lt;b&gt;"
	s.Observables.URLs = []email.URL{
		{URL: "https://r.example/redirect?url=https://landing.example/x", Text: "<b>https://contoso.com</b>", Mismatch: true},
		{URL: "https://landing.example/x"},
	}
	s.Observables.Domains = []string{"evil.example", "landing.example", "r.example"}
	s.Observables.IPs = []string{"192.0.2.1", "2001:db8::1"}
	s.Observables.Emails = []string{"it@evil.example"}
	s.Attachments = []email.Attachment{{Name: "<svg onload=alert(1)>.html", Size: 3, SHA256: "abc", Kind: "html", Data: []byte("<x>")}}
	rep.Warnings = []string{"part 3: <b>bad</b> https://warn.example"}
	return rep
}

// TestHostileEmailReachesNoFieldLive renders the example mapping for a
// hostile email: no text field holds markup the mapping did not write,
// nor a live link; the nested landing domain is among the observables.
func TestHostileEmailReachesNoFieldLive(t *testing.T) {
	t.Parallel()
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	inc, err := c.Render(hostileReport(), FromBytes([]byte("mime")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fields := textFields(t, inc)
	// No field holds a < the mapping did not write: rich fields escape
	// it, single-line fields show it as ‹.
	for name, v := range fields {
		if strings.Contains(strings.ReplaceAll(v, "<br>", ""), "<") {
			t.Errorf("%s holds markup: %q", name, v)
		}
		if lower := strings.ToLower(v); strings.Contains(lower, "http://") || strings.Contains(lower, "https://") {
			t.Errorf("%s holds a live link: %q", name, v)
		}
		if strings.ContainsAny(v, "\x00\x07\u202E") {
			t.Errorf("%s holds control characters: %q", name, v)
		}
	}
	// Single-line fields keep the text readable with inert brackets.
	if got := fields["Sender"]; got != `"IT Desk ‹script›alert(1)‹/script›" ‹it@evil[.]example›` {
		t.Errorf("Sender %q", got)
	}
	if got := fields["Reported Subject"]; got != "‹img src=x onerror=alert(document.cookie)› Invoice[U+202E]fdp.exe hxxps://evil[.]example/a" {
		t.Errorf("Reported Subject %q", got)
	}
	obs := fields["Observables"]
	for _, want := range []string{
		"hxxps://r[.]example/redirect?url=hxxps://landing[.]example/x (link text differs: &lt;b&gt;hxxps://contoso[.]com&lt;/b&gt;)",
		"<br>hxxps://landing[.]example/x<br>", "landing[.]example", "192.0.2[.]1", "2001:db8:[:]1", "it@evil[.]example",
		"&lt;svg onload=alert(1)&gt;.html sha256:abc",
	} {
		if !strings.Contains(obs, want) {
			t.Errorf("Observables lack %q:\n%s", want, obs)
		}
	}
	desc := fields["Incident Description"]
	for _, want := range []string{
		"&lt;a href=&#34;hxxps://evil[.]example/login&#34;&gt;click&lt;/a&gt;",
		"javascript:alert(1) &amp;amp; &amp;lt;b&amp;gt;",
		"- part 3: &lt;b&gt;bad&lt;/b&gt; hxxps://warn.example",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("Incident Description lacks %q:\n%s", want, desc)
		}
	}
}

func TestDirectDeliveryNamesNoReporter(t *testing.T) {
	t.Parallel()
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	rep := report()
	rep.Reporter, rep.IsReport, rep.Classification = email.Address{}, false, ""
	inc, err := c.Render(rep, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fields := textFields(t, inc)
	desc := fields["Incident Description"]
	if strings.Contains(desc, "Reported by") || !strings.HasPrefix(desc, "Delivered to phish@contoso.com on 2026-11-28 08:00 UTC; nobody reported it.") {
		t.Errorf("description %q", desc)
	}
	if _, ok := fields["Reporter"]; ok {
		t.Errorf("Reporter is set: %q", fields["Reporter"])
	}
}

const optionsMapping = `
application: Security Incidents
attachments: %s
key: {field: Reported Email Key}
fields:
  Title: {template: "{{.Suspect.Subject}}", format: plain}
  Incident Description:
    markup: true
    template: "<p><b>Subject:</b> {{.Suspect.Subject}}</p>\n<p>{{.Suspect.Text}}</p>"
  Observables:
    machine: true
    template: "{{range .Suspect.Observables.URLs}}{{.URL}}\n{{end}}"
  Reference Links: {template: "{{range .Suspect.Observables.URLs}}Link | {{.URL}}\n{{end}}"}
  Incident Category: {value: Phishing}
  Email Attachments: {attach: [original, attachments]}
`

func TestMarkupAndMachineFields(t *testing.T) {
	t.Parallel()
	c := compileYAML(t, strings.Replace(optionsMapping, "%s", "zip", 1))
	rep := hostileReport()
	rep.Suspect.Text = "a <b>\nb"
	inc, err := c.Render(rep, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fields := textFields(t, inc)
	if got := fields["Incident Description"]; got != "<p><b>Subject:</b> &lt;img src=x onerror=alert(document.cookie)&gt; Invoice[U+202E]fdp.exe hxxps://evil.example/a</p>\n<p>a &lt;b&gt;<br>b</p>" {
		t.Errorf("markup field %q", got)
	}
	if got := fields["Observables"]; got != "https://r.example/redirect?url=https://landing.example/x<br>https://landing.example/x" {
		t.Errorf("machine field %q", got)
	}
	b, _ := json.Marshal(inc.Record)
	if !strings.Contains(string(b), `"Name":"Link","URL":"hxxps://r.example/redirect?url=hxxps://landing.example/x"`) {
		t.Errorf("external links not defanged: %s", b)
	}
}

func TestAttachmentModes(t *testing.T) {
	t.Parallel()
	atts := []email.Attachment{
		{Name: "pay.exe", Data: []byte("MZ\x90\x00 pay")},
		{Name: "../invoice.html", Data: []byte("<script>steal()</script>")},
		{Name: "PAY.exe", Data: []byte("second pay")},
		{Name: "embedded.msg"}, // listed by name only: no content
	}
	render := func(mode string) (*Compiled, *Incident) {
		c := compileYAML(t, strings.Replace(optionsMapping, "%s", mode, 1))
		rep := report()
		rep.Suspect.Attachments = atts
		inc, err := c.Render(rep, nil, time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		return c, inc
	}
	names := func(inc *Incident) []string {
		var out []string
		for _, f := range inc.Files {
			out = append(out, f.Name)
		}
		return out
	}

	c, inc := render("none")
	if got := names(inc); len(got) != 1 || got[0] != "Your mailbox is full.eml" || len(c.Warnings()) != 0 {
		t.Errorf("none: files %q, warnings %q", got, c.Warnings())
	}

	c, inc = render("raw")
	if got := strings.Join(names(inc), ","); got != "Your mailbox is full.eml,pay.exe,invoice.html,PAY.exe" {
		t.Errorf("raw: files %s", got)
	}
	if len(c.Warnings()) != 1 || !strings.Contains(c.Warnings()[0], "raw") {
		t.Errorf("raw: warnings %q", c.Warnings())
	}
	if got := readFile(t, inc.Files[2]); string(got) != "<script>steal()</script>" {
		t.Errorf("raw: content %q", got)
	}

	_, inc = render("zip")
	if got := names(inc); len(got) != 2 || got[1] != "attachments-phish@contoso.com_AAMkAGI2TG93AAA_.zip" {
		t.Fatalf("zip: files %q", got)
	}
	archive := readFile(t, inc.Files[1])
	if again := readFile(t, inc.Files[1]); len(again) != len(archive) {
		t.Errorf("a second Open gave %d bytes, the first %d", len(again), len(archive))
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"pay.exe": atts[0].Data, "invoice.html": atts[1].Data, "PAY (2).exe": atts[2].Data}
	if len(zr.File) != len(want) {
		t.Errorf("zip holds %d entries, want %d", len(zr.File), len(want))
	}
	for _, f := range zr.File {
		w, ok := want[f.Name]
		if !ok || f.UncompressedSize64 != uint64(len(w)) || f.Flags&1 == 0 {
			t.Errorf("entry %q: %d bytes, flags %x", f.Name, f.UncompressedSize64, f.Flags)
		}
	}
	extractWithPassword(t, archive, want)
}

// extractWithPassword extracts the archive with a standard tool and the
// password "infected", and compares every file's SHA-256.
func extractWithPassword(t *testing.T, archive []byte, want map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.zip")
	if err := os.WriteFile(path, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var cmd *exec.Cmd
	switch {
	case lookPath("7z"):
		cmd = exec.Command("7z", "x", "-p"+ArchivePassword, "-o"+out, path)
	case lookPath("unzip"):
		cmd = exec.Command("unzip", "-P", ArchivePassword, "-d", out, path)
	default:
		t.Skip("neither 7z nor unzip is installed")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("extracted %s: %v", name, err)
			continue
		}
		if sha256.Sum256(got) != sha256.Sum256(content) {
			t.Errorf("extracted %s differs: %q", name, got)
		}
	}
}

func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// TestArchiveWriterStopsWhenTheReaderIsClosed closes the reader of the
// archive's pipe after a few bytes: the writer must return, so the
// goroutine Open starts cannot outlive an abandoned upload.
func TestArchiveWriterStopsWhenTheReaderIsClosed(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- writeArchive(pw, []email.Attachment{{Name: "a.bin", Data: big}, {Name: "b.bin", Data: big}}, time.Now())
	}()
	if _, err := io.ReadFull(pr, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("writer returned %v, want io.ErrClosedPipe", err)
	}
}

func TestArchiveName(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"phish@contoso.com/AAMk+AGI2=": "attachments-phish@contoso.com_AAMk_AGI2_.zip",
		"../../etc/passwd":             "attachments-.._.._etc_passwd.zip",
		"a\x00b\u202Ec":                "attachments-a_b_c.zip",
		strings.Repeat("k", 500):       "attachments-" + strings.Repeat("k", 120) + ".zip",
	} {
		if got := ArchiveName(key); got != want {
			t.Errorf("ArchiveName(%q) = %q, want %q", key, got, want)
		}
	}
}
