package email

import (
	"net/textproto"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// parseAuth reads the verdicts from Authentication-Results and the
// Microsoft anti-spam headers. Of several Authentication-Results headers the
// topmost (added last, by the receiving organisation) wins per method.
func parseAuth(h textproto.MIMEHeader) Auth {
	au := Auth{SCL: -1, BCL: -1, PCL: -1}
	values := h.Values("Authentication-Results")
	raws := make([]string, 0, len(values))
	for _, v := range values {
		if len(v) > maxHeaderValue {
			v = v[:maxHeaderValue]
		}
		v = cleanHeaderText(v)
		raws = append(raws, v)
		for _, r := range parseAuthResults(v) {
			switch r := r.(type) {
			case *authres.SPFResult:
				setOnce(&au.SPF, string(r.Value))
			case *authres.DKIMResult:
				setOnce(&au.DKIM, string(r.Value))
			case *authres.DMARCResult:
				setOnce(&au.DMARC, string(r.Value))
			case *authres.GenericResult:
				if r.Method == "compauth" && au.CompAuth == "" && r.Value != "" {
					au.CompAuth = strings.ToLower(string(r.Value))
					au.CompAuthReason = truncateRunes(strings.TrimSpace(r.Params["reason"]), 16)
				}
			}
		}
	}
	au.Raw = strings.Join(raws, "\n")

	forefront := antispamFields(h.Get("X-Forefront-Antispam-Report"))
	ms := antispamFields(h.Get("X-Microsoft-Antispam"))
	au.SCL = firstLevel(forefront["SCL"], h.Get("X-MS-Exchange-Organization-SCL"), ms["SCL"])
	au.BCL = firstLevel(ms["BCL"], forefront["BCL"])
	au.PCL = firstLevel(ms["PCL"], forefront["PCL"])
	au.CAT = strings.ToUpper(forefront["CAT"])
	return au
}

func setOnce(dst *string, v string) {
	if *dst == "" && v != "" {
		*dst = strings.ToLower(v)
	}
}

// parseAuthResults parses one Authentication-Results value. Microsoft omits
// the authserv-id and adds comments in parentheses; both are tolerated, and
// a malformed result does not hide the ones after it.
func parseAuthResults(v string) []authres.Result {
	v = stripComments(v)
	segs := strings.Split(v, ";")
	var out []authres.Result
	for i, seg := range segs {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		if i == 0 && !strings.Contains(strings.Fields(seg)[0], "=") {
			continue // the authserv-id
		}
		_, results, err := authres.Parse("x; " + seg)
		if err != nil {
			continue
		}
		out = append(out, results...)
	}
	return out
}

// stripComments removes RFC 5322 comments, which may nest.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// antispamFields splits "KEY:value;KEY2:value" into upper-case keys.
func antispamFields(v string) map[string]string {
	out := map[string]string{}
	if len(v) > maxHeaderValue {
		v = v[:maxHeaderValue]
	}
	for _, f := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		if _, seen := out[k]; !seen {
			out[k] = strings.TrimSpace(val)
		}
	}
	return out
}

// firstLevel returns the first value that is an integer in -1..9, or -1.
func firstLevel(vs ...string) int {
	for _, v := range vs {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil && n >= -1 && n <= 9 {
			return n
		}
	}
	return -1
}
