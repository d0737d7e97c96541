package incident

import (
	"strings"
	"testing"
	"time"
)

func TestDefang(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		// URLs: scheme and every dot of the host.
		{"https://evil.example/path", "hxxps://evil[.]example/path"},
		{"https://login.c0ntoso.example/owa?x=1.2", "hxxps://login[.]c0ntoso[.]example/owa?x=1.2"},
		{"HTTP://EVIL.EXAMPLE/", "hxxp://EVIL[.]EXAMPLE/"},
		{"ftp://files.example/x", "fxp://files[.]example/x"},
		{"http://203.0.113.9:8080/a.php", "hxxp://203.0.113[.]9:8080/a.php"},
		{"http://user:pw@evil.example:8443/", "hxxp://user:pw@evil[.]example:8443/"},
		{"http://[2001:db8::1]:8080/x", "hxxp://[2001:db8:[:]1]:8080/x"},
		{"https://intranet/x", "hxxps://intranet/x"},
		{"smb://share.evil.example/x", "smb://share[.]evil[.]example/x"},
		// Nested URLs: open redirects, plain and percent-encoded.
		{"https://r.example/redirect?url=https://landing.example/x&u=1", "hxxps://r[.]example/redirect?url=hxxps://landing[.]example/x&u=1"},
		{"https://r.example/r?u=https%3A%2F%2Flanding.example%2Fx", "hxxps://r[.]example/r?u=hxxps%3A%2F%2Flanding[.]example%2Fx"},
		{"https://r.example/#http://a.example/http://b.example", "hxxps://r[.]example/#hxxp://a[.]example/hxxp://b[.]example"},
		{"evil.example/r?url=https://landing.example", "evil[.]example/r?url=hxxps://landing[.]example"},
		// Hosts, e-mail addresses and IPs outside URLs.
		{"contosso.com", "contosso[.]com"},
		{"www.evil.co.uk/login", "www[.]evil[.]co[.]uk/login"},
		{"it@contosso.com", "it@contosso[.]com"},
		{"first.last@mail.evil.example", "first.last@mail[.]evil[.]example"},
		{`"IT Desk" <it@evil.example>`, `"IT Desk" <it@evil[.]example>`},
		{"198.51.100.23", "198.51.100[.]23"},
		{"192.0.2.1:3389", "192.0.2[.]1:3389"},
		{"2001:db8::1", "2001:db8:[:]1"},
		{"2001:db8:0:0:0:0:0:1", "2001:db8:0:0:0:0:0[:]1"},
		{"see (https://a.example/b), then stop.", "see (hxxps://a[.]example/b), then stop."},
		{"Visit evil.example.", "Visit evil[.]example."},
		{"Link:evil.example", "Link:evil[.]example"},
		{"[https://a.example]", "[hxxps://a[.]example]"},
		// Words that are not hosts.
		{"Hello. World", "Hello. World"},
		{"Klicken Sie hier.", "Klicken Sie hier."},
		{"Unsubscribe.", "Unsubscribe."},
		{"invoice.pdf", "invoice.pdf"},
		{"report.docx and setup.exe", "report.docx and setup.exe"},
		{"version 1.2.3", "version 1.2.3"},
		{"at 10:30:00", "at 10:30:00"},
		{"e.g. this", "e.g. this"},
		{"", ""},
		// Already defanged text stays as it is.
		{"hxxps://evil[.]example/path", "hxxps://evil[.]example/path"},
		{"192.0.2[.]1", "192.0.2[.]1"},
		{"it@evil[.]example", "it@evil[.]example"},
	}
	for _, tt := range tests {
		if got := Defang(tt.in); got != tt.want {
			t.Errorf("Defang(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
		if got := Defang(Defang(tt.in)); got != tt.want {
			t.Errorf("Defang twice (%q) = %q", tt.in, got)
		}
	}
}

func TestDefangIsReversible(t *testing.T) {
	t.Parallel()
	refang := strings.NewReplacer("[.]", ".", "[:]", ":", "hxxps://", "https://", "hxxp://", "http://", "fxp://", "ftp://")
	for _, in := range []string{
		"https://evil.example/a?b=https://c.example", "192.0.2.1", "2001:db8::1", "it@evil.example", "ftp://x.example",
	} {
		if got := refang.Replace(Defang(in)); got != in {
			t.Errorf("refang(Defang(%q)) = %q", in, got)
		}
	}
}

func TestDefangHugeInput(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		strings.Repeat("https://", 1<<17),
		strings.Repeat("a.example ", 1<<17),
		strings.Repeat("%3A%2F%2F", 1<<17),
		strings.Repeat(".", 1<<20),
	} {
		start := time.Now()
		out := Defang(in)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q…: %v", in[:9], d)
		}
		if strings.Contains(out, "https://") {
			t.Errorf("%q…: a live scheme is left", in[:9])
		}
	}
}

func FuzzDefang(f *testing.F) {
	f.Add("see https://a.example/?u=http%3A%2F%2Fb.example and c@d.example 192.0.2.1")
	f.Add("[2001:db8::1]")
	f.Fuzz(func(t *testing.T, s string) {
		out := Defang(s)
		if Defang(out) != out {
			t.Errorf("Defang is not idempotent on %q: %q then %q", s, out, Defang(out))
		}
		if lower := asciiLower(out); strings.Contains(lower, "http://") || strings.Contains(lower, "https://") {
			t.Errorf("live scheme left in %q: %q", s, out)
		}
	})
}
