package email

import (
	"fmt"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/text/encoding/htmlindex"
)

// maxAddresses bounds the mailboxes read from one address header.
const maxAddresses = 200

// addrSpec finds a bare address in text the address parser rejected.
var addrSpec = regexp.MustCompile(`[A-Za-z0-9._%+\-=!#$&'*/?^{|}~]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,63}`)

// wordDecoder decodes RFC 2047 encoded words in any charset the WHATWG
// encoding index knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}

// parseAddresses reads an address list the way a mail client shows it. A
// valid list is read by the standard parser. Real From headers are often
// invalid, so anything else is read by recoverAddresses.
func parseAddresses(v string) []Address {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := p.ParseList(v); err == nil {
		if len(list) == 0 {
			return nil // an empty group: "undisclosed-recipients:;"
		}
		out := make([]Address, 0, min(len(list), maxAddresses))
		for _, a := range list[:min(len(list), maxAddresses)] {
			out = append(out, Address{Name: cleanName(a.Name), Address: cleanAddress(a.Address)})
		}
		return out
	}
	out := recoverAddresses(v)
	if !anyAddress(out) && strings.Contains(v, "=?") {
		// The whole mailbox may sit inside an encoded word.
		if d := enmime.DecodeRFC2047(v); d != v {
			if again := recoverAddresses(d); anyAddress(again) {
				return again
			}
		}
	}
	return out
}

func anyAddress(list []Address) bool {
	for _, a := range list {
		if a.Address != "" {
			return true
		}
	}
	return false
}

// firstAddress returns the first mailbox of a header that has an address,
// else the first mailbox.
func firstAddress(v string) Address {
	list := parseAddresses(v)
	for _, a := range list {
		if a.Address != "" {
			return a
		}
	}
	if len(list) > 0 {
		return list[0]
	}
	return Address{}
}

// Token kinds of an address header.
const (
	tokWord    = 'w'
	tokQuoted  = 'q'
	tokComment = 'c'
	tokAngle   = 'a'
	tokComma   = ','
)

type addrToken struct {
	kind byte
	text string
}

// tokenizeAddresses splits an address header into words, quoted strings,
// comments (nested), angle-bracketed parts and commas. Unterminated quotes,
// comments and angle brackets run to the end of the value.
func tokenizeAddresses(v string) []addrToken {
	var out []addrToken
	i := 0
	for i < len(v) && len(out) < 4*maxAddresses {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == ',' || c == ';':
			out = append(out, addrToken{kind: tokComma})
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				b.WriteByte(v[j])
			}
			out = append(out, addrToken{kind: tokQuoted, text: b.String()})
			i = j + 1
		case c == '(':
			depth := 0
			j := i
			for ; j < len(v); j++ {
				if v[j] == '\\' {
					j++
					continue
				}
				if v[j] == '(' {
					depth++
				} else if v[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			end := min(j, len(v))
			out = append(out, addrToken{kind: tokComment, text: v[i+1 : end]})
			i = end + 1
		case c == '<':
			j := strings.IndexByte(v[i+1:], '>')
			if j < 0 {
				out = append(out, addrToken{kind: tokAngle, text: v[i+1:]})
				i = len(v)
				break
			}
			out = append(out, addrToken{kind: tokAngle, text: v[i+1 : i+1+j]})
			i += j + 2
		default:
			j := i
			for j < len(v) && strings.IndexByte(" \t\r\n,;\"(<", v[j]) < 0 {
				j++
			}
			out = append(out, addrToken{kind: tokWord, text: v[i:j]})
			i = j
		}
	}
	return out
}

// recoverAddresses reads an invalid address header as a mail client shows
// it:
//   - an angle-bracketed address is the address, and the text before it
//     (back to the previous address) its display name, commas included:
//     `Kundenservice, jehd <service@example.com>` is one mailbox;
//   - a quoted string is display-name text, never an address of its own:
//     `"Offers@amazon.example", <service@other.example>` is one mailbox;
//   - an address inside a comment is used when no angle-bracketed address
//     follows: `TotalAV (<info@example.com>)`;
//   - a bare address (a word of its own) is an address.
func recoverAddresses(v string) []Address {
	var out []Address
	var name []addrToken
	commentAddr := ""
	emit := func(addr string, nameToks []addrToken) {
		if len(out) < maxAddresses {
			out = append(out, Address{Name: joinName(nameToks), Address: addr})
		}
	}
	// flushBare turns pending words into mailboxes: each bare address with
	// the words around it as its name.
	flushBare := func() {
		if commentAddr != "" {
			emit(commentAddr, name)
			name, commentAddr = nil, ""
			return
		}
		var rest []addrToken
		found := false
		for _, t := range name {
			if t.kind == tokWord && !found {
				if addr := bareAddress(t.text); addr != "" {
					found = true
					rest = append(rest, addrToken{kind: tokAngle, text: addr})
					continue
				}
			}
			rest = append(rest, t)
		}
		if found {
			var nameToks []addrToken
			var addr string
			for _, t := range rest {
				if t.kind == tokAngle {
					addr = cleanAddress(t.text)
					continue
				}
				nameToks = append(nameToks, t)
			}
			emit(addr, nameToks)
		} else if n := joinName(name); hasLetterOrDigit(n) {
			if len(out) < maxAddresses {
				out = append(out, Address{Name: n})
			}
		}
		name = nil
	}
	for _, t := range tokenizeAddresses(v) {
		switch t.kind {
		case tokAngle:
			addr := angleAddress(t.text)
			if addr == "" && commentAddr != "" {
				addr = commentAddr
			}
			if addr != "" || hasLetterOrDigit(joinName(name)) {
				// An unreadable `<...>` still ends its mailbox.
				emit(addr, name)
			}
			name, commentAddr = nil, ""
		case tokComment:
			if commentAddr == "" {
				if m := angleInText.FindStringSubmatch(t.text); m != nil {
					commentAddr = angleAddress(m[1])
				} else if spec := addrSpec.FindString(t.text); spec != "" {
					commentAddr = cleanAddress(spec)
				}
			}
		case tokComma:
			if commentAddr != "" || pendingBareAddress(name) {
				flushBare()
				continue
			}
			name = append(name, t)
		default:
			name = append(name, t)
		}
	}
	if len(name) > 0 || commentAddr != "" {
		flushBare()
	}
	return out
}

var angleInText = regexp.MustCompile(`<([^<>]*@[^<>]*)>`)

// pendingBareAddress reports whether the pending tokens hold a word that is
// an address of its own.
func pendingBareAddress(toks []addrToken) bool {
	for _, t := range toks {
		if t.kind == tokWord && bareAddress(t.text) != "" {
			return true
		}
	}
	return false
}

// bareDomain is the domain of a bare address: dotted, ending in a
// top-level domain.
var bareDomain = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z]{2,63}$`)

// bareAddress returns the address a word is, or "": the whole word (bounce
// addresses hold "=" and even a second "@") when what follows its last "@"
// is a domain name.
func bareAddress(w string) string {
	w = strings.Trim(w, `'"()[]<>:;`)
	at := strings.LastIndexByte(w, '@')
	if at <= 0 || !bareDomain.MatchString(strings.TrimSuffix(w[at+1:], ".")) {
		return ""
	}
	return cleanAddress(w)
}

// angleAddress returns the address inside angle brackets, or "" when the
// text holds none.
func angleAddress(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || s[at-1] == '@' || strings.ContainsAny(s, " \t<>") {
		return ""
	}
	return cleanAddress(s)
}

// cleanAddress lower-cases an address, unquotes one written whole in
// quotes (`<"user@example.com">`) and drops the dot that ends a fully
// qualified domain.
func cleanAddress(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 2 && s[0] == '"' && s[len(s)-1] == '"' && strings.Contains(s, "@") {
		s = s[1 : len(s)-1]
	}
	s = strings.TrimSuffix(s, ".")
	if len(s) > 998 {
		return ""
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// cleanName decodes and tidies a display name.
func cleanName(s string) string {
	if strings.Contains(s, "=?") {
		s = enmime.DecodeRFC2047(s)
	}
	return cleanHeaderText(s)
}

// joinName joins the display-name tokens of one mailbox: fragments split by
// commas are joined again with ", ", a fragment repeated is kept once, and
// the punctuation spammers put before the address (` ,_<`) is dropped.
func joinName(toks []addrToken) string {
	var frags []string
	var cur []string
	flush := func() {
		f := strings.Trim(cleanName(strings.Join(cur, " ")), " ,_;:'\"")
		cur = cur[:0]
		if f == "" {
			return
		}
		for _, seen := range frags {
			if seen == f {
				return
			}
		}
		frags = append(frags, f)
	}
	for _, t := range toks {
		switch t.kind {
		case tokComma:
			flush()
		case tokWord, tokQuoted:
			cur = append(cur, t.text)
		}
	}
	flush()
	return truncateRunes(strings.Join(frags, ", "), 1000)
}

func hasLetterOrDigit(s string) bool {
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r > 0x7f {
			return true
		}
	}
	return false
}

// domainOf returns the lower-case domain of an address, or "".
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(strings.Trim(addr[i+1:], " >]")), ".")
}
