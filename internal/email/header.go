package email

import (
	"net/mail"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04:05 -0700 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 2006 15:04:05",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon, Jan 2 2006 15:04:05 -0700",
	time.RFC3339,
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
}

var parenComment = regexp.MustCompile(`\([^()]*\)`)

// parseDate reads an RFC 5322 date and the usual deviations from it.
func parseDate(s string) (time.Time, bool) {
	s = cleanHeaderText(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	s = strings.TrimSpace(collapseSpaces(parenComment.ReplaceAllString(s, "")))
	s = strings.ReplaceAll(s, ",", ", ")
	s = strings.ReplaceAll(collapseSpaces(s), " ,", ",")
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseReceived reads one Received header: the sending host, the receiving
// host, the first IP literal of the "from" clause and the time stamp.
func parseReceived(v string) Hop {
	v = cleanHeaderText(v)
	var h Hop
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		if t, ok := parseDate(v[i+1:]); ok {
			h.Time = t
		}
		v = v[:i]
	}
	fields := strings.Fields(v)
	var fromClause []string
	section := ""
	for i, f := range fields {
		lf := strings.ToLower(f)
		switch lf {
		case "from", "by", "with", "id", "for", "via":
			section = lf
			if i+1 < len(fields) {
				next := fields[i+1]
				if lf == "from" && h.From == "" {
					h.From = strings.Trim(next, "()[];")
				}
				if lf == "by" && h.By == "" {
					h.By = strings.Trim(next, "()[];")
				}
			}
			continue
		}
		if section == "from" {
			fromClause = append(fromClause, f)
		}
	}
	// Prefer the address the receiving host saw (in the parenthesised
	// TCP-info) over the one the sender claimed in HELO.
	depth := 0
	for _, f := range fromClause {
		inParens := depth > 0 || strings.HasPrefix(f, "(")
		depth += strings.Count(f, "(") - strings.Count(f, ")")
		depth = max(depth, 0)
		ip := ipLiteral(f)
		if ip == "" {
			continue
		}
		if inParens {
			h.IP = ip
			break
		}
		if h.IP == "" {
			h.IP = ip
		}
	}
	return h
}

// ipLiteral returns the IP address a Received token holds, or "".
func ipLiteral(tok string) string {
	tok = strings.Trim(tok, "()[];,")
	tok = strings.TrimPrefix(strings.TrimPrefix(tok, "IPv6:"), "ipv6:")
	if i := strings.LastIndexByte(tok, '['); i >= 0 {
		tok = tok[i+1:]
	}
	tok = strings.Trim(tok, "[]")
	if j := strings.Index(tok, "]:"); j >= 0 {
		tok = tok[:j]
	}
	addr, err := netip.ParseAddr(tok)
	if err != nil {
		return ""
	}
	return addr.Unmap().String()
}
