package email

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/publicsuffix"
	"mvdan.cc/xurls/v2"
)

// Bounds of observable extraction.
const (
	maxScanBytes = 2 << 20 // of each body
	maxURLs      = 500
	maxLinkText  = 500
)

// bodyAddress finds email addresses in body text.
var bodyAddress = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z]{2,63}`)

// extractor holds the compiled expressions; one per Analyze call.
type extractor struct {
	urls   *regexp.Regexp
	emails *regexp.Regexp
}

func newExtractor() *extractor {
	return &extractor{urls: xurls.Strict(), emails: bodyAddress}
}

// observables collects URLs, domains, IPs, addresses and hashes of m.
func (a *analyzer) observables(m *Message, label string) Observables {
	o := Observables{URLs: []URL{}}
	seen := map[string]int{}
	add := func(u URL) {
		u.URL = strings.TrimSpace(u.URL)
		if u.URL == "" {
			return
		}
		if i, ok := seen[u.URL]; ok {
			if o.URLs[i].Text == "" {
				o.URLs[i].Text = u.Text
			}
			o.URLs[i].Mismatch = o.URLs[i].Mismatch || u.Mismatch
			return
		}
		if len(o.URLs) >= maxURLs {
			return
		}
		seen[u.URL] = len(o.URLs)
		o.URLs = append(o.URLs, u)
	}
	htmlBody, text := m.HTML, m.Text
	if len(htmlBody) > maxScanBytes {
		a.warn("%s: only the first %d bytes of the HTML body were scanned for observables", label, maxScanBytes)
		htmlBody = htmlBody[:maxScanBytes]
	}
	if len(text) > maxScanBytes {
		a.warn("%s: only the first %d bytes of the text body were scanned for observables", label, maxScanBytes)
		text = text[:maxScanBytes]
	}
	for _, l := range htmlLinks(htmlBody) {
		add(l)
	}
	for _, loc := range findAround(a.ex.urls, text, "://", 32, 4096, maxURLs) {
		add(URL{URL: unwrapSafeLink(trimURL(text[loc[0]:loc[1]]))})
	}
	if len(seen) >= maxURLs {
		a.warn("%s: more than %d URLs; the rest are not listed", label, maxURLs)
	}

	domains := map[string]bool{}
	ips := map[string]bool{}
	emails := map[string]bool{}
	addDomain := func(host string) {
		if d := registrable(host); d != "" {
			domains[d] = true
		}
	}
	for _, u := range o.URLs {
		host := urlHost(u.URL)
		if ip, err := netip.ParseAddr(host); err == nil {
			if isPublic(ip) {
				ips[ip.Unmap().String()] = true
			}
			continue
		}
		addDomain(host)
	}
	for _, addr := range []Address{m.From, m.Sender, m.ReplyTo, m.ReturnPath} {
		if addr.Address != "" && strings.Contains(addr.Address, "@") {
			emails[addr.Address] = true
			addDomain(domainOf(addr.Address))
		}
	}
	for _, loc := range findAround(a.ex.emails, text, "@", 64, 256, maxURLs) {
		if loc[0] > 0 && strings.IndexByte("/=?&:%.", text[loc[0]-1]) >= 0 {
			continue // part of a URL, not an address of its own
		}
		s := strings.ToLower(strings.Trim(text[loc[0]:loc[1]], "."))
		emails[s] = true
		addDomain(domainOf(s))
	}
	for _, h := range m.Received {
		if ip, err := netip.ParseAddr(h.IP); err == nil && isPublic(ip) {
			ips[ip.Unmap().String()] = true
		}
	}
	if m.connectingIP != "" {
		if ip, err := netip.ParseAddr(m.connectingIP); err == nil && isPublic(ip) {
			ips[ip.Unmap().String()] = true
		}
	}
	hashes := map[string]bool{}
	for _, at := range m.Attachments {
		hashes[at.MD5], hashes[at.SHA1], hashes[at.SHA256] = true, true, true
	}
	o.Domains = sortedKeys(domains)
	o.IPs = sortedKeys(ips)
	o.Emails = sortedKeys(emails)
	o.Hashes = sortedKeys(hashes)
	return o
}

// findAround returns the matches of re that contain an occurrence of sep,
// looking at most back bytes before and ahead bytes after each occurrence
// and never across a line. Scanning only near sep keeps the cost linear in
// the text instead of running a large expression at every position.
func findAround(re *regexp.Regexp, text, sep string, back, ahead, limit int) [][2]int {
	var out [][2]int
	pos := 0
	for len(out) < limit && pos < len(text) {
		i := strings.Index(text[pos:], sep)
		if i < 0 {
			break
		}
		i += pos
		start := max(i-back, pos)
		if nl := strings.LastIndexByte(text[start:i], '\n'); nl >= 0 {
			start += nl + 1
		}
		end := min(i+len(sep)+ahead, len(text))
		if nl := strings.IndexByte(text[i:end], '\n'); nl >= 0 {
			end = i + nl
		}
		loc := re.FindStringIndex(text[start:end])
		for loc != nil && loc[1] > 0 && start+loc[1] <= i {
			// A match ending before sep: look again after it.
			start += loc[1]
			loc = re.FindStringIndex(text[start:end])
		}
		if loc == nil || start+loc[0] > i {
			pos = i + len(sep)
			continue
		}
		out = append(out, [2]int{start + loc[0], start + loc[1]})
		pos = start + loc[1]
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// trimURL drops punctuation a sentence wraps around a link.
func trimURL(s string) string {
	return strings.TrimRight(s, ".,;:!?'\")]>")
}

// htmlLinks lists the links of an HTML body: <a href> and <area href> with
// their displayed text, and <form action>.
func htmlLinks(body string) []URL {
	if body == "" {
		return nil
	}
	var out []URL
	z := html.NewTokenizer(strings.NewReader(body))
	z.SetMaxBuf(maxScanBytes)
	var cur *URL
	var text strings.Builder
	finish := func() {
		if cur == nil {
			return
		}
		cur.Text = truncateRunes(strings.TrimSpace(collapseSpaces(strings.Join(strings.Fields(text.String()), " "))), maxLinkText)
		cur.Mismatch = linkMismatch(cur.URL, cur.Text)
		out = append(out, *cur)
		cur = nil
		text.Reset()
	}
	for len(out) < maxURLs {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			finish()
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			var attrName string
			switch tag {
			case "a", "area":
				attrName = "href"
			case "form":
				attrName = "action"
			default:
				continue
			}
			if tag == "a" {
				finish()
			}
			var val string
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if string(k) == attrName {
					val = string(v)
				}
			}
			link := normaliseLink(val)
			if link == "" {
				continue
			}
			if tag == "a" && tt == html.StartTagToken {
				cur = &URL{URL: link}
			} else {
				out = append(out, URL{URL: link})
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "a" {
				finish()
			}
		case html.TextToken:
			if cur != nil && text.Len() < 4*maxLinkText {
				text.Write(z.Text())
			}
		}
	}
	finish()
	return out
}

// normaliseLink keeps absolute http(s) and ftp links, unwrapped from Safe
// Links; mailto:, tel:, anchors and relative links are dropped.
func normaliseLink(v string) string {
	v = strings.TrimSpace(v)
	lv := strings.ToLower(v)
	if !(strings.HasPrefix(lv, "http://") || strings.HasPrefix(lv, "https://") || strings.HasPrefix(lv, "ftp://")) {
		return ""
	}
	return unwrapSafeLink(v)
}

// unwrapSafeLink returns the target of a Microsoft Defender Safe Links URL,
// or u unchanged.
func unwrapSafeLink(u string) string {
	p, err := url.Parse(u)
	if err != nil || !strings.HasSuffix(strings.ToLower(p.Hostname()), ".safelinks.protection.outlook.com") {
		return u
	}
	if target := p.Query().Get("url"); target != "" {
		return target
	}
	return u
}

// urlHost returns the lower-case host of a URL, or "".
func urlHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		// Fall back to the text between "//" and the next delimiter.
		s := u
		if i := strings.Index(s, "//"); i >= 0 {
			s = s[i+2:]
		}
		if i := strings.IndexAny(s, "/?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			s = s[i+1:]
		}
		if h, _, ok := strings.Cut(s, ":"); ok {
			s = h
		}
		return strings.ToLower(s)
	}
	return strings.TrimSuffix(strings.ToLower(p.Hostname()), ".")
}

// registrable returns the registrable domain (eTLD+1) of a host name, or ""
// for IP literals and names without one.
func registrable(host string) string {
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if host == "" || strings.ContainsAny(host, " /\\@") || !strings.Contains(host, ".") {
		return ""
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return ""
	}
	return d
}

// linkMismatch reports whether the displayed text of a link names a host in
// another registrable domain than the link itself.
func linkMismatch(href, text string) bool {
	text = strings.TrimSpace(text)
	if text == "" || strings.ContainsAny(text, " \t") {
		return false
	}
	shown := text
	if !strings.Contains(shown, "://") {
		if !looksLikeHost(strings.SplitN(shown, "/", 2)[0]) {
			return false
		}
		shown = "http://" + shown
	}
	a, b := urlHost(href), urlHost(shown)
	if a == "" || b == "" {
		return false
	}
	ra, rb := registrable(a), registrable(b)
	if ra == "" || rb == "" {
		return a != b
	}
	return ra != rb
}

// looksLikeHost reports whether s is a dotted name whose last label is
// alphabetic, like "www.contoso.com".
func looksLikeHost(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	last := labels[len(labels)-1]
	if len(last) < 2 {
		return false
	}
	for _, r := range last {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	for _, l := range labels {
		if l == "" {
			return false
		}
	}
	return true
}

// cgnat and the other prefixes below are not routable on the internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
}

// isPublic reports whether ip could be a host on the internet. Private,
// loopback, link-local, multicast, unspecified, CGNAT, benchmarking and
// reserved ranges are not public; the documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) count as public so that
// examples behave like real mail.
func isPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
