package email

import (
	"fmt"
	"net/textproto"
	"strings"
	"testing"
)

func TestHeaderMapBounds(t *testing.T) {
	t.Parallel()
	many := textproto.MIMEHeader{}
	for i := range 150 {
		many.Add("Received", fmt.Sprintf("hop %d", i))
	}
	for i := range 120 {
		many.Add(fmt.Sprintf("X-Filler-%03d", i), "v")
	}
	many.Add("X-Phishtest", "abc")
	tests := []struct {
		name    string
		h       textproto.MIMEHeader
		cut     bool
		check   func(t *testing.T, m map[string][]string)
		entries int
	}{
		{"empty", textproto.MIMEHeader{}, false, func(t *testing.T, m map[string][]string) {
			if m != nil {
				t.Errorf("map %v", m)
			}
		}, 0},
		{"lower-case names, order of values kept", textproto.MIMEHeader{
			"X-Phishtest": {"one", "two"}, "Subject": {"=?utf-8?q?hi?="},
		}, false, func(t *testing.T, m map[string][]string) {
			if got := m["x-phishtest"]; len(got) != 2 || got[0] != "one" || got[1] != "two" {
				t.Errorf("x-phishtest %q", got)
			}
			if got := m["subject"]; len(got) != 1 || got[0] != "=?utf-8?q?hi?=" {
				t.Errorf("subject %q (values are kept undecoded)", got)
			}
		}, 3},
		{"long and invalid values", textproto.MIMEHeader{
			"X-Long": {strings.Repeat("a", 10000)}, "X-Bad": {"a\xffb"},
		}, false, func(t *testing.T, m map[string][]string) {
			if got := m["x-long"][0]; len(got) != MaxHeaderValueBytes {
				t.Errorf("long value kept %d bytes", len(got))
			}
			if got := m["x-bad"][0]; got != "a\uFFFDb" {
				t.Errorf("invalid UTF-8 kept as %q", got)
			}
		}, 2},
		{"every name before repeated values", many, true, func(t *testing.T, m map[string][]string) {
			if len(m) != 122 {
				t.Errorf("%d names kept, want all 122", len(m))
			}
			if got := m["x-phishtest"]; len(got) != 1 || got[0] != "abc" {
				t.Errorf("x-phishtest %q: a late name lost to repeated Received values", got)
			}
			if got := len(m["received"]); got != MaxHeaderFields-121 {
				t.Errorf("%d Received values kept, want %d", got, MaxHeaderFields-121)
			}
			if m["received"][0] != "hop 0" || m["received"][1] != "hop 1" {
				t.Errorf("Received order lost: %q", m["received"][:2])
			}
		}, MaxHeaderFields},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, cut := headerMap(tt.h)
			if cut != tt.cut {
				t.Errorf("cut = %v, want %v", cut, tt.cut)
			}
			n := 0
			for _, v := range m {
				n += len(v)
			}
			if n != tt.entries {
				t.Errorf("%d values kept, want %d", n, tt.entries)
			}
			tt.check(t, m)
		})
	}
}

// TestAnalyzeKeepsTheOriginalsHeaders checks that the reported original's
// headers reach Message.Headers from an attached .eml and from a .msg's
// transport headers, and that an inline forward has none.
func TestAnalyzeKeepsTheOriginalsHeaders(t *testing.T) {
	t.Parallel()
	report := mustRead(t, "testdata/corpus/report-rfc822.eml")
	withHeader := strings.Replace(string(report), "Subject: Your mailbox is almost full", "X-PHISHTEST: kb4-1234\r\nSubject: Your mailbox is almost full", 1)
	if withHeader == string(report) {
		t.Fatal("the sample's original subject line was not found")
	}
	tests := []struct {
		name, raw, header, want string
	}{
		{"attached eml", withHeader, "x-phishtest", "kb4-1234"},
		{"attached eml, Authentication-Results", string(report), "x-forefront-antispam-report", "CIP:203.0.113.9"},
		{"msg transport headers", string(mustRead(t, "testdata/samples/03-report-message-msg.eml")), "x-microsoft-antispam", "BCL:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := Analyze([]byte(tt.raw), Metadata{MessageID: "m1"}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Suspect == nil || rep.Suspect.Source == "self" {
				t.Fatalf("no original found: %+v", rep.Suspect)
			}
			vals := rep.Suspect.Headers[tt.header]
			if len(vals) == 0 || !strings.Contains(vals[0], tt.want) {
				t.Errorf("%s = %q, want it to hold %q; headers %v", tt.header, vals, tt.want, keysOf(rep.Suspect.Headers))
			}
			// The report's own headers are not the original's.
			if _, ok := rep.Suspect.Headers["x-ms-exchange-organization-network-message-id"]; ok && tt.name != "msg transport headers" {
				t.Error("the report's headers leaked into the original's")
			}
		})
	}
	fwd := mustRead(t, "testdata/corpus/forward-outlook-es.eml")
	rep, err := Analyze(fwd, Metadata{MessageID: "m2"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Suspect == nil || rep.Suspect.Source != "inline-forward" {
		t.Fatalf("suspect %+v, want the inline forward", rep.Suspect)
	}
	if len(rep.Suspect.Headers) != 0 {
		t.Errorf("an inline forward has headers %v", rep.Suspect.Headers)
	}
}

func keysOf(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
