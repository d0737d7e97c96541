package email

import (
	"strings"
	"testing"
)

func TestScanHTMLText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, html, want string
	}{
		{"paragraphs and line breaks", "<p>One <b>bold</b>\n  word.</p><p>Two<br>lines</p>", "One bold word.\n\nTwo\nlines"},
		{"link with other text shows its target", `<a href="https://x.example/a">Open</a>`, "Open ( https://x.example/a )"},
		{"link showing its own target", `<a href="https://x.example/a">https://x.example/a</a>`, "https://x.example/a"},
		{"hidden elements are not text", "<head><title>T</title><style>p{}</style></head><script>var a;</script><p>shown</p>", "shown"},
		{"list items", "<ul><li>a</li><li>b</li></ul>", "* a\n* b"},
		{"table cells", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"pre keeps spaces", "<pre>a  b\n c</pre>", "a  b\n c"},
		{"entities", "<p>&lt;x&gt; &amp; &eacute;</p>", "<x> & é"},
		{"outlook forward header", "<div><b>From:</b> Eve &lt;eve@x.example&gt;<br><b>Sent:</b> Monday<br><b>Subject:</b> Doc</div><p>hi</p>",
			"From: Eve <eve@x.example>\nSent: Monday\nSubject: Doc\n\nhi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := scanHTML(tt.html, true).Text; got != tt.want {
				t.Errorf("text = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScanHTMLLinksAndImages(t *testing.T) {
	t.Parallel()
	body := `<html><head><title>https://title-hidden.example/x</title>
<style>td { background: url('https://css-sheet.example/bg.png') }</style></head>
<noframes><xml><style></xml></noframes>
<body background="https://body-bg.example/b.jpg">
<a href="  https://ok.example/a
 b">Click</a>
<a href="mailto:Help@Desk.example?subject=x">mail us</a>
<a href="#top">top</a><a href="javascript:alert(1)">js</a>
<area href="https://area.example/">
<form action="https://form.example/post"></form>
<meta http-equiv="Refresh" content="0; URL='https://refresh.example/'">
<img src="https://images.example/logo.png" width="120" height="40">
<img src="//pixel.example/p.gif" width="1" height="1">
<img src="https://pixel2.example/o.gif" style="width:1px; height:1px">
<img src="https://pixel3.example/o.gif" style="display: none">
<img src="cid:logo@x">
<div style="background-image: url(&quot;https://div-bg.example/d.png&quot;)">x</div>
</body></html>`
	s := scanHTML(body, false)
	var links []string
	for _, l := range s.Links {
		links = append(links, l.URL)
	}
	wantLinks := "https://ok.example/a b https://area.example/ https://form.example/post https://refresh.example/"
	if got := strings.Join(links, " "); got != wantLinks {
		t.Errorf("links = %q, want %q", got, wantLinks)
	}
	if len(s.Links) > 0 && s.Links[0].Text != "Click" {
		t.Errorf("link text = %q", s.Links[0].Text)
	}
	if strings.Join(s.Mailto, " ") != "help@desk.example" {
		t.Errorf("mailto = %q", s.Mailto)
	}
	var images, pixels []string
	for _, img := range s.Images {
		host := urlHost(img.URL)
		images = append(images, host)
		if img.Pixel {
			pixels = append(pixels, host)
		}
	}
	wantImages := "css-sheet.example body-bg.example images.example pixel.example pixel2.example pixel3.example div-bg.example"
	if got := strings.Join(images, " "); got != wantImages {
		t.Errorf("image hosts = %q, want %q", got, wantImages)
	}
	if got := strings.Join(pixels, " "); got != "pixel.example pixel2.example pixel3.example" {
		t.Errorf("pixel hosts = %q", got)
	}
	if !strings.Contains(s.Hidden, "https://title-hidden.example/x") {
		t.Errorf("hidden text %q lacks the title", s.Hidden)
	}
}

func TestIsPixel(t *testing.T) {
	t.Parallel()
	attrs := func(kv ...string) tagAttrs {
		var a tagAttrs
		for i := 0; i+1 < len(kv); i += 2 {
			a = append(a, [2][]byte{[]byte(kv[i]), []byte(kv[i+1])})
		}
		return a
	}
	tests := []struct {
		attrs tagAttrs
		want  bool
	}{
		{attrs("width", "1", "height", "1"), true},
		{attrs("width", "2px", "height", "0"), true},
		{attrs("width", "0"), true},
		{attrs("style", "visibility:hidden"), true},
		{attrs("style", "WIDTH: 1px; HEIGHT: 1px"), true},
		{attrs("width", "1"), false},
		{attrs("width", "600", "height", "1"), false},
		{attrs("width", "100%", "height", "1"), false},
		{attrs(), false},
	}
	for _, tt := range tests {
		if got := isPixel(tt.attrs); got != tt.want {
			t.Errorf("isPixel(%q) = %v, want %v", tt.attrs, got, tt.want)
		}
	}
}

func TestScanHTMLIsBounded(t *testing.T) {
	t.Parallel()
	body := strings.Repeat(`<a href="https://x.example/`, 1) + strings.Repeat("<img src=https://i.example/a.png>", 2*maxURLs) +
		strings.Repeat("<a href=https://l.example/>x</a>", 2*maxURLs) + "<title>" + strings.Repeat("y", 2*maxHiddenText)
	s := scanHTML(body, true)
	if len(s.Images) > maxURLs || len(s.Links) > maxURLs || len(s.Hidden) > maxHiddenText+1 {
		t.Errorf("images %d, links %d, hidden %d bytes: over the bounds", len(s.Images), len(s.Links), len(s.Hidden))
	}
}
