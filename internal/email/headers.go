package email

import (
	"net/textproto"
	"sort"
	"strings"
)

// Bounds on Message.Headers.
const (
	// MaxHeaderFields bounds the header values kept in Message.Headers.
	MaxHeaderFields = 200
	// MaxHeaderValueBytes bounds one header value in Message.Headers.
	MaxHeaderValueBytes = 4 << 10
)

// headerMap copies h into the bounded form of Message.Headers: names in
// lower case, values cut to MaxHeaderValueBytes and made valid UTF-8, at
// most MaxHeaderFields values. Names are taken in sorted order, first the
// first value of every name, then the further values, so that a message
// with many repeated headers (Received) keeps every name it has up to the
// bound, and the result does not depend on map order. cut reports whether
// values were left out.
func headerMap(h textproto.MIMEHeader) (out map[string][]string, cut bool) {
	if len(h) == 0 {
		return nil, false
	}
	names := make([]string, 0, len(h))
	for name, vals := range h {
		if len(vals) > 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out = make(map[string][]string, min(len(names), MaxHeaderFields))
	kept := 0
	add := func(name, v string) bool {
		if kept >= MaxHeaderFields {
			return false
		}
		if len(v) > MaxHeaderValueBytes {
			v = v[:MaxHeaderValueBytes]
		}
		key := strings.ToLower(name)
		out[key] = append(out[key], strings.ToValidUTF8(v, "\uFFFD"))
		kept++
		return true
	}
	for _, name := range names {
		if !add(name, h[name][0]) {
			return out, true
		}
	}
	for _, name := range names {
		for _, v := range h[name][1:] {
			if !add(name, v) {
				return out, true
			}
		}
	}
	return out, false
}
