package email

import (
	"strings"
	"testing"
)

func TestExpandURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []URL // URL and Via only
	}{
		{"plain", "https://a.example/x", []URL{{URL: "https://a.example/x"}}},
		{"safe links", "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Flanding.example%2Fp%3Fa%3D1&data=05%7C02&reserved=0",
			[]URL{{URL: "https://landing.example/p?a=1", Via: "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Flanding.example%2Fp%3Fa%3D1&data=05%7C02&reserved=0"}}},
		{"url defense v1", "https://urldefense.proofpoint.com/v1/url?u=http://www.landing.example/&k=oIvRg1%2BdG",
			[]URL{{URL: "http://www.landing.example/", Via: "https://urldefense.proofpoint.com/v1/url?u=http://www.landing.example/&k=oIvRg1%2BdG"}}},
		{"url defense v2", "https://urldefense.proofpoint.com/v2/url?u=https-3A__landing.example_login-3Fid-3D5-26x-3Dy&d=DwMF&c=abc",
			[]URL{{URL: "https://landing.example/login?id=5&x=y", Via: "https://urldefense.proofpoint.com/v2/url?u=https-3A__landing.example_login-3Fid-3D5-26x-3Dy&d=DwMF&c=abc"}}},
		{"url defense v3 single substitutions", "https://urldefense.com/v3/__https://landing.example/o/owa*2Findex.html?x=1*me@victim.example__;JSM!!Fjc1LPEtn8I!abc$",
			[]URL{{URL: "https://landing.example/o/owa%2Findex.html?x=1#me@victim.example", Via: "https://urldefense.com/v3/__https://landing.example/o/owa*2Findex.html?x=1*me@victim.example__;JSM!!Fjc1LPEtn8I!abc$"}}},
		{"url defense v3 run", "https://urldefense.com/v3/__https://landing.example/a**Ab__;Jj0!!x!y$",
			[]URL{{URL: "https://landing.example/a&=b", Via: "https://urldefense.com/v3/__https://landing.example/a**Ab__;Jj0!!x!y$"}}},
		{"open redirect in query", "https://www.google.example/url?q=https://landing.example/x&sa=D",
			[]URL{{URL: "https://www.google.example/url?q=https://landing.example/x&sa=D"}, {URL: "https://landing.example/x", Via: "https://www.google.example/url?q=https://landing.example/x&sa=D"}}},
		{"percent-encoded u=", "https://click.example/t?u=https%3A%2F%2Flanding.example%2Fa%3Fb%3Dc",
			[]URL{{URL: "https://click.example/t?u=https%3A%2F%2Flanding.example%2Fa%3Fb%3Dc"}, {URL: "https://landing.example/a?b=c", Via: "https://click.example/t?u=https%3A%2F%2Flanding.example%2Fa%3Fb%3Dc"}}},
		{"any parameter name carrying a URL", "https://r.example/?zz=http://landing.example/",
			[]URL{{URL: "https://r.example/?zz=http://landing.example/"}, {URL: "http://landing.example/", Via: "https://r.example/?zz=http://landing.example/"}}},
		{"redirect parameter without a scheme", "https://r.example/go?redirect=//landing.example/x",
			[]URL{{URL: "https://r.example/go?redirect=//landing.example/x"}, {URL: "https://landing.example/x", Via: "https://r.example/go?redirect=//landing.example/x"}}},
		{"redirect parameter in base64", "https://r.example/go?url=aHR0cHM6Ly9sYW5kaW5nLmV4YW1wbGUvYg==",
			[]URL{{URL: "https://r.example/go?url=aHR0cHM6Ly9sYW5kaW5nLmV4YW1wbGUvYg=="}, {URL: "https://landing.example/b", Via: "https://r.example/go?url=aHR0cHM6Ly9sYW5kaW5nLmV4YW1wbGUvYg=="}}},
		{"fragment", "https://r.example/#https://landing.example/f",
			[]URL{{URL: "https://r.example/#https://landing.example/f"}, {URL: "https://landing.example/f", Via: "https://r.example/#https://landing.example/f"}}},
		{"fragment parameters", "https://r.example/#/go?next=https://landing.example/g",
			[]URL{{URL: "https://r.example/#/go?next=https://landing.example/g"}, {URL: "https://landing.example/g", Via: "https://r.example/#/go?next=https://landing.example/g"}}},
		{"path", "https://r.example/r/https://landing.example/p",
			[]URL{{URL: "https://r.example/r/https://landing.example/p"}, {URL: "https://landing.example/p", Via: "https://r.example/r/https://landing.example/p"}}},
		{"two levels", "https://a.example/?u=" + "https%3A%2F%2Fb.example%2F%3Furl%3Dhttps%253A%252F%252Fc.example%252F",
			[]URL{{URL: "https://a.example/?u=https%3A%2F%2Fb.example%2F%3Furl%3Dhttps%253A%252F%252Fc.example%252F"},
				{URL: "https://b.example/?url=https%3A%2F%2Fc.example%2F", Via: "https://a.example/?u=https%3A%2F%2Fb.example%2F%3Furl%3Dhttps%253A%252F%252Fc.example%252F"},
				{URL: "https://c.example/", Via: "https://b.example/?url=https%3A%2F%2Fc.example%2F"}}},
		{"safe link wrapping a redirect", "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fr.example%2F%3Fu%3Dhttps%253A%252F%252Flanding.example%252F",
			[]URL{{URL: "https://r.example/?u=https%3A%2F%2Flanding.example%2F", Via: "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fr.example%2F%3Fu%3Dhttps%253A%252F%252Flanding.example%252F"},
				{URL: "https://landing.example/", Via: "https://r.example/?u=https%3A%2F%2Flanding.example%2F"}}},
		{"a search query is no URL", "https://search.example/?q=cheap+watches", []URL{{URL: "https://search.example/?q=cheap+watches"}}},
		{"an address parameter is no URL", "https://c0ntoso-login.example/owa?u=alice%40contoso.com", []URL{{URL: "https://c0ntoso-login.example/owa?u=alice%40contoso.com"}}},
		{"undecodable url defense is kept, its path read as a redirect", "https://urldefense.com/v3/__https://x.example/**!__;!!a$",
			[]URL{{URL: "https://urldefense.com/v3/__https://x.example/**!__;!!a$"}, {URL: "https://x.example/**!__;!!a$", Via: "https://urldefense.com/v3/__https://x.example/**!__;!!a$"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := expandURL(URL{URL: tt.in})
			if len(got) != len(tt.want) {
				t.Fatalf("expandURL(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			for i := range got {
				if got[i].URL != tt.want[i].URL || got[i].Via != tt.want[i].Via {
					t.Errorf("expandURL(%q)[%d] = %q via %q, want %q via %q", tt.in, i, got[i].URL, got[i].Via, tt.want[i].URL, tt.want[i].Via)
				}
			}
		})
	}
}

func TestExpandURLIsBounded(t *testing.T) {
	t.Parallel()
	u := "https://landing.example/"
	for i := 0; i < 20; i++ {
		u = "https://r" + strings.Repeat("x", i) + ".example/?u=" + strings.NewReplacer("%", "%25", ":", "%3A", "/", "%2F", "?", "%3F", "=", "%3D", "&", "%26").Replace(u)
	}
	if got := expandURL(URL{URL: u}); len(got) != maxUnwrap+1 {
		t.Errorf("expandURL followed %d levels, want %d", len(got), maxUnwrap+1)
	}
}

func TestGatewayTextMismatchIsAgainstTheTarget(t *testing.T) {
	t.Parallel()
	safe := "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2F&data=1"
	got := expandURL(URL{URL: safe, Text: "www.contoso.com", Mismatch: true})
	if len(got) != 1 || got[0].URL != "https://evil.example/" || got[0].Text != "www.contoso.com" || !got[0].Mismatch {
		t.Errorf("got %+v", got)
	}
	got = expandURL(URL{URL: safe, Text: "evil.example", Mismatch: true})
	if got[0].Mismatch {
		t.Errorf("text naming the target flagged as mismatch: %+v", got)
	}
}

func TestURLHostClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host               string
		ip, idn, shortener bool
	}{
		{"203.0.113.5", true, false, false},
		{"[2001:db8::1]", true, false, false},
		{"3405803781", true, false, false},
		{"0xcb.0x0.0x71.0x5", true, false, false},
		{"xn--pypal-4ve.com", false, true, false},
		{"раураl.com", false, true, false},
		{"bit.ly", false, false, true},
		{"www.tinyurl.com", false, false, true},
		{"example.com", false, false, false},
		{"1.example", false, false, false},
	}
	for _, tt := range tests {
		if got := isIPHost(tt.host); got != tt.ip {
			t.Errorf("isIPHost(%q) = %v", tt.host, got)
		}
		if got := isIDNHost(tt.host); got != tt.idn {
			t.Errorf("isIDNHost(%q) = %v", tt.host, got)
		}
		if got := isShortener(tt.host); got != tt.shortener {
			t.Errorf("isShortener(%q) = %v", tt.host, got)
		}
	}
	if ip, ok := hostIP("3405803781"); !ok || ip.String() != "203.0.113.5" {
		t.Errorf("hostIP(3405803781) = %v, %v", ip, ok)
	}
	if ip, ok := hostIP("0xcb.0x0.0x71.0x5"); !ok || ip.String() != "203.0.113.5" {
		t.Errorf("hostIP(hex) = %v, %v", ip, ok)
	}
	if _, ok := hostIP("999.1.1.1"); ok {
		t.Error("hostIP accepted 999.1.1.1")
	}
}

func TestTrimURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://x.example/a.":           "https://x.example/a",
		"https://x.example/login:":       "https://x.example/login",
		"https://x.example/a:b":          "https://x.example/a:b",
		"https://x.example/a)":           "https://x.example/a",
		"https://x.example/a_(b)":        "https://x.example/a_(b)",
		"http://host.example/[optout]":   "http://host.example/[optout]",
		"http://host.example/[optout]].": "http://host.example/[optout]",
		`https://x.example/"'>`:          "https://x.example/",
		"https://x.example:8443/":        "https://x.example:8443/",
		"https://x.example/?q=a&b=c!?":   "https://x.example/?q=a&b=c",
		"https://x.example/{id}":         "https://x.example/{id}",
		"https://x.example/a}":           "https://x.example/a",
		"":                               "",
	}
	for in, want := range tests {
		if got := trimURL(in); got != want {
			t.Errorf("trimURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindURLs(t *testing.T) {
	t.Parallel()
	text := "Go to https://x.example/login: then\nVisithttps://y.example/a.\n" +
		"(see http://host.example/[optout]) and ftp://files.example/f :// alone\nhttps://z.example/a:b:c?d=e"
	var got []string
	for _, loc := range newExtractor().findURLs(text, 10) {
		got = append(got, trimURL(text[loc[0]:loc[1]]))
	}
	want := []string{"https://x.example/login", "https://y.example/a", "http://host.example/[optout]", "ftp://files.example/f", "https://z.example/a:b:c?d=e"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findURLs = %q, want %q", got, want)
	}
	if n := len(newExtractor().findURLs(strings.Repeat("http://a.example ", 100), 5)); n != 5 {
		t.Errorf("findURLs ignored its limit: %d", n)
	}
}

func TestLinkMismatchNeedsAHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		href, text string
		want       bool
	}{
		{"https://evil.example/x", "www.contoso.com", true},
		{"https://evil.example/x", "https://www.contoso.com/login", true},
		{"https://evil.example/x", "www.contoso.com.", true},
		{"https://news.contoso.com/x", "www.contoso.com", false},
		{"https://evil.example/x", "hier.", false},
		{"https://evil.example/x", "Unsubscribe.", false},
		{"https://evil.example/x", "invoice.pdf", false},
		{"https://evil.example/x", "Click here", false},
		{"https://evil.example/x", "", false},
	}
	for _, tt := range tests {
		if got := linkMismatch(tt.href, tt.text); got != tt.want {
			t.Errorf("linkMismatch(%q, %q) = %v, want %v", tt.href, tt.text, got, tt.want)
		}
	}
}
