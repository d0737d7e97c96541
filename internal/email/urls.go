package email

import (
	"encoding/base64"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxUnwrap bounds how many URLs deep unwrapping follows one link.
const maxUnwrap = 5

// redirectParams are the query and fragment parameters open redirects and
// click trackers carry their target in. Any parameter whose value is an
// absolute http(s) URL is unwrapped whatever its name; for these names a
// target without a scheme ("//landing.example/x", "www.landing.example")
// or in base64 ("aHR0cHM6Ly9...") is unwrapped too.
var redirectParams = map[string]bool{
	"url": true, "u": true, "q": true, "redirect": true, "redirect_uri": true, "redirect_url": true,
	"redirecturl": true, "redir": true, "target": true, "dest": true, "destination": true, "next": true,
	"continue": true, "return": true, "returnurl": true, "return_url": true, "return_to": true,
	"goto": true, "link": true, "out": true, "to": true, "r": true, "rurl": true, "forward": true,
	"location": true, "uri": true, "href": true, "site": true, "page": true, "view": true, "ref": true,
}

// URL shorteners: links through them hide where they lead. The list holds
// well-known public shortening services (registrable domains).
var shortenerHosts = map[string]bool{
	"bit.ly": true, "bitly.com": true, "bit.do": true, "buff.ly": true, "clck.ru": true, "cutt.ly": true,
	"goo.gl": true, "is.gd": true, "lnkd.in": true, "ow.ly": true, "qrco.de": true, "rb.gy": true,
	"rebrand.ly": true, "s.id": true, "shorturl.at": true, "t.co": true, "t.ly": true, "tiny.cc": true,
	"tinyurl.com": true, "trib.al": true, "urlz.fr": true, "v.gd": true, "shorte.st": true, "adf.ly": true,
	"ouo.io": true, "tr.im": true, "x.co": true, "surl.li": true, "shorturl.com": true, "tiny.one": true,
	"u.to": true, "soo.gd": true, "short.gy": true, "l.ead.me": true, "t2m.io": true, "han.gl": true,
}

// ShortenerHosts returns the URL-shortening services a link is counted
// against for Signals.ShortenerURLs, sorted.
func ShortenerHosts() []string {
	return sortedKeys(shortenerHosts)
}

// expandURL returns the URLs one link stands for, outermost first. A
// security gateway's rewrite (Microsoft Safe Links, Proofpoint URL Defense)
// is replaced by the URL it wraps, whose Via names the rewrite; a URL an
// open redirect carries in its query, fragment or path follows the
// redirect, with the redirect in Via. At most maxUnwrap levels are followed.
func expandURL(link URL) []URL {
	var out []URL
	cur := link
	for depth := 0; ; depth++ {
		if depth < maxUnwrap {
			if target := gatewayTarget(cur.URL); target != "" && target != cur.URL {
				cur = URL{URL: target, Text: cur.Text, Via: cur.URL, Mismatch: linkMismatch(target, cur.Text)}
				continue
			}
		}
		out = append(out, cur)
		if depth >= maxUnwrap {
			return out
		}
		inner := redirectTarget(cur.URL)
		if inner == "" || inner == cur.URL {
			return out
		}
		cur = URL{URL: inner, Via: cur.URL}
	}
}

// gatewayTarget returns the URL a Safe Links or URL Defense rewrite wraps,
// or "".
func gatewayTarget(raw string) string {
	p, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	host := strings.ToLower(p.Hostname())
	switch {
	case strings.HasSuffix(host, ".safelinks.protection.outlook.com"),
		strings.HasSuffix(host, ".safelinks.protection.office365.us"):
		return absoluteURL(p.Query().Get("url"))
	case host == "urldefense.proofpoint.com" || host == "urldefense.com" || host == "urldefense.us":
		return proofpointTarget(p, raw)
	}
	return ""
}

// proofpointTarget decodes the three URL Defense formats:
//   - v1: /v1/url?u=<percent-encoded URL>&k=...
//   - v2: /v2/url?u=<URL with "%" written "-" and "/" written "_">&d=...
//   - v3: /v3/__<URL>__;<base64url>!<signature>$, where each "*" in the URL
//     stands for the next character of the base64url-decoded text and "**"
//     followed by a letter from A-Za-z0-9-_ for a run of 2 (A) to 65 (_)
//     of them.
func proofpointTarget(p *url.URL, raw string) string {
	switch {
	case strings.HasPrefix(p.Path, "/v1/"):
		return absoluteURL(p.Query().Get("u"))
	case strings.HasPrefix(p.Path, "/v2/"):
		u := p.Query().Get("u")
		u = strings.NewReplacer("-", "%", "_", "/").Replace(u)
		dec, err := url.PathUnescape(u)
		if err != nil {
			return ""
		}
		return absoluteURL(dec)
	}
	i := strings.Index(raw, "/v3/__")
	if i < 0 {
		return ""
	}
	rest := raw[i+len("/v3/__"):]
	end := strings.Index(rest, "__;")
	if end < 0 {
		return ""
	}
	enc, tail := rest[:end], rest[end+3:]
	if j := strings.IndexByte(tail, '!'); j >= 0 {
		tail = tail[:j]
	}
	if dec, err := url.PathUnescape(enc); err == nil {
		enc = dec
	}
	subst, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tail, "="))
	if err != nil {
		return ""
	}
	chars := []rune(string(subst))
	var b strings.Builder
	for k := 0; k < len(enc); k++ {
		if enc[k] != '*' {
			b.WriteByte(enc[k])
			continue
		}
		n := 1
		if k+2 < len(enc) && enc[k+1] == '*' {
			n = runLength(enc[k+2])
			if n == 0 {
				return ""
			}
			k += 2
		}
		if n > len(chars) {
			return ""
		}
		b.WriteString(string(chars[:n]))
		chars = chars[n:]
	}
	target := b.String()
	// URL Defense writes "https:/host" for "https://host" in some versions.
	if s, ok := strings.CutPrefix(target, "https:/"); ok && !strings.HasPrefix(s, "/") {
		target = "https://" + s
	} else if s, ok := strings.CutPrefix(target, "http:/"); ok && !strings.HasPrefix(s, "/") {
		target = "http://" + s
	}
	return absoluteURL(target)
}

// runLength reads the length letter of a URL Defense v3 run: A=2 … _=65.
func runLength(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 2
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 28
	case c >= '0' && c <= '9':
		return int(c-'0') + 54
	case c == '-':
		return 64
	case c == '_':
		return 65
	}
	return 0
}

// redirectTarget returns the first URL nested in the query, fragment or
// path of u, or "".
func redirectTarget(raw string) string {
	p, err := url.Parse(raw)
	if err != nil || p.Host == "" {
		return ""
	}
	if t := targetInParams(p.RawQuery); t != "" {
		return t
	}
	if frag := p.EscapedFragment(); frag != "" {
		if t := targetInParams(frag); t != "" {
			return t
		}
		if t := nestedAbsolute(frag); t != "" {
			return t
		}
	}
	return nestedAbsolute(p.EscapedPath())
}

// targetInParams returns the first parameter value of a query string that
// is a URL (see redirectParams), or "".
func targetInParams(q string) string {
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			continue
		}
		if dec, err := url.QueryUnescape(v); err == nil {
			v = dec
		}
		if t := absoluteURL(v); t != "" {
			return t
		}
		if dec, err := url.QueryUnescape(k); err == nil {
			k = dec
		}
		if !redirectParams[strings.ToLower(k)] {
			continue
		}
		switch {
		case strings.HasPrefix(v, "//"):
			if t := absoluteURL("https:" + v); t != "" {
				return t
			}
		case len(v) > 4 && strings.EqualFold(v[:4], "www."):
			if t := absoluteURL("https://" + v); t != "" {
				return t
			}
		case strings.HasPrefix(v, "aHR0c"):
			if t := base64URL(v); t != "" {
				return t
			}
		}
	}
	return ""
}

// base64URL decodes a base64 (standard or URL alphabet, padded or not)
// value that holds a URL.
func base64URL(v string) string {
	v = strings.TrimRight(v, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && utf8.Valid(b) {
			return absoluteURL(string(b))
		}
	}
	return ""
}

// nestedAbsolute returns the URL that starts inside s ("/r/https://x"),
// percent-encoded or not, or "".
func nestedAbsolute(s string) string {
	if dec, err := url.PathUnescape(s); err == nil {
		s = dec
	}
	lower := strings.ToLower(s)
	i := strings.Index(lower, "http://")
	if j := strings.Index(lower, "https://"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return ""
	}
	return absoluteURL(s[i:])
}

// absoluteURL returns v when it is an absolute http(s) URL with a host, or
// "".
func absoluteURL(v string) string {
	v = strings.TrimSpace(v)
	if !hasSchemeFold(v, "http://") && !hasSchemeFold(v, "https://") {
		return ""
	}
	if len(v) > 8192 {
		return ""
	}
	p, err := url.Parse(v)
	if err != nil || p.Host == "" || strings.ContainsAny(p.Host, " <>\"") {
		return ""
	}
	return v
}

// isIPHost reports whether a URL host is an IP address, written in any of
// the forms a browser accepts: dotted or bracketed, or as one decimal,
// octal or hexadecimal number ("http://3232235777/").
func isIPHost(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	labels := strings.Split(host, ".")
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		if l == "" || !isIPv4Number(l) {
			return false
		}
	}
	return true
}

func isIPv4Number(s string) bool {
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		for _, c := range s[2:] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isIDNHost reports whether a host is an internationalised name: written
// in punycode ("xn--") or with non-ASCII characters.
func isIDNHost(host string) bool {
	for _, l := range strings.Split(host, ".") {
		if strings.HasPrefix(l, "xn--") {
			return true
		}
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return true
		}
	}
	return false
}

// isShortener reports whether a host belongs to a URL-shortening service.
func isShortener(host string) bool {
	return shortenerHosts[host] || shortenerHosts[registrable(host)]
}
