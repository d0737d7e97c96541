package incident

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text formats of an Archer text field, as the mapping names them. Archer's
// text field has a "Display Control" (single-line text field or multi-line
// rich text area) that its REST metadata does not reliably expose, so the
// mapping says which.
const (
	// FormatRich is a rich text area, which renders HTML: values are
	// HTML-escaped and line breaks become <br>. It is the default, because
	// it is the safe choice for a field whose display control is unknown.
	FormatRich = "rich"
	// FormatPlain is a single-line text field, which Archer shows as text:
	// nothing is HTML-escaped, line breaks become a space, and the angle
	// brackets of values become ‹ and ›, so a value stays inert even if
	// the field turns out to render HTML.
	FormatPlain = "plain"
)

// textKind is how a template's output is written into a field.
type textKind int

const (
	// kindRich HTML-escapes and turns line breaks into <br>.
	kindRich textKind = iota
	// kindPlain turns line breaks into a space and the angle brackets of
	// values into ‹ ›.
	kindPlain
	// kindLinks escapes nothing and keeps lines: one external link per
	// line.
	kindLinks
)

// textMode is how one field's text is written.
type textMode struct {
	kind textKind
	// markup trusts the template's own text as HTML written by the
	// mapping's author (rich fields only); values are still escaped.
	markup bool
	// machine keeps the URLs in values live, for fields read by programs.
	machine bool
}

// piece is part of a template's output: the template's own text, or a
// value an action printed (which may come from the email).
type piece struct {
	s     string
	value bool
}

// escapeText is the one place where text becomes the content of an Archer
// text or external-links field. In order:
//
//  1. Every piece is cleaned: invalid UTF-8 becomes U+FFFD; NUL and the
//     other control characters except tab and line breaks are removed;
//     CR LF and CR become LF; Unicode bidirectional controls (U+202A–U+202E,
//     U+2066–U+2069, U+200E, U+200F, U+061C) are shown as "[U+202E]", so a
//     right-to-left override cannot make "invoice‮fdp.exe" read as
//     "invoiceexe.pdf".
//  2. Spaces and line breaks around the whole text are trimmed.
//  3. Unless the field is for machines, a URL scheme that a value takes
//     part in (the scheme, its "://" or the host after it) is defanged:
//     http:// → hxxp://, https:// → hxxps://, ftp:// → fxp://. So no live
//     link from an email reaches a field read by people, even when a
//     template forgot defang.
//  4. Rich text: values are HTML-escapes (& < > " ') and their line breaks
//     become <br>; so is the template's own text unless the field says
//     markup: true. Plain text: nothing is HTML-escaped, but the < and >
//     of values become ‹ and › (a single-line field that rendered HTML
//     after all still gets no markup from an email), and every line
//     break, with the spaces around it, becomes one space. Links: nothing
//     is escaped; lines stay.
//
// It runs in time linear in the text's length.
func escapeText(pieces []piece, m textMode) string {
	type span struct {
		end   int
		value bool
	}
	var buf bytes.Buffer
	spans := make([]span, 0, len(pieces))
	for _, p := range pieces {
		before := buf.Len()
		cleanInto(&buf, p.s)
		if buf.Len() > before {
			spans = append(spans, span{buf.Len(), p.value})
		}
	}
	s := buf.Bytes()
	lo, hi := 0, len(s)
	for lo < hi && isTrimSpace(s[lo]) {
		lo++
	}
	for hi > lo && isTrimSpace(s[hi-1]) {
		hi--
	}
	if lo == hi {
		return ""
	}
	// fromValue reports whether a byte of s[a:b] was printed by an
	// action; it is called with a growing a.
	first := 0
	fromValue := func(a, b int) bool {
		for first < len(spans) && spans[first].end <= a {
			first++
		}
		for i := first; i < len(spans); i++ {
			if spans[i].value {
				return true
			}
			if spans[i].end >= b {
				break
			}
		}
		return false
	}
	if !m.machine {
		defangSchemes(s[:hi], fromValue)
	}
	var out strings.Builder
	out.Grow(hi - lo + 16)
	start := 0
	for _, sp := range spans {
		a, b := max(start, lo), min(sp.end, hi)
		start = sp.end
		if a >= b {
			continue
		}
		part := s[a:b]
		if m.kind == kindRich && (sp.value || !m.markup) {
			writeHTML(&out, part)
			continue
		}
		if m.kind == kindPlain && sp.value {
			writeInert(&out, part)
			continue
		}
		out.Write(part)
	}
	if m.kind == kindPlain {
		return joinLines(out.String())
	}
	return out.String()
}

// writeInert writes p with its angle brackets as the single guillemets ‹ ›,
// which read the same to an analyst and are never markup.
func writeInert(out *strings.Builder, p []byte) {
	for {
		i := bytes.IndexAny(p, "<>")
		if i < 0 {
			out.Write(p)
			return
		}
		out.Write(p[:i])
		if p[i] == '<' {
			out.WriteString("‹")
		} else {
			out.WriteString("›")
		}
		p = p[i+1:]
	}
}

func isTrimSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n'
}

// isBidiControl reports the characters that change the direction of
// text.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200E || r == 0x200F || r == 0x061C
}

// cleanInto writes s without control characters (see escapeText).
func cleanInto(b *bytes.Buffer, s string) {
	run := 0 // start of the run of printable ASCII being copied
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		b.WriteString(s[run:i])
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		run = i
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\n' || r == '\t':
			b.WriteByte(byte(r))
		case r == '\r':
			if i < len(s) && s[i] == '\n' {
				continue
			}
			b.WriteByte('\n')
		case r == '\u2028' || r == '\u2029':
			b.WriteByte('\n')
		case isBidiControl(r):
			fmt.Fprintf(b, "[U+%04X]", r)
		case unicode.IsControl(r):
		default:
			b.WriteString(s[i-size : i])
		}
	}
	b.WriteString(s[run:])
}

// defangSchemes rewrites, in place, the http, https and ftp schemes of
// links a value takes part in. The rewrites keep the length.
func defangSchemes(s []byte, fromValue func(a, b int) bool) {
	for from := 0; ; {
		k := bytes.Index(s[from:], []byte("://"))
		if k < 0 {
			return
		}
		sep := from + k
		from = sep + 3
		j := sep
		for j > 0 && j > sep-5 && isASCIILetter(s[j-1]) {
			j--
		}
		var scheme, with string
		lower := asciiLower(string(s[j:sep]))
		switch {
		case strings.HasSuffix(lower, "https"):
			scheme, with = "https", "hxxps"
		case strings.HasSuffix(lower, "http"):
			scheme, with = "http", "hxxp"
		case strings.HasSuffix(lower, "ftp"):
			scheme, with = "ftp", "fxp"
		default:
			continue
		}
		hostEnd := from
		for hostEnd < len(s) && !isHostEnd(s[hostEnd]) {
			hostEnd++
		}
		if fromValue(sep-len(scheme), hostEnd) {
			copy(s[sep-len(scheme):sep], with)
		}
	}
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isHostEnd(c byte) bool {
	switch c {
	case '/', '?', '#', ' ', '\t', '\n', '<', '>', '"', '\'', '\\':
		return true
	}
	return false
}

// writeHTML writes text HTML-escaped, with line breaks as <br>.
func writeHTML(out *strings.Builder, text []byte) {
	last := 0
	for i, c := range text {
		var rep string
		switch c {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		case '\n':
			rep = "<br>"
		default:
			continue
		}
		out.Write(text[last:i])
		out.WriteString(rep)
		last = i + 1
	}
	out.Write(text[last:])
}

// joinLines turns every line break, with the spaces and tabs around it,
// into one space.
func joinLines(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if c := s[i]; c != ' ' && c != '\t' && c != '\n' {
			b.WriteByte(c)
			i++
			continue
		}
		j, hasBreak := i, false
		for ; j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n'); j++ {
			hasBreak = hasBreak || s[j] == '\n'
		}
		if hasBreak {
			b.WriteByte(' ')
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}
