package email

import (
	"strconv"
	"strings"
	"time"
)

// maxForwardScan bounds the text searched for an inline-forward block.
const maxForwardScan = 256 << 10

// forwardKeys maps the header names of inline-forward blocks written by
// Outlook and Gmail in English, Portuguese and Spanish to canonical keys.
var forwardKeys = map[string]string{
	"from":       "from",
	"de":         "from",
	"sent":       "date",
	"date":       "date",
	"enviado":    "date",
	"enviada":    "date",
	"enviado el": "date",
	"enviado em": "date",
	"enviada em": "date",
	"fecha":      "date",
	"data":       "date",
	"to":         "to",
	"para":       "to",
	"cc":         "cc",
	"subject":    "subject",
	"assunto":    "subject",
	"asunto":     "subject",
}

// forwardSeparators start an inline-forward block in the clients we know.
var forwardSeparators = []string{
	"forwarded message", "original message", "mensagem encaminhada", "mensagem original",
	"mensaje reenviado", "mensaje original", "begin forwarded message", "message transféré",
	"weitergeleitete nachricht", "ursprüngliche nachricht", "message d'origine", "________________",
}

// inlineForward looks in a text body for the header block of an inline
// forward and recovers the forwarded message from it. loc is the time zone
// the forwarding client wrote the block in (that of the report's Date).
// With anywhere false, the block must start the body: only blank and
// separator lines may come before it.
func inlineForward(text string, loc *time.Location, anywhere bool) (*Message, bool) {
	if len(text) > maxForwardScan {
		text = text[:maxForwardScan]
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := range lines {
		key, _, ok := forwardField(lines[i])
		if !ok || key != "from" {
			if !anywhere && !blankOrSeparator(lines[i]) {
				return nil, false
			}
			continue
		}
		fields, end := readForwardBlock(lines, i)
		if fields["from"] == "" || fields["subject"] == "" {
			continue
		}
		if fields["date"] == "" && !separatorAbove(lines, i) {
			continue
		}
		m := &Message{Source: "inline-forward"}
		m.From = forwardAddress(fields["from"])
		m.To = forwardAddresses(fields["to"])
		m.CC = forwardAddresses(fields["cc"])
		m.Subject = cleanHeaderText(fields["subject"])
		if t, ok := parseForwardDate(fields["date"], loc); ok {
			m.Date = t
		}
		m.Text = strings.TrimSpace(strings.Join(lines[end:], "\n"))
		return m, true
	}
	return nil, false
}

// blankOrSeparator reports whether a line is empty, punctuation only
// ("________", "-----"), or a forward separator ("Begin forwarded
// message:").
func blankOrSeparator(line string) bool {
	l := strings.ToLower(strings.TrimSpace(line))
	if strings.Trim(l, "-_=*> ") == "" {
		return true
	}
	for _, s := range forwardSeparators {
		if strings.Contains(l, s) && len(l) <= len(s)+30 {
			return true
		}
	}
	return false
}

func separatorAbove(lines []string, i int) bool {
	for j := max(0, i-3); j < i; j++ {
		l := strings.ToLower(lines[j])
		for _, s := range forwardSeparators {
			if strings.Contains(l, s) {
				return true
			}
		}
	}
	return false
}

// readForwardBlock reads "Key: value" lines from lines[start] until a line
// that is not one; a line without a key continues the previous value. It
// returns the fields and the index of the first body line.
func readForwardBlock(lines []string, start int) (map[string]string, int) {
	fields := map[string]string{}
	last := ""
	i := start
	for ; i < len(lines) && i < start+12; i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			if fields["subject"] != "" {
				break
			}
			continue
		}
		key, val, ok := forwardField(l)
		if ok {
			if _, dup := fields[key]; dup {
				break
			}
			fields[key], last = val, key
			continue
		}
		if last == "to" || last == "cc" {
			fields[last] += " " + strings.Trim(l, "> *")
			continue
		}
		break
	}
	return fields, i
}

// forwardField splits a line like "*From:* Name <a@b>" into a canonical
// key and its value.
func forwardField(line string) (key, val string, ok bool) {
	l := strings.TrimLeft(strings.TrimSpace(line), "> *")
	k, v, found := strings.Cut(l, ":")
	if !found || len(k) > 20 {
		return "", "", false
	}
	key, ok = forwardKeys[strings.ToLower(strings.Trim(k, " *"))]
	if !ok {
		return "", "", false
	}
	return key, strings.TrimSpace(strings.Trim(strings.TrimSpace(v), "*")), true
}

// forwardAddress reads "Name <a@b>", "Name [mailto:a@b]", "Name
// <mailto:a@b>" or a bare address.
func forwardAddress(v string) Address {
	v = strings.ReplaceAll(v, "mailto:", "")
	spec := addrSpec.FindString(v)
	name := v
	if spec != "" {
		name = strings.Replace(name, spec, "", 1)
	}
	name = strings.Trim(strings.TrimSpace(name), ` "'<>[]()`)
	if name == spec {
		name = ""
	}
	return Address{Name: cleanHeaderText(name), Address: strings.ToLower(spec)}
}

func forwardAddresses(v string) []Address {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var out []Address
	for _, piece := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		if a := forwardAddress(piece); !a.IsZero() {
			out = append(out, a)
		}
	}
	return out
}

var monthNames = map[string]time.Month{
	"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
	"august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
	"janeiro": 1, "fevereiro": 2, "março": 3, "marco": 3, "abril": 4, "maio": 5, "junho": 6,
	"julho": 7, "agosto": 8, "setembro": 9, "outubro": 10, "novembro": 11, "dezembro": 12,
	"enero": 1, "febrero": 2, "marzo": 3, "mayo": 5, "junio": 6, "julio": 7,
	"septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
	"jan": 1, "feb": 2, "fev": 2, "mar": 3, "apr": 4, "abr": 4, "mai": 5, "jun": 6, "jul": 7,
	"aug": 8, "ago": 8, "sep": 9, "sept": 9, "set": 9, "oct": 10, "out": 10, "nov": 11,
	"dec": 12, "dez": 12, "dic": 12, "ene": 1,
}

// parseForwardDate reads the date line of an inline-forward block, in any of
// the forms Outlook and Gmail write in English, Portuguese and Spanish. A
// date without a zone is taken in loc.
func parseForwardDate(s string, loc *time.Location) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if t, ok := parseDate(s); ok {
		return t, true
	}
	if loc == nil {
		loc = time.UTC
	}
	tokens := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return r == ' ' || r == ',' || r == '.' || r == '\t' || r == '/'
	})
	var (
		year, day, hour, minute, sec = -1, -1, -1, -1, 0
		month                        time.Month
		pm, am                       bool
		offset                       *int
	)
	for _, t := range tokens {
		switch {
		case t == "pm" || t == "p":
			pm = true
		case t == "am":
			am = true
		case strings.Contains(t, ":"):
			parts := strings.Split(t, ":")
			if len(parts) < 2 || hour >= 0 {
				continue
			}
			h, err1 := strconv.Atoi(parts[0])
			mi, err2 := strconv.Atoi(parts[1])
			if err1 != nil || err2 != nil {
				continue
			}
			hour, minute = h, mi
			if len(parts) > 2 {
				if se, err := strconv.Atoi(parts[2]); err == nil {
					sec = se
				}
			}
		case (t[0] == '+' || t[0] == '-') && len(t) == 5:
			if n, err := strconv.Atoi(t[1:]); err == nil {
				off := (n/100)*3600 + (n%100)*60
				if t[0] == '-' {
					off = -off
				}
				offset = &off
			}
		default:
			if n, err := strconv.Atoi(t); err == nil {
				switch {
				case len(t) == 4 && year < 0:
					year = n
				case len(t) <= 2 && day < 0 && n >= 1 && n <= 31:
					day = n
				}
				continue
			}
			if m, ok := monthNames[t]; ok && month == 0 {
				month = m
			}
		}
	}
	if year < 1970 || month == 0 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return time.Time{}, false
	}
	if pm && hour < 12 {
		hour += 12
	}
	if am && hour == 12 {
		hour = 0
	}
	if offset != nil {
		loc = time.FixedZone("", *offset)
	}
	return time.Date(year, month, day, hour, minute, sec, 0, loc), true
}
