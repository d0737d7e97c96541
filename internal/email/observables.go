package email

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	urls   *regexp.Regexp // a URL anchored at the start of the text
	emails *regexp.Regexp
}

var (
	anchoredURLOnce sync.Once
	anchoredURL     *regexp.Regexp
)

func newExtractor() *extractor {
	anchoredURLOnce.Do(func() {
		anchoredURL = regexp.MustCompile(`^(?:` + xurls.Strict().String() + `)`)
		anchoredURL.Longest()
	})
	return &extractor{urls: anchoredURL, emails: bodyAddress}
}

// findURLs returns the URLs of text as index pairs, at most limit. Each
// "://" is matched from the earliest scheme character before it (at most
// 32 back, never across a line) with the expression anchored there, which
// costs one attempt per URL instead of one per position.
func (ex *extractor) findURLs(text string, limit int) [][2]int {
	var out [][2]int
	pos := 0
	for len(out) < limit && pos < len(text) {
		i := strings.Index(text[pos:], "://")
		if i < 0 {
			break
		}
		i += pos
		start := i
		for start > pos && i-start < 32 && isSchemeChar(text[start-1]) {
			start--
		}
		end := min(i+3+4096, len(text))
		if nl := strings.IndexByte(text[i:end], '\n'); nl >= 0 {
			end = i + nl
		}
		found := false
		for s := start; s < i; s++ {
			if loc := ex.urls.FindStringIndex(text[s:end]); loc != nil && s+loc[1] > i+3 {
				out = append(out, [2]int{s, s + loc[1]})
				pos = s + loc[1]
				found = true
				break
			}
		}
		if !found {
			pos = i + 3
		}
	}
	return out
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// observables collects URLs, domains, IPs, addresses, hashes and image
// hosts of m. It runs after ConnectingIP is set.
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
	scan := m.html
	if scan == nil && m.HTML != "" {
		s := scanHTML(m.HTML[:min(len(m.HTML), maxScanBytes)], false)
		scan = &s
	}
	if scan == nil {
		scan = &htmlScan{}
	}
	text := m.Text
	if len(text) > maxScanBytes {
		a.warn("%s: only the first %d bytes of the text body were scanned for observables", label, maxScanBytes)
		text = text[:maxScanBytes]
	}
	for _, l := range scan.Links {
		for _, u := range expandURL(l) {
			add(u)
		}
	}
	for _, body := range []string{text, scan.Hidden} {
		for _, loc := range a.ex.findURLs(body, maxURLs) {
			for _, u := range expandURL(URL{URL: trimURL(body[loc[0]:loc[1]])}) {
				add(u)
			}
		}
	}
	if len(o.URLs) >= maxURLs {
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
		if ip, ok := hostIP(host); ok {
			if isPublic(ip) {
				ips[ip.String()] = true
			}
			continue
		}
		addDomain(host)
	}
	addEmail := func(addr string) {
		if addr != "" && strings.Contains(addr, "@") {
			emails[addr] = true
			addDomain(domainOf(addr))
		}
	}
	for _, addr := range []Address{m.From, m.Sender, m.ReplyTo, m.ReturnPath} {
		addEmail(addr.Address)
	}
	for _, addr := range scan.Mailto {
		addEmail(addr)
	}
	for _, loc := range findAround(a.ex.emails, text, "@", 64, 256, maxURLs) {
		if loc[0] > 0 && strings.IndexByte("/=?&:%.", text[loc[0]-1]) >= 0 {
			continue // part of a URL, not an address of its own
		}
		addEmail(strings.ToLower(strings.Trim(text[loc[0]:loc[1]], ".")))
	}
	if m.ConnectingIP != "" {
		ips[m.ConnectingIP] = true
	}
	hashes := map[string]bool{}
	for _, at := range m.Attachments {
		if at.Size > 0 {
			hashes[at.MD5], hashes[at.SHA1], hashes[at.SHA256] = true, true, true
		}
	}
	images := map[string]bool{}
	pixels := map[string]bool{}
	for _, img := range scan.Images {
		host := urlHost(img.URL)
		if host == "" {
			continue
		}
		images[host] = true
		if img.Pixel {
			pixels[host] = true
		}
	}
	o.Domains = sortedKeys(domains)
	o.IPs = sortedKeys(ips)
	o.Emails = sortedKeys(emails)
	o.Hashes = sortedKeys(hashes)
	o.ImageHosts = sortedKeys(images)
	o.TrackingPixelHosts = sortedKeys(pixels)
	return o
}

// hostIP reads a URL host that is an IP address, in any form a browser
// accepts (see isIPHost).
func hostIP(host string) (netip.Addr, bool) {
	host = strings.Trim(host, "[]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), true
	}
	if !isIPHost(host) {
		return netip.Addr{}, false
	}
	// inet_aton forms: a.b.c.d, a.b.c, a.b or a, each part decimal, octal
	// (leading 0) or hexadecimal (0x); the last part fills the rest.
	labels := strings.Split(host, ".")
	var parts []uint64
	for _, l := range labels {
		n, ok := parseIPPart(l)
		if !ok {
			return netip.Addr{}, false
		}
		parts = append(parts, n)
	}
	var v uint64
	for i, p := range parts[:len(parts)-1] {
		if p > 255 {
			return netip.Addr{}, false
		}
		v |= p << (24 - 8*i)
	}
	last := parts[len(parts)-1]
	if last >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPPart(s string) (uint64, bool) {
	base := 10
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if len(s) > 12 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64)
	return n, err == nil
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

// trimURL drops the punctuation a sentence puts after a link, and a
// closing bracket only when the URL did not open it:
// "(see https://x.example/a)" loses the ")", "https://x.example/[optout]"
// keeps its "]".
func trimURL(s string) string {
	for len(s) > 0 {
		c := s[len(s)-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '"', '>':
			s = s[:len(s)-1]
		case ')', ']', '}':
			open := map[byte]string{')': "(", ']': "[", '}': "{"}[c]
			if strings.Count(s, open) >= strings.Count(s, string(c)) {
				return s
			}
			s = s[:len(s)-1]
		default:
			return s
		}
	}
	return s
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

// looksLikeHost reports whether s is a host name under a public suffix,
// like "www.contoso.com" (a final dot allowed): "hier." or "Unsubscribe."
// (a word ending a sentence) and "invoice.pdf" are not.
func looksLikeHost(s string) bool {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" {
			return false
		}
	}
	suffix, icann := publicsuffix.PublicSuffix(s)
	if suffix == s {
		return false
	}
	// The names reserved for documentation (RFC 2606) count as hosts, so
	// that examples behave like real mail.
	return icann || strings.Contains(suffix, ".") || suffix == "example" || suffix == "test"
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
