package sandbox

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hostileEmail carries markup, scripts, control characters and nested
// redirect URLs in every place an attacker writes: the subject, the
// display name, the body, an attachment's name and the links.
func hostileEmail() []byte {
	html := `<html><body><p>Dear user <script>alert(1)</script><img src="https://track.evil.example/p.gif" width="1" height="1">` +
		`<a href="https://r.evil.example/redirect?url=https%3A%2F%2Flanding.evil.example%2Flogin">` +
		`<b>https://login.microsoftonline.com</b></a> or javascript:alert(2) &amp; more` + "\u202e" + `gnp.exe</p></body></html>`
	att := base64.StdEncoding.EncodeToString([]byte("<html><script>alert(3)</script></html>"))
	return []byte("From: \"IT Desk <script>alert(document.cookie)</script>\" <it@evil.example>\r\n" +
		"To: phish@contoso.com\r\n" +
		"Subject: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("<img src=x onerror=alert(4)> Invoice\u202efdp.exe \x07 https://evil.example/a")) + "?=\r\n" +
		"Message-ID: <hostile-1@evil.example>\r\n" +
		"Date: Fri, 27 Nov 2026 09:30:00 +0000\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n" +
		"--b1\r\nContent-Type: text/html; name=\"<svg onload=alert(5)>.html\"\r\n" +
		"Content-Disposition: attachment; filename=\"<svg onload=alert(5)>.html\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + att + "\r\n--b1--\r\n")
}

func TestNothingAnAttackerWroteIsLiveInTheRecord(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	if _, err := sb.Deliver(hostileEmail()); err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitRecords(waitCtx(t, 20*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	fields := recs[0].Fields
	textFields := 0
	for name, v := range fields {
		s, ok := v.(string)
		if !ok {
			continue // values lists, dates, attachments: typed, not text
		}
		textFields++
		// Rich text fields carry the mapping's own <br>; nothing else.
		if rest := strings.ReplaceAll(s, "<br>", ""); strings.Contains(rest, "<") {
			t.Errorf("%s holds markup the mapping did not write: %q", name, s)
		}
		if lower := strings.ToLower(s); strings.Contains(lower, "http://") || strings.Contains(lower, "https://") {
			t.Errorf("%s holds a live link: %q", name, s)
		}
		if strings.ContainsAny(s, "\x07\u202e") {
			t.Errorf("%s holds control or direction characters: %q", name, s)
		}
	}
	if textFields < 6 {
		t.Fatalf("only %d text fields in the record: %v", textFields, fields)
	}
	obs := fmt.Sprint(fields["Observables"])
	if !strings.Contains(obs, "landing[.]evil[.]example") {
		t.Errorf("the landing domain nested in the redirect is not among the observables:\n%s", obs)
	}
	if !strings.Contains(fmt.Sprint(fields["Sender"]), "it@evil[.]example") {
		t.Errorf("the sender's address is lost: %q", fields["Sender"])
	}
}
