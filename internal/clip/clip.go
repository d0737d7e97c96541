// Package clip shortens text from outside — an error body, a subject, a
// log value — for one line of a log, a table or an error: runs of white
// space become one space, invalid UTF-8 becomes U+FFFD, and a cut never
// splits a character and ends in "…".
package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s on one line of at most n characters (runes), ending in
// "…" when it was cut. n < 1 gives "".
func String(s string, n int) string {
	if n < 1 {
		return ""
	}
	var b strings.Builder
	b.Grow(min(len(s), 4*n))
	count, space := 0, false
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				r = unicode.ReplacementChar
			}
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if count == n {
				return cut(&b)
			}
			b.WriteByte(' ')
			count++
			space = false
		}
		if count == n {
			return cut(&b)
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// cut ends b's text, which holds n characters and has more after it, in
// "…" instead of its last character.
func cut(b *strings.Builder) string {
	s := b.String()
	_, size := utf8.DecodeLastRuneInString(s)
	return strings.TrimRight(s[:len(s)-size], " ") + "…"
}

// Bytes is String for a body read from the network.
func Bytes(data []byte, n int) string {
	if len(data) > 8*n {
		data = data[:8*n] // enough for n characters; the rest is never shown
	}
	return String(string(data), n)
}
