package email

import (
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// DefaultSummaryBody is the body excerpt length of summary, in characters.
const DefaultSummaryBody = 1000

// FuncMap returns the template helpers the incident mapping exposes:
//
//	defang    "https://evil.example/x" → "hxxps://evil[.]example/x"; also lists
//	truncate  {{.Suspect.Subject | truncate 80}} cuts to 80 characters, ending in "…"
//	join      {{.Suspect.To | join ", "}} joins strings, addresses, URLs, attachments
//	list      {{list "a" "b"}} builds a list
//	summary   {{summary .Suspect}} or {{summary .Suspect 500}}: the From/Sent/To/CC/Subject block and a body excerpt
//	date      {{date "2006-01-02 15:04" .Suspect.Date}} formats a time, "" when zero
//
// The map is new on every call; the functions are safe for concurrent use.
func FuncMap() template.FuncMap {
	return template.FuncMap{
		"defang":   defangAny,
		"truncate": Truncate,
		"join":     joinAny,
		"list":     func(items ...any) []any { return items },
		"summary":  summaryFunc,
		"date":     formatDate,
	}
}

// Defang makes the URLs, domains, IP addresses and email addresses in s
// safe to paste: "http" becomes "hxxp", "ftp" "fxp", and the dots of host
// names "[.]". Other text is unchanged.
func Defang(s string) string {
	if !strings.Contains(s, ".") && !strings.Contains(strings.ToLower(s), "://") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	start := -1
	flush := func(end int) {
		if start >= 0 {
			b.WriteString(defangToken(s[start:end]))
			start = -1
		}
	}
	for i, r := range s {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '<' || r == '>' || r == '"' || r == '(' || r == ')' {
			flush(i)
			b.WriteRune(r)
			continue
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(s))
	return b.String()
}

// defangToken defangs one whitespace-free token when it is a URL, host,
// IP address or email address.
func defangToken(tok string) string {
	lead := len(tok) - len(strings.TrimLeft(tok, "'[{,;"))
	trail := len(tok) - len(strings.TrimRight(tok, "'.,;:!?]}"))
	if lead+trail >= len(tok) {
		return tok
	}
	core := tok[lead : len(tok)-trail]
	scheme, rest, isURL := strings.Cut(core, "://")
	if !isURL {
		rest, scheme = core, ""
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	host := authority
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.Contains(host, "[") && strings.Count(host, ":") == 1 {
		host = h
	}
	if !isURL && !looksLikeHost(host) && !isIPv4(host) {
		return tok
	}
	var out strings.Builder
	out.WriteString(tok[:lead])
	if isURL {
		switch strings.ToLower(scheme) {
		case "http":
			scheme = "hxxp"
		case "https":
			scheme = "hxxps"
		case "ftp":
			scheme = "fxp"
		}
		out.WriteString(scheme + "://")
	}
	out.WriteString(strings.ReplaceAll(authority, ".", "[.]"))
	out.WriteString(tail)
	out.WriteString(tok[len(tok)-trail:])
	return out.String()
}

func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// defangAny defangs a string, a URL, an address, or each element of a list.
func defangAny(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return Defang(v), nil
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = Defang(s)
		}
		return out, nil
	}
	items, err := stringsOf(v)
	if err != nil {
		return nil, fmt.Errorf("defang: %w", err)
	}
	if items == nil {
		return Defang(fmt.Sprint(v)), nil
	}
	for i := range items {
		items[i] = Defang(items[i])
	}
	return items, nil
}

// Truncate cuts s to at most n characters, replacing the end with "…" when
// it cuts. n < 1 gives "".
func Truncate(n int, s string) string {
	if n < 1 {
		return ""
	}
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	return truncateRunes(s, n-1) + "…"
}

// joinAny joins the elements of a list with sep; see FuncMap.
func joinAny(sep string, v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	items, err := stringsOf(v)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	if items == nil && v != nil {
		return fmt.Sprint(v), nil
	}
	return strings.Join(items, sep), nil
}

// stringsOf renders the elements of a slice: strings as they are, values
// with a String method through it, attachments by name, hops by IP, other
// values with fmt. It returns nil, nil for a value that is not a slice.
func stringsOf(v any) ([]string, error) {
	if v == nil {
		return []string{}, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, nil
	}
	out := make([]string, 0, rv.Len())
	for i := 0; i < rv.Len(); i++ {
		out = append(out, stringOf(rv.Index(i).Interface()))
	}
	return out, nil
}

func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case Attachment:
		return v.Name
	case *Attachment:
		return v.Name
	case Hop:
		return v.IP
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func formatDate(layout string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(layout)
}

func summaryFunc(m *Message, maxBody ...int) string {
	n := DefaultSummaryBody
	if len(maxBody) > 0 {
		n = maxBody[0]
	}
	return Summary(m, n)
}

// Summary renders the block SOC teams paste into an incident description:
// From, Sent, To, CC and Subject lines, a blank line and the first maxBody
// characters of the text body with blank lines squeezed. A nil message gives
// "".
func Summary(m *Message, maxBody int) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	line("From", m.From.String())
	sent := ""
	if !m.Date.IsZero() {
		sent = m.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	}
	line("Sent", sent)
	to, _ := joinAny("; ", m.To)
	cc, _ := joinAny("; ", m.CC)
	line("To", to)
	line("CC", cc)
	line("Subject", m.Subject)
	body := squeezeBody(m.Text)
	if body != "" && maxBody > 0 {
		b.WriteByte('\n')
		b.WriteString(Truncate(maxBody, body))
		b.WriteByte('\n')
	}
	return b.String()
}

// squeezeBody trims the lines of a body and keeps at most one blank line in
// a row.
func squeezeBody(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out []string
	blank := false
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(collapseSpaces(strings.ReplaceAll(l, "\t", " ")), " ")
		if strings.TrimSpace(l) == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
