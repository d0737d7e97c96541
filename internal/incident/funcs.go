package incident

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

// DefaultSummaryBody is the body excerpt length of summary, in characters.
const DefaultSummaryBody = 1000

// Funcs returns the functions mapping templates may call besides the
// built-in ones (and, or, not, eq, ne, lt, le, gt, ge, len, index, print,
// printf):
//
//	defang    {{defang .Suspect.Subject}}: URLs, hosts, e-mail and IP addresses made safe (see Defang); on a list, each element
//	truncate  {{.Suspect.Subject | truncate 80}} cuts to 80 characters, ending in "…"
//	join      {{.Suspect.To | join ", "}} joins strings, addresses, URLs, attachments (by name), hops (by IP)
//	list      {{list "a" "b"}} builds a list
//	summary   {{summary .Suspect}} or {{summary .Suspect 500}}: the From/Sent/To/CC/Subject block and a body excerpt, defanged
//	date      {{date "2006-01-02 15:04" .Suspect.Date}} formats a time, "" when zero
//
// The map is new on every call; the functions are safe for concurrent use.
func Funcs() tmpl.Funcs {
	return tmpl.Funcs{
		"defang":   defangValue,
		"truncate": truncate,
		"join":     join,
		"list":     func(items ...any) []any { return items },
		"summary":  summary,
		"date":     formatDate,
	}
}

// defangValue defangs a string, a URL, an address, or each element of a
// list (giving a list of strings).
func defangValue(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return Defang(v), nil
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = Defang(s)
		}
		return out, nil
	}
	items, isList, err := stringsOf(v)
	if err != nil {
		return nil, err
	}
	if !isList {
		s, err := stringOf(v)
		return Defang(s), err
	}
	for i := range items {
		items[i] = Defang(items[i])
	}
	return items, nil
}

// truncate cuts s to at most n characters, replacing the end with "…"
// when it cuts; it never splits a UTF-8 character. n < 1 gives "".
func truncate(n int, s string) string {
	if n < 1 {
		return ""
	}
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	return cutRunes(s, n-1) + "…"
}

// cutRunes keeps the first n characters of s.
func cutRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// join joins the elements of a list with sep; a string is returned as it
// is and another single value as it prints.
func join(sep string, v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	items, isList, err := stringsOf(v)
	if err != nil {
		return "", fmt.Errorf("join: %w", err)
	}
	if !isList {
		return stringOf(v)
	}
	return strings.Join(items, sep), nil
}

// stringsOf renders the elements of a slice by stringOf; isList is false
// for a value that is not a slice.
func stringsOf(v any) (items []string, isList bool, err error) {
	if v == nil {
		return nil, false, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false, nil
	}
	out := make([]string, 0, rv.Len())
	for i := range rv.Len() {
		s, err := stringOf(rv.Index(i).Interface())
		if err != nil {
			return nil, true, err
		}
		out = append(out, s)
	}
	return out, true, nil
}

// stringOf renders one value: attachments by name, hops by IP, anything
// else as a template prints it.
func stringOf(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case email.Attachment:
		return v.Name, nil
	case *email.Attachment:
		if v == nil {
			return "", nil
		}
		return v.Name, nil
	case email.Hop:
		return v.IP, nil
	}
	return tmpl.Print(v)
}

// formatDate formats t with a Go layout; the zero time gives "".
func formatDate(layout string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(layout)
}

// summary is the template function: summary .Suspect [maxBody].
func summary(m *email.Message, maxBody ...int) string {
	n := DefaultSummaryBody
	if len(maxBody) > 0 {
		n = maxBody[0]
	}
	return Defang(summaryText(m, n))
}

// summaryText renders the block SOC teams paste into an incident
// description: From, Sent, To, CC and Subject lines, a blank line and the
// first maxBody characters of the text body with blank lines squeezed. A
// nil message gives "".
func summaryText(m *email.Message, maxBody int) string {
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
	line("Sent", formatDate("Mon, 02 Jan 2006 15:04:05 -0700", m.Date))
	to, _ := join("; ", m.To)
	cc, _ := join("; ", m.CC)
	line("To", to)
	line("CC", cc)
	line("Subject", m.Subject)
	body := squeezeBody(m.Text, maxBody)
	if body != "" && maxBody > 0 {
		b.WriteByte('\n')
		b.WriteString(truncate(maxBody, body))
		b.WriteByte('\n')
	}
	return b.String()
}

// squeezeBody trims the lines of a body, turns tabs and runs of spaces
// into one space, and keeps at most one blank line in a row. It stops once
// it has more than limit characters, so a huge body costs no more than
// its excerpt.
func squeezeBody(s string, limit int) string {
	var b strings.Builder
	blank, chars := false, 0
	for len(s) > 0 && chars <= limit {
		l := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			l, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if most := 4*limit + 64; len(l) > most {
			l = strings.ToValidUTF8(l[:most], "")
		}
		l = strings.Join(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }), " ")
		if l == "" {
			blank = b.Len() > 0
			continue
		}
		if blank {
			b.WriteString("\n\n")
			chars += 2
		} else if b.Len() > 0 {
			b.WriteByte('\n')
			chars++
		}
		blank = false
		b.WriteString(l)
		chars += utf8.RuneCountInString(l)
	}
	return b.String()
}
