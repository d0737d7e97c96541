package email

import (
	"bytes"
	"strconv"
	"strings"

	"golang.org/x/net/html"
)

// htmlScan is what one pass over an HTML body finds.
type htmlScan struct {
	// Text is the body as a reader sees it: block elements on their own
	// lines, each link followed by its target in parentheses when the
	// target differs from the displayed text. Empty unless asked for.
	Text string
	// Links are the <a>/<area> targets with their displayed text, <form>
	// actions and meta-refresh targets, in document order, not yet unwrapped.
	Links []URL
	// Images are the remote images the body loads.
	Images []htmlImage
	// Mailto are the addresses of mailto: links.
	Mailto []string
	// Hidden is the text of elements a reader never sees (title, script,
	// noscript, noframes, ...), at most maxHiddenText bytes: links hidden
	// there are indicators too.
	Hidden string
}

// maxHiddenText bounds htmlScan.Hidden.
const maxHiddenText = 64 << 10

// htmlImage is one remote image of an HTML body.
type htmlImage struct {
	URL string
	// Pixel is true for an image too small or hidden to be seen: a
	// tracking pixel.
	Pixel bool
}

// htmlBlock lists the elements that start on a line of their own; the value
// is the number of line breaks around them (2: a paragraph).
var htmlBlock = map[string]int{
	"p": 2, "h1": 2, "h2": 2, "h3": 2, "h4": 2, "h5": 2, "h6": 2, "table": 2, "blockquote": 2,
	"ul": 2, "ol": 2, "pre": 2, "dl": 2,
	"div": 1, "tr": 1, "li": 1, "hr": 1, "section": 1, "article": 1, "header": 1, "footer": 1,
	"center": 1, "address": 1, "form": 1, "fieldset": 1, "dt": 1, "dd": 1, "main": 1, "nav": 1,
	"aside": 1, "figure": 1, "caption": 1, "tbody": 1, "thead": 1, "tfoot": 1, "body": 1,
}

// htmlHidden lists the elements whose content the tokenizer returns as one
// raw text token and a reader never sees.
var htmlHidden = map[string]bool{
	"script": true, "style": true, "title": true, "noframes": true, "noembed": true,
	"noscript": true, "iframe": true, "xmp": true, "plaintext": true,
}

// textBuilder collapses white space the way a browser does and bounds the
// number of consecutive line breaks.
type textBuilder struct {
	b        strings.Builder
	newlines int  // line breaks at the end of b
	space    bool // a space is pending before the next word
	pre      int  // depth of <pre>
}

func (t *textBuilder) words(s string) {
	if t.pre > 0 {
		t.raw(s)
		return
	}
	for len(s) > 0 {
		i := strings.IndexFunc(s, isHTMLSpace)
		if i < 0 {
			t.word(s)
			return
		}
		if i > 0 {
			t.word(s[:i])
		}
		t.space = true
		s = strings.TrimLeftFunc(s[i:], isHTMLSpace)
	}
}

func (t *textBuilder) word(w string) {
	if t.space && t.b.Len() > 0 && t.newlines == 0 {
		t.b.WriteByte(' ')
	}
	t.space = false
	t.b.WriteString(w)
	t.newlines = 0
}

func (t *textBuilder) raw(s string) {
	if s == "" {
		return
	}
	t.b.WriteString(s)
	t.newlines = 0
	if strings.HasSuffix(s, "\n") {
		t.newlines = 1
	}
	t.space = false
}

// breakLines ends the current line and adds blank lines up to n line breaks.
func (t *textBuilder) breakLines(n int) {
	t.space = false
	if t.b.Len() == 0 {
		return
	}
	for t.newlines < n {
		t.b.WriteByte('\n')
		t.newlines++
	}
}

func (t *textBuilder) lineBreak() {
	t.space = false
	if t.b.Len() == 0 || t.newlines >= 2 {
		return
	}
	t.b.WriteByte('\n')
	t.newlines++
}

func (t *textBuilder) String() string {
	return strings.TrimSpace(t.b.String())
}

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == 0xa0
}

// scanHTML reads an HTML body once, with the tokenizer (no tree is built),
// and returns its links, images, mailto addresses and, when withText is
// set, its text. The caller bounds the size of body.
func scanHTML(body string, withText bool) htmlScan {
	var out htmlScan
	if body == "" {
		return out
	}
	z := html.NewTokenizer(strings.NewReader(body))
	z.SetMaxBuf(maxScanBytes)
	var text textBuilder
	var cur *URL // the <a> being read
	var linkText, hiddenText strings.Builder
	hidden := "" // the raw-text element being skipped
	var attrs tagAttrs
	finish := func() {
		if cur == nil {
			return
		}
		cur.Text = truncateRunes(strings.Join(strings.Fields(linkText.String()), " "), maxLinkText)
		cur.Mismatch = linkMismatch(cur.URL, cur.Text)
		if len(out.Links) < maxURLs {
			out.Links = append(out.Links, *cur)
		}
		if withText && cur.Text != cur.URL {
			if cur.Text == "" {
				text.word("( " + cur.URL + " )")
			} else {
				text.space = true
				text.word("( " + cur.URL + " )")
			}
		}
		cur = nil
		linkText.Reset()
	}
	addImage := func(src string, pixel bool) {
		if u := remoteURL(src); u != "" && len(out.Images) < maxURLs {
			out.Images = append(out.Images, htmlImage{URL: u, Pixel: pixel})
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			finish()
			if withText {
				out.Text = text.String()
			}
			out.Hidden = strings.ToValidUTF8(hiddenText.String(), "\uFFFD")
			return out
		case html.TextToken:
			if hidden != "" {
				if hidden == "style" {
					for _, u := range cssURLs(string(z.Text())) {
						addImage(u, false)
					}
				} else if room := maxHiddenText - hiddenText.Len(); room > 0 {
					raw := z.Text()
					hiddenText.Write(raw[:min(len(raw), room)])
					hiddenText.WriteByte('\n')
				}
				continue
			}
			raw := z.Text()
			if cur != nil && linkText.Len() < 4*maxLinkText {
				linkText.Write(raw)
			}
			if withText {
				text.words(string(raw))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if htmlHidden[tag] {
				hidden = tag
				continue
			}
			attrs = readAttrs(z, hasAttr, attrs)
			for _, kv := range attrs {
				switch {
				case string(kv[0]) == "style" && bytes.Contains(kv[1], []byte("url(")):
					for _, u := range cssURLs(string(kv[1])) {
						addImage(u, false)
					}
				case string(kv[0]) == "background" && len(kv[1]) > 0:
					addImage(string(kv[1]), false)
				}
			}
			switch tag {
			case "a":
				finish()
				if link := linkTarget(attrs.get("href")); link != "" {
					if tt == html.StartTagToken {
						cur = &URL{URL: link}
					} else if len(out.Links) < maxURLs {
						out.Links = append(out.Links, URL{URL: link})
					}
				} else if addr := mailtoAddress(attrs.get("href")); addr != "" {
					out.Mailto = append(out.Mailto, addr)
				}
			case "area":
				if link := linkTarget(attrs.get("href")); link != "" && len(out.Links) < maxURLs {
					out.Links = append(out.Links, URL{URL: link})
				}
			case "form":
				if link := linkTarget(attrs.get("action")); link != "" && len(out.Links) < maxURLs {
					out.Links = append(out.Links, URL{URL: link})
				}
			case "meta":
				if strings.EqualFold(attrs.get("http-equiv"), "refresh") {
					if link := linkTarget(refreshTarget(attrs.get("content"))); link != "" && len(out.Links) < maxURLs {
						out.Links = append(out.Links, URL{URL: link})
					}
				}
			case "img", "v:image", "v:imagedata", "v:fill":
				addImage(attrs.get("src"), isPixel(attrs))
			case "input":
				if strings.EqualFold(attrs.get("type"), "image") {
					addImage(attrs.get("src"), isPixel(attrs))
				}
			case "br":
				if withText {
					text.lineBreak()
				}
			case "pre":
				text.pre++
			case "td", "th":
				if withText {
					text.space = true
				}
			}
			if withText {
				if n, ok := htmlBlock[tag]; ok {
					text.breakLines(n)
					if tag == "li" {
						text.word("*")
						text.space = true
					}
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if hidden != "" {
				if tag == hidden {
					hidden = ""
				}
				continue
			}
			switch tag {
			case "a":
				finish()
			case "pre":
				text.pre = max(0, text.pre-1)
			}
			if withText {
				if n, ok := htmlBlock[tag]; ok {
					text.breakLines(n)
				}
			}
		}
	}
}

// tagAttrs are the attributes of the current tag, valid until the
// tokenizer moves on.
type tagAttrs [][2][]byte

// get returns the first value of an attribute, or "".
func (a tagAttrs) get(name string) string {
	for _, kv := range a {
		if string(kv[0]) == name {
			return string(kv[1])
		}
	}
	return ""
}

// readAttrs reads at most 64 attributes of the current tag into buf.
func readAttrs(z *html.Tokenizer, more bool, buf tagAttrs) tagAttrs {
	buf = buf[:0]
	for n := 0; more && n < 64; n++ {
		var k, v []byte
		k, v, more = z.TagAttr()
		buf = append(buf, [2][]byte{k, v})
	}
	return buf
}

// linkTarget returns an absolute http(s) or ftp link with the tabs and line
// breaks a browser ignores removed, or "".
func linkTarget(v string) string {
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\t\r\n") {
		v = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(v)
	}
	if hasSchemeFold(v, "http://") || hasSchemeFold(v, "https://") || hasSchemeFold(v, "ftp://") {
		return v
	}
	return ""
}

func hasSchemeFold(s, scheme string) bool {
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme)
}

// remoteURL returns an image source loaded from the network (http, https
// or protocol-relative), or "".
func remoteURL(v string) string {
	v = strings.Trim(strings.TrimSpace(v), `'"`)
	if strings.HasPrefix(v, "//") {
		v = "https:" + v
	}
	return linkTarget(v)
}

// mailtoAddress returns the address of a mailto: link, or "".
func mailtoAddress(v string) string {
	v = strings.TrimSpace(v)
	if !hasSchemeFold(v, "mailto:") {
		return ""
	}
	v = v[len("mailto:"):]
	if i := strings.IndexAny(v, "?,;"); i >= 0 {
		v = v[:i]
	}
	if spec := addrSpec.FindString(v); spec != "" {
		return strings.ToLower(spec)
	}
	return ""
}

// refreshTarget returns the URL of a meta refresh ("5; url=https://...").
func refreshTarget(content string) string {
	i := strings.Index(strings.ToLower(content), "url=")
	if i < 0 {
		return ""
	}
	return strings.Trim(strings.TrimSpace(content[i+4:]), `'"`)
}

// cssURLs returns the url(...) references of a style sheet or attribute,
// at most 50.
func cssURLs(css string) []string {
	var out []string
	for len(out) < 50 {
		i := strings.Index(css, "url(")
		if i < 0 {
			break
		}
		css = css[i+4:]
		j := strings.IndexByte(css, ')')
		if j < 0 {
			break
		}
		out = append(out, strings.Trim(strings.TrimSpace(css[:j]), `'"`))
		css = css[j+1:]
	}
	return out
}

// isPixel reports whether an image is sized or styled to be invisible: both
// dimensions of at most 2 pixels, either of 0, or hidden.
func isPixel(attrs tagAttrs) bool {
	w, h := pixels(attrs.get("width")), pixels(attrs.get("height"))
	style := strings.ToLower(strings.ReplaceAll(attrs.get("style"), " ", ""))
	if style != "" {
		if strings.Contains(style, "display:none") || strings.Contains(style, "visibility:hidden") {
			return true
		}
		if v := cssValue(style, "width:"); v != "" && w < 0 {
			w = pixels(v)
		}
		if v := cssValue(style, "height:"); v != "" && h < 0 {
			h = pixels(v)
		}
	}
	return w == 0 || h == 0 || (w >= 0 && h >= 0 && w <= 2 && h <= 2)
}

// cssValue returns the value of a property in a declaration list without
// spaces ("width:1px;height:1px"), or "".
func cssValue(style, prop string) string {
	for _, decl := range strings.Split(style, ";") {
		if strings.HasPrefix(decl, prop) {
			return decl[len(prop):]
		}
	}
	return ""
}

// pixels reads a length in pixels ("1", "1px"); -1 when absent or not one.
func pixels(v string) int {
	v = strings.TrimSuffix(strings.TrimSpace(strings.ToLower(v)), "px")
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
