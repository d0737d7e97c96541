package incident

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"
)

// Defang rewrites every URL, host name, e-mail address and IP address in
// s so that no viewer turns it into a live link, in one style:
//
//	URL scheme   http → hxxp, https → hxxps, ftp → fxp (other schemes kept)
//	host name    every dot bracketed: login[.]evil[.]example
//	e-mail       the domain as a host name: it@evil[.]example
//	IPv4         the last dot bracketed: 192.0.2[.]1
//	IPv6         the last colon bracketed: 2001:db8:[:]1
//
// Replacing "[.]" and "[:]" by "." and ":" gives the original back. The
// host of a URL is defanged whatever it looks like; outside URLs, a word
// counts as a host name only when it ends in a suffix of the public suffix
// list (or a reserved name such as .example or .test), so "hier." and
// "invoice.pdf" stay as they are (a file name ending in a real top-level
// domain, such as "setup.zip", is defanged like a domain). URLs nested in a
// URL, such as the target of an open redirect (?url=https://landing.example,
// also percent-encoded), get their scheme and host defanged too. Text that
// is already defanged does not change.
func Defang(s string) string {
	if !strings.ContainsAny(s, ".:@") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	start, marked := -1, false
	flush := func(end int) {
		if marked {
			b.WriteString(defangWord(s[start:end]))
		} else {
			b.WriteString(s[start:end])
		}
		start, marked = -1, false
	}
	for i, r := range s {
		if isTokenBreak(r) {
			if start >= 0 {
				flush(i)
			}
			b.WriteRune(r)
			continue
		}
		if start < 0 {
			start = i
		}
		// Only a word with a dot, a colon or an at sign can be defanged.
		marked = marked || r == '.' || r == ':' || r == '@'
	}
	if start >= 0 {
		flush(len(s))
	}
	return b.String()
}

// isTokenBreak reports whether r separates the words Defang looks at:
// spaces, and characters that enclose links in text.
func isTokenBreak(r rune) bool {
	switch r {
	case '<', '>', '"', '\'', '(', ')', '`', '|', '\\':
		return true
	}
	return unicode.IsSpace(r) || r == utf8.RuneError
}

// defangWord defangs one word, leaving the punctuation around it.
func defangWord(w string) string {
	lead := len(w) - len(strings.TrimLeft(w, "[{,;*"))
	core := w[lead:]
	trimmed := strings.TrimRight(core, ".,;:!?*}]")
	// Keep the closing bracket of an IPv6 literal ("http://[::1]").
	if n := len(trimmed); n < len(core) && core[n] == ']' {
		if open := strings.LastIndexByte(trimmed, '['); open >= 0 && !strings.Contains(trimmed[open:], "]") {
			trimmed = core[:n+1]
		}
	}
	if trimmed == "" {
		return w
	}
	return w[:lead] + defangToken(trimmed) + core[len(trimmed):]
}

// defangToken defangs a word without the punctuation around it: the text
// before the first URL as a host, e-mail address or IP, then each URL.
func defangToken(tok string) string {
	lower := asciiLower(tok)
	if !strings.Contains(lower, "://") && !strings.Contains(lower, "%3a%2f%2f") {
		return defangPlain(tok)
	}
	var b strings.Builder
	b.Grow(len(tok) + 16)
	f := schemeFinder{lower: lower, plain: -1, encoded: -1}
	pos := 0
	first := true
	for pos < len(tok) {
		j, sep, sepLen := f.next(pos)
		if j < 0 {
			break
		}
		if first {
			b.WriteString(defangPlain(tok[pos:j]))
			first = false
		} else {
			b.WriteString(tok[pos:j])
		}
		b.WriteString(defangScheme(tok[j:sep]))
		b.WriteString(tok[sep : sep+sepLen])
		rest := sep + sepLen
		end := rest
		if !startsWithScheme(lower[rest:]) {
			end += authorityEnd(tok[rest:], sepLen != 3)
		}
		b.WriteString(defangAuthority(tok[rest:end]))
		pos = end
	}
	if first {
		return defangPlain(tok)
	}
	b.WriteString(tok[pos:])
	return b.String()
}

// schemeFinder finds the URLs in an ASCII-lower-cased word from left to
// right, remembering where the next separators are so that a word with
// many URLs is read once.
type schemeFinder struct {
	lower string
	// plain and encoded are the indexes of the next "://" and
	// "%3a%2f%2f"; -1 before the first search, len(lower) when there is
	// none.
	plain, encoded int
}

// next finds the next URL from pos: the index of its scheme, of the
// separator ("://" or its percent-encoded form) and the separator's
// length; j is -1 when there is none. pos never decreases between calls.
func (f *schemeFinder) next(pos int) (j, sep, sepLen int) {
	for pos < len(f.lower) {
		a := f.find(&f.plain, pos, "://")
		e := f.find(&f.encoded, pos, "%3a%2f%2f")
		switch {
		case a < 0 && e < 0:
			return -1, 0, 0
		case e < 0 || (a >= 0 && a < e):
			sep, sepLen = a, 3
		default:
			sep, sepLen = e, 9
		}
		j = sep
		for j > pos && isSchemeByte(f.lower[j-1]) {
			j--
		}
		for j < sep && (f.lower[j] < 'a' || f.lower[j] > 'z') {
			j++
		}
		if j < sep {
			return j, sep, sepLen
		}
		pos = sep + sepLen
	}
	return -1, 0, 0
}

// find returns the index of the next pat at or after pos, searching only
// when the remembered index *at lies before pos; -1 when there is none.
func (f *schemeFinder) find(at *int, pos int, pat string) int {
	if *at < pos {
		*at = len(f.lower)
		if i := strings.Index(f.lower[pos:], pat); i >= 0 {
			*at = pos + i
		}
	}
	if *at >= len(f.lower) {
		return -1
	}
	return *at
}

// startsWithScheme reports whether s starts with a scheme and its
// separator, as the second "https" of "https://https://x" does.
func startsWithScheme(s string) bool {
	i := 0
	for i < len(s) && isSchemeByte(s[i]) {
		i++
	}
	return i > 0 && s[0] >= 'a' && s[0] <= 'z' &&
		(strings.HasPrefix(s[i:], "://") || strings.HasPrefix(s[i:], "%3a%2f%2f"))
}

func isSchemeByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'
}

// defangScheme renames the schemes a browser opens, also when they end a
// longer word ("xhttps"), which link detectors may still pick up.
func defangScheme(s string) string {
	lower := asciiLower(s)
	for _, m := range [...]struct{ from, to string }{{"https", "hxxps"}, {"http", "hxxp"}, {"ftp", "fxp"}} {
		if strings.HasSuffix(lower, m.from) {
			return s[:len(s)-len(m.from)] + m.to
		}
	}
	return s
}

// authorityEnd finds the end of a URL's authority (user, host, port) at
// the start of s; an encoded URL's authority also ends at "%" or "&".
func authorityEnd(s string, encoded bool) int {
	stop := "/?#\\"
	if encoded {
		stop = "/?#\\%&"
	}
	if i := strings.IndexAny(s, stop); i >= 0 {
		return i
	}
	return len(s)
}

// defangAuthority defangs the host of a URL's authority, whatever it looks
// like: the URL says it is a host.
func defangAuthority(a string) string {
	if strings.Contains(a, "[.]") || strings.Contains(a, "[:]") {
		return a
	}
	user, hostport := "", a
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		user, hostport = a[:i+1], a[i+1:]
	}
	if strings.HasPrefix(hostport, "[") {
		if end := strings.IndexByte(hostport, ']'); end > 0 {
			return user + "[" + defangIP6(hostport[1:end]) + hostport[end:]
		}
		return a
	}
	host, port := hostport, ""
	if strings.Count(hostport, ":") == 1 {
		i := strings.IndexByte(hostport, ':')
		host, port = hostport[:i], hostport[i:]
	}
	return user + defangHost(host, true) + port
}

// defangPlain defangs a word that has no URL scheme: an e-mail address, a
// host name with an optional port and path, or an IP address.
func defangPlain(tok string) string {
	if tok == "" {
		return tok
	}
	hostEnd := len(tok)
	if k := strings.IndexAny(tok, "/?#"); k >= 0 {
		hostEnd = k
	}
	host, rest := tok[:hostEnd], tok[hostEnd:]
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		domain, port := host[i+1:], ""
		if k := strings.IndexAny(domain, ":,;"); k >= 0 {
			domain, port = domain[:k], domain[k:]
		}
		return host[:i+1] + defangHost(domain, false) + port + rest
	}
	if strings.Count(host, ":") >= 2 {
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			return defangIP6(host) + rest
		}
		return tok
	}
	port := ""
	if i := strings.IndexByte(host, ':'); i >= 0 {
		if !allDigits(host[i+1:]) {
			// "label:evil.example": the colon separates words.
			return host[:i+1] + defangPlain(tok[i+1:])
		}
		host, port = host[:i], host[i:]
	}
	return defangHost(host, false) + port + rest
}

// defangHost defangs a host name or IP address. Outside a URL (inURL
// false) a name is defanged only when it is a domain name.
func defangHost(h string, inURL bool) string {
	if h == "" || strings.Contains(h, "[.]") || strings.Contains(h, "[:]") {
		return h
	}
	if c := h[0]; (c >= '0' && c <= '9') || strings.Contains(h, ":") {
		if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
			i := strings.LastIndexByte(h, '.')
			return h[:i] + "[.]" + h[i+1:]
		} else if err == nil {
			return defangIP6(h)
		}
	}
	if !strings.Contains(h, ".") || (!inURL && !isDomain(h)) {
		return h
	}
	return strings.ReplaceAll(h, ".", "[.]")
}

// defangIP6 brackets the last colon of an IPv6 address.
func defangIP6(h string) string {
	if strings.Contains(h, "[:]") {
		return h
	}
	i := strings.LastIndexByte(h, ':')
	if i < 0 {
		return h
	}
	return h[:i] + "[:]" + h[i+1:]
}

// reservedTLDs are the special-use names (RFC 2606, RFC 6761 and
// others) that documentation and tests use for domains; they are not in
// the public suffix list.
var reservedTLDs = map[string]bool{
	"example": true, "test": true, "invalid": true, "localhost": true,
	"local": true, "onion": true, "internal": true,
}

// isDomain reports whether h is a domain name: labels of letters, digits
// and hyphens, not all digits, ending in a public suffix (or a reserved
// name) with at least one label before it.
func isDomain(h string) bool {
	h = strings.TrimSuffix(asciiLower(h), ".")
	if len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	digitsOnly := true
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return false
			}
		}
		if !allDigits(label) {
			digitsOnly = false
		}
	}
	if digitsOnly {
		return false
	}
	tld := h[strings.LastIndexByte(h, '.')+1:]
	if reservedTLDs[tld] {
		return true
	}
	suffix, icann := publicsuffix.PublicSuffix(h)
	listed := icann || strings.Contains(suffix, ".")
	return listed && len(suffix) < len(h)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII letters only, so byte offsets stay valid.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
