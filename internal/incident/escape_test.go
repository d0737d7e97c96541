package incident

import (
	"strings"
	"testing"
	"time"
)

func value(s string) piece { return piece{s: s, value: true} }
func text(s string) piece  { return piece{s: s} }

var (
	rich    = textMode{kind: kindRich}
	plain   = textMode{kind: kindPlain}
	markup  = textMode{kind: kindRich, markup: true}
	machine = textMode{kind: kindRich, machine: true}
	links   = textMode{kind: kindLinks}
)

func TestEscapeTextHostileInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pieces []piece
		mode   textMode
		want   string
	}{
		{"script", []piece{value("<script>alert(1)</script>")}, rich, "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"onerror attribute", []piece{value(`<img src=x onerror=alert(document.cookie)>`)}, rich, "&lt;img src=x onerror=alert(document.cookie)&gt;"},
		{"quotes", []piece{value(`a" onmouseover='x'`)}, rich, "a&#34; onmouseover=&#39;x&#39;"},
		{"javascript URL", []piece{value(`<a href="javascript:alert(1)">x</a>`)}, rich, "&lt;a href=&#34;javascript:alert(1)&#34;&gt;x&lt;/a&gt;"},
		{"entities stay text", []piece{value("&lt;b&gt; &amp; &#60;")}, rich, "&amp;lt;b&amp;gt; &amp;amp; &amp;#60;"},
		{"display name and address", []piece{value(`"IT Desk" <it@evil.example>`)}, rich, "&#34;IT Desk&#34; &lt;it@evil.example&gt;"},
		{"display name and address in plain", []piece{value(`"IT Desk" <it@evil.example>`)}, plain, `"IT Desk" ‹it@evil.example›`},
		{"markup in plain", []piece{value(`<img src=x onerror=alert(1)>`)}, plain, `‹img src=x onerror=alert(1)›`},
		{"template text in plain is the author's", []piece{text("a < b: "), value("<x>")}, plain, "a < b: ‹x›"},
		{"RTL override", []piece{value("invoice\u202Efdp.exe")}, rich, "invoice[U+202E]fdp.exe"},
		{"every bidi control", []piece{value("a\u202Ab\u2066c\u2069d\u200Ee\u200Ff\u061Cg")}, plain, "a[U+202A]b[U+2066]c[U+2069]d[U+200E]e[U+200F]f[U+061C]g"},
		{"NUL and controls", []piece{value("a\x00b\x07c\x1bd\x7fe\u0085f\tg")}, plain, "abcdef\tg"},
		{"invalid UTF-8", []piece{value("a\xff\xfeb")}, plain, "a\uFFFD\uFFFDb"},
		{"line breaks in rich", []piece{value("one\r\ntwo\rthree\nfour")}, rich, "one<br>two<br>three<br>four"},
		{"line breaks in plain", []piece{value("one\r\n\r\n  two \n\tthree")}, plain, "one two three"},
		{"trimmed", []piece{text("\n  "), value(" x "), text("\n\n")}, rich, "x"},
		{"only spaces leave the field out", []piece{text("\n"), value("  \u0000 ")}, rich, ""},
		{"template text escaped", []piece{text("<b>Subject:</b> "), value("<i>x</i>")}, rich, "&lt;b&gt;Subject:&lt;/b&gt; &lt;i&gt;x&lt;/i&gt;"},
		{"markup trusts the template text only", []piece{text("<b>Subject:</b>\n"), value("<i>x</i>\ny")}, markup, "<b>Subject:</b>\n&lt;i&gt;x&lt;/i&gt;<br>y"},
		{"template text line breaks", []piece{text("a\nb")}, rich, "a<br>b"},
		{"live link in a value", []piece{value("see https://evil.example/x and HTTP://evil.example")}, rich, "see hxxps://evil.example/x and hxxp://evil.example"},
		{"ftp link", []piece{value("ftp://files.evil.example")}, plain, "fxp://files.evil.example"},
		{"scheme glued to a word", []piece{value("xhttps://evil.example")}, plain, "xhxxps://evil.example"},
		{"link split over two values", []piece{value("https:"), value("//evil.example")}, plain, "hxxps://evil.example"},
		{"value host after template scheme", []piece{text("https://"), value("evil.example")}, plain, "hxxps://evil.example"},
		{"template's own link stays", []piece{text("<a href=\"https://wiki.contoso.com/phish\">runbook</a> "), value("x")}, markup, "<a href=\"https://wiki.contoso.com/phish\">runbook</a> x"},
		{"machine keeps links", []piece{value("https://evil.example/?a=1&b=<2>")}, machine, "https://evil.example/?a=1&amp;b=&lt;2&gt;"},
		{"links keep lines", []piece{value("Login page | https://evil.example/login\nhttp://x.example")}, links, "Login page | hxxps://evil.example/login\nhxxp://x.example"},
		{"line separators", []piece{value("a\u2028b")}, rich, "a<br>b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := escapeText(tt.pieces, tt.mode); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestEscapeTextIsLinear feeds a megabyte of the characters that grow
// the most, and of scheme separators, and checks the time stays that of a
// linear pass.
func TestEscapeTextIsLinear(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		strings.Repeat("<", 1<<20),
		strings.Repeat("https://", 1<<17),
		strings.Repeat(" \n", 1<<19),
		strings.Repeat("\u202E", 1<<18),
	} {
		start := time.Now()
		rich := escapeText([]piece{value(in)}, rich)
		plainOut := escapeText([]piece{text("a"), value(in), text("b")}, plain)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q…: %v for 1 MB", in[:8], d)
		}
		if strings.Contains(rich, "<") && !strings.Contains(rich, "<br>") || strings.Contains(plainOut, "https://") {
			t.Errorf("%q…: unsafe output", in[:8])
		}
	}
	out := escapeText([]piece{value(strings.Repeat("<", 1<<20))}, rich)
	if len(out) != 4<<20 {
		t.Errorf("1 MB of < gave %d bytes, want %d", len(out), 4<<20)
	}
}

func FuzzEscapeText(f *testing.F) {
	f.Add("<script>", "https://evil.example", true)
	f.Add("a\r\nb", "\u202E\x00", false)
	f.Fuzz(func(t *testing.T, tpl, val string, isRich bool) {
		m := plain
		if isRich {
			m = rich
		}
		out := escapeText([]piece{text(tpl), value(val), text(tpl)}, m)
		if isRich && strings.ContainsAny(strings.ReplaceAll(out, "<br>", ""), "<>\"'") {
			t.Errorf("rich output holds markup: %q", out)
		}
		for _, r := range out {
			if isBidiControl(r) || (r < 0x20 && r != '\t' && r != '\n') {
				t.Errorf("output holds control %U: %q", r, out)
			}
		}
		if !isRich && strings.Contains(out, "\n") {
			t.Errorf("plain output holds a line break: %q", out)
		}
		// With no scheme separator in the template's text, any link in
		// the output involves the value and must be defanged.
		lower := asciiLower(out)
		if !strings.ContainsAny(tpl, ":/") && (strings.Contains(lower, "http://") || strings.Contains(lower, "https://") || strings.Contains(lower, "ftp://")) {
			t.Errorf("live link from a value: %q", out)
		}
	})
}
