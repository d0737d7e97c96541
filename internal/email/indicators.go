package email

import (
	"strings"

	"golang.org/x/net/idna"
)

// indicators derives the phishing signals of m.
func (a *analyzer) indicators(m *Message) Indicators {
	var in Indicators
	fromDomain := registrable(domainOf(m.From.Address))
	if rt := registrable(domainOf(m.ReplyTo.Address)); rt != "" && fromDomain != "" && rt != fromDomain {
		in.ReplyToMismatch = true
	}
	in.DisplayNameSpoof = a.displayNameSpoof(m.From)

	candidates := []string{m.From.Address, m.Sender.Address, m.ReplyTo.Address, m.ReturnPath.Address}
	for i, c := range candidates {
		candidates[i] = domainOf(c)
	}
	for _, u := range m.Observables.URLs {
		candidates = append(candidates, urlHost(u.URL))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if of := lookalikeOf(c, a.opts.InternalDomains); of != "" {
			in.Lookalike, in.LookalikeOf = registrable(c), of
			if in.Lookalike == "" {
				in.Lookalike = c
			}
			break
		}
	}
	return in
}

// displayNameSpoof reports whether the display name of from carries an
// address in another domain, or names an internal domain (or its first
// label, like "Contoso") while the address is outside the internal domains.
func (a *analyzer) displayNameSpoof(from Address) bool {
	name := strings.ToLower(from.Name)
	if name == "" || from.Address == "" {
		return false
	}
	actual := registrable(domainOf(from.Address))
	for _, shown := range addrSpec.FindAllString(name, 5) {
		if d := registrable(domainOf(shown)); d != "" && d != actual {
			return true
		}
	}
	for _, internal := range a.opts.InternalDomains {
		if actual == registrable(internal) || strings.HasSuffix(domainOf(from.Address), "."+internal) || domainOf(from.Address) == internal {
			return false
		}
	}
	words := strings.FieldsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r > 0x7f)
	})
	for _, internal := range a.opts.InternalDomains {
		label := firstLabel(internal)
		for _, w := range words {
			if w == internal || (len(label) >= 4 && w == label) {
				return true
			}
		}
	}
	return false
}

// firstLabel returns the label before the public suffix: "contoso" for
// "contoso.co.uk".
func firstLabel(domain string) string {
	d := registrable(domain)
	if d == "" {
		d = domain
	}
	label, _, _ := strings.Cut(d, ".")
	return label
}

// lookalikeOf returns the internal domain that host imitates, or "". A host
// imitates an internal domain when its registrable domain differs from it
// but is equal after undoing punycode and confusable characters, or is within
// a small edit distance of it (1 for names up to 5 letters, 2 above), or has
// the same first label under another suffix.
func lookalikeOf(host string, internal []string) string {
	d := registrable(host)
	if d == "" {
		return ""
	}
	for _, in := range internal {
		ind := registrable(in)
		if ind == "" {
			ind = in
		}
		if d == ind {
			continue
		}
		sd, si := skeleton(d), skeleton(ind)
		if sd == si {
			return in
		}
		ld, li := firstLabel(d), firstLabel(ind)
		if ld == li && len(li) >= 4 {
			return in
		}
		limit := 2
		if len([]rune(li)) <= 5 {
			limit = 1
		}
		if editDistance(sd, si, limit) <= limit || editDistance(skeleton(ld), skeleton(li), limit) <= limit {
			return in
		}
	}
	return ""
}

// confusables maps characters that look like ASCII letters to them.
var confusables = map[rune]string{
	'а': "a", 'е': "e", 'о': "o", 'р': "p", 'с': "c", 'х': "x", 'у': "y",
	'і': "i", 'ј': "j", 'ѕ': "s", 'ԁ': "d", 'ɡ': "g", 'һ': "h", 'ӏ': "l",
	'α': "a", 'ο': "o", 'ν': "v", 'τ': "t", 'ι': "i", 'κ': "k", 'ρ': "p",
	'0': "o", '1': "l", '3': "e", '5': "s", '@': "a", '$': "s",
	'à': "a", 'á': "a", 'â': "a", 'ä': "a", 'ã': "a", 'å': "a",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i",
	'ò': "o", 'ó': "o", 'ô': "o", 'ö': "o", 'õ': "o", 'ù': "u", 'ú': "u", 'û': "u", 'ü': "u",
	'ç': "c", 'ñ': "n", 'ý': "y", 'ı': "i",
}

// skeleton decodes punycode, maps confusable characters to ASCII and folds
// the pairs "rn"→"m", "vv"→"w", "cl"→"d" and "i"→"l" that read alike.
func skeleton(domain string) string {
	if strings.Contains(domain, "xn--") {
		if u, err := idna.ToUnicode(domain); err == nil {
			domain = u
		}
	}
	var b strings.Builder
	for _, r := range strings.ToLower(domain) {
		if s, ok := confusables[r]; ok {
			b.WriteString(s)
			continue
		}
		b.WriteRune(r)
	}
	return readAlike.Replace(b.String())
}

// readAlike folds the letter pairs that read alike.
var readAlike = strings.NewReplacer("rn", "m", "vv", "w", "cl", "d", "i", "l")

// editDistance is the optimal string alignment distance of a and b (a
// transposition counts as one edit), stopping early above limit.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > limit || -d > limit {
		return limit + 1
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
