package email

import (
	"mime"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/net/html/charset"
)

// bodies are the text and HTML bodies of a parsed message, chosen from its
// part tree as mail clients choose them, and the parser's errors. It reads
// only the part tree: the parser's envelope would also link an HTML-to-text
// converter the analysis does not use (it scans the HTML itself).
type bodies struct {
	text, html string
	errs       []*enmime.Error
}

// bodiesOf picks the bodies of root:
//   - a multipart message: for multipart/alternative the first text/plain
//     part found breadth first, else every text/plain part depth first
//     joined by "\n--\n"; the first text/html part depth first; parts with
//     Content-Disposition attachment are never bodies;
//   - a single part: text/html is the HTML body (read in the charset its
//     own meta tag names when the header names none), any other text the
//     text body, and a part that is an attachment no body at all.
func bodiesOf(root *enmime.Part) bodies {
	var b bodies
	mt, params, _ := mime.ParseMediaType(root.Header.Get("Content-Type"))
	mt = strings.ToLower(mt)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		isBody := func(p *enmime.Part, ct string) bool {
			return p.ContentType == ct && p.Disposition != "attachment"
		}
		if mt == "multipart/alternative" {
			if p := root.BreadthMatchFirst(func(p *enmime.Part) bool { return isBody(p, "text/plain") }); p != nil {
				b.text = string(p.Content)
			}
		} else {
			var texts []string
			for _, p := range root.DepthMatchAll(func(p *enmime.Part) bool { return isBody(p, "text/plain") }) {
				texts = append(texts, string(p.Content))
			}
			b.text = strings.Join(texts, "\n--\n")
		}
		if p := root.DepthMatchFirst(func(p *enmime.Part) bool { return isBody(p, "text/html") }); p != nil {
			b.html = string(p.Content)
		}
	case isAttachmentBody(root, mt):
	case mt == "text/html":
		b.html = string(root.Content)
		if params["charset"] == "" {
			b.html = htmlInItsCharset(root.Content)
		}
	default:
		b.text = string(root.Content)
	}
	_ = root.DepthMatchAll(func(p *enmime.Part) bool {
		b.errs = append(b.errs, p.Errors...)
		return false
	})
	return b
}

// isAttachmentBody reports whether a single-part message of media type mt
// is a file rather than a text: marked as an attachment, or of a type other
// than text (a missing Content-Type is text).
func isAttachmentBody(root *enmime.Part, mt string) bool {
	disp, dparams, _ := mime.ParseMediaType(root.Header.Get("Content-Disposition"))
	disp = strings.ToLower(disp)
	if mt == "" || mt == "text/plain" || mt == "text/html" {
		return disp == "attachment"
	}
	if disp == "attachment" || (disp == "inline" && len(dparams) > 0) {
		return true
	}
	return mt != "text/plain" && mt != "text/html"
}

// htmlInItsCharset decodes an HTML body whose header names no charset in
// the charset its meta tag declares; without one it is kept as it is.
func htmlInItsCharset(content []byte) string {
	enc, name, certain := charset.DetermineEncoding(content, "text/html")
	if !certain || name == "" || name == "utf-8" || name == "windows-1252" && !strings.Contains(strings.ToLower(string(content[:min(len(content), 4096)])), "charset") {
		return string(content)
	}
	out, err := enc.NewDecoder().Bytes(content)
	if err != nil {
		return string(content)
	}
	return string(out)
}
