package graphsim

import (
	"strings"
	"testing"
)

func FuzzParseMIME(f *testing.F) {
	f.Add([]byte("From: a@b.c\r\nSubject: hi\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n--x--"))
	f.Add([]byte("From: =?utf-8?b?w6k=?= <a@b.c>\r\nTo: ,,,\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := parseMIME(raw)
		if err == nil && v == nil {
			t.Fatal("nil view without an error")
		}
	})
}

func TestParseMIMEEdgeCases(t *testing.T) {
	t.Parallel()
	v, err := parseMIME([]byte("From: not an address\r\nTo: Bob <bob@example.com>, broken@\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nX-Long: a\r\n b\r\n\tc\r\n\r\n" + strings.Repeat("word ", 100)))
	if err != nil {
		t.Fatal(err)
	}
	if v.subject != "café" {
		t.Errorf("subject %q", v.subject)
	}
	if v.from == nil || v.from.Address != "not an address" {
		t.Errorf("an unparseable From is kept as text, got %+v", v.from)
	}
	if got := v.headers[3]; got.Name != "X-Long" || got.Value != "a b c" {
		t.Errorf("folded header = %+v", got)
	}
	if p := bodyPreview(strings.Repeat("word ", 100)); len([]rune(p)) != 255 {
		t.Errorf("preview has %d characters", len([]rune(p)))
	}
	if !strings.Contains(textAsHTML("<script>\n"), "&lt;script&gt;<br>") {
		t.Error("text bodies must be escaped when rendered as HTML")
	}
}
