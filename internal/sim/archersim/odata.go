package archersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// odataQuery is the subset of OData system query options the simulator
// supports: $filter with `eq` comparisons joined by `and`, $top, $skip and
// $select.
type odataQuery struct {
	filter []odataCmp
	top    int // -1 = none
	skip   int
	sel    []string
}

type odataCmp struct {
	prop  string
	value any // string, bool, float64 or nil
}

// parseOData reads the options from the URL query, or, when the URL has none,
// from a JSON body of the form {"Value":"?$filter=..."} as Archer's docs show.
func parseOData(rawQuery string, body []byte) (odataQuery, error) {
	q := odataQuery{top: -1}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return q, fmt.Errorf("query string: %w", err)
	}
	if !hasOData(vals) && len(body) > 0 {
		var b struct {
			Value *string `json:"Value"`
		}
		if json.Unmarshal(body, &b) == nil && b.Value != nil {
			vals, err = url.ParseQuery(strings.TrimPrefix(strings.TrimSpace(*b.Value), "?"))
			if err != nil {
				return q, fmt.Errorf("query in body: %w", err)
			}
		}
	}
	for key, vs := range vals {
		if len(vs) == 0 {
			continue
		}
		v := vs[0]
		switch strings.ToLower(key) {
		case "$filter":
			q.filter, err = parseFilter(v)
			if err != nil {
				return q, err
			}
		case "$top", "top":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return q, fmt.Errorf("$top %q is not a non-negative integer", v)
			}
			q.top = n
		case "$skip", "skip":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return q, fmt.Errorf("$skip %q is not a non-negative integer", v)
			}
			q.skip = n
		case "$select":
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					q.sel = append(q.sel, p)
				}
			}
		}
	}
	return q, nil
}

func hasOData(vals url.Values) bool {
	for k := range vals {
		if strings.HasPrefix(k, "$") {
			return true
		}
	}
	return false
}

// parseFilter parses `Prop eq literal [and Prop eq literal]...`.
func parseFilter(s string) ([]odataCmp, error) {
	var out []odataCmp
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, errors.New("$filter is empty")
	}
	for {
		prop, after, ok := cutWord(rest)
		if !ok || !isIdent(prop) {
			return nil, fmt.Errorf("$filter %q: expected a property name", s)
		}
		op, after, ok := cutWord(after)
		if !ok || !strings.EqualFold(op, "eq") {
			return nil, fmt.Errorf("$filter %q: only the eq operator is supported", s)
		}
		val, after, err := cutLiteral(after)
		if err != nil {
			return nil, fmt.Errorf("$filter %q: %w", s, err)
		}
		out = append(out, odataCmp{prop: prop, value: val})
		after = strings.TrimSpace(after)
		if after == "" {
			return out, nil
		}
		conj, after2, _ := cutWord(after)
		if !strings.EqualFold(conj, "and") {
			return nil, fmt.Errorf("$filter %q: only 'and' may join comparisons", s)
		}
		rest = after2
	}
}

func cutWord(s string) (string, string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", false
	}
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", true
	}
	return s[:i], s[i:], true
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func cutLiteral(s string) (any, string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "'") {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				return b.String(), s[i+1:], nil
			}
			b.WriteByte(s[i])
		}
		return nil, "", errors.New("unterminated string literal")
	}
	word, rest, ok := cutWord(s)
	if !ok {
		return nil, "", errors.New("missing literal")
	}
	switch strings.ToLower(word) {
	case "true":
		return true, rest, nil
	case "false":
		return false, rest, nil
	case "null":
		return nil, rest, nil
	}
	f, err := strconv.ParseFloat(word, 64)
	if err != nil {
		return nil, "", fmt.Errorf("literal %q is not a string, number, boolean or null", word)
	}
	return f, rest, nil
}

// lookupProp finds a property by name, exactly first, then ignoring case.
func lookupProp(obj map[string]any, name string) (any, bool) {
	if v, ok := obj[name]; ok {
		return v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// matches reports whether obj satisfies every comparison. String comparison
// ignores case, like Archer's default database collation. An unknown
// property is an error.
func (q odataQuery) matches(obj map[string]any) (bool, error) {
	for _, c := range q.filter {
		v, ok := lookupProp(obj, c.prop)
		if !ok {
			return false, fmt.Errorf("could not find a property named '%s'", c.prop)
		}
		if !literalEquals(v, c.value) {
			return false, nil
		}
	}
	return true, nil
}

func literalEquals(v, lit any) bool {
	switch l := lit.(type) {
	case nil:
		return v == nil
	case string:
		s, ok := v.(string)
		return ok && strings.EqualFold(s, l)
	case bool:
		b, ok := v.(bool)
		return ok && b == l
	case float64:
		switch n := v.(type) {
		case float64:
			return n == l
		case int64:
			return float64(n) == l
		case int:
			return float64(n) == l
		}
	}
	return false
}

// apply filters, pages and projects a list of objects.
func (q odataQuery) apply(objs []map[string]any) ([]map[string]any, error) {
	var out []map[string]any
	for _, o := range objs {
		m, err := q.matches(o)
		if err != nil {
			return nil, err
		}
		if m {
			out = append(out, o)
		}
	}
	if q.skip >= len(out) {
		out = nil
	} else {
		out = out[q.skip:]
	}
	if q.top >= 0 && q.top < len(out) {
		out = out[:q.top]
	}
	if len(q.sel) > 0 {
		for i, o := range out {
			p := map[string]any{}
			for _, name := range q.sel {
				for k, v := range o {
					if strings.EqualFold(k, name) {
						p[k] = v
					}
				}
			}
			out[i] = p
		}
	}
	return out, nil
}
