package email

import (
	"encoding/base64"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// analyzeRaw analyses a message written with \n line ends, with contoso.com
// as the internal domain.
func analyzeRaw(t *testing.T, raw string) *Report {
	t.Helper()
	rep, err := Analyze([]byte(strings.ReplaceAll(raw, "\n", "\r\n")), Metadata{}, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestSenderRecoveredEndToEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, address, domain string
		spoof                 bool
	}{
		{`Account team ,_<no-reply@access-security.example>`, "no-reply@access-security.example", "access-security.example", false},
		{`Prime Video, jehd <service@offers.example>`, "service@offers.example", "offers.example", false},
		{`TotalAV (<info@av-offers.example>)`, "info@av-offers.example", "av-offers.example", false},
		{`"Streaming@Netflix.example", <service@friends.example>`, "service@friends.example", "friends.example", true},
		{`"delivery@FedEx.example" <info@shop-canda.example>`, "info@shop-canda.example", "shop-canda.example", true},
		{`"support@friends.example" <support@friends.example>`, "support@friends.example", "friends.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			t.Parallel()
			rep := analyzeRaw(t, "From: "+tt.from+"\nTo: victim@contoso.com\nSubject: Offer\n\nHello\n")
			s := rep.Suspect
			if s.From.Address != tt.address {
				t.Errorf("From.Address = %q, want %q", s.From.Address, tt.address)
			}
			if !slices.Contains(s.Observables.Domains, tt.domain) {
				t.Errorf("domains %q lack the sender's %q", s.Observables.Domains, tt.domain)
			}
			if s.Indicators.DisplayNameSpoof != tt.spoof || s.Signals.DisplayNameSpoof != tt.spoof {
				t.Errorf("display-name spoof = %v/%v, want %v", s.Indicators.DisplayNameSpoof, s.Signals.DisplayNameSpoof, tt.spoof)
			}
		})
	}
}

func TestInlineForwardNeedsAForward(t *testing.T) {
	t.Parallel()
	block := "From: Quoted Person <quoted@partner.example>\nSent: Tuesday, March 10, 2026 4:12 PM\nTo: Someone <someone@partner.example>\nSubject: Invoice\n\nquoted text\n"
	tests := []struct {
		name, from, subject, body string
		forward                   bool
	}{
		{"forward prefix, block below a note", "Alice <alice@contoso.com>", "FW: Invoice", "please check\n\n________________________________\n" + block, true},
		{"localised forward prefix", "Alice <alice@contoso.com>", "WG: Invoice", "bitte prüfen\n\n" + block, true},
		{"reply then forward prefix", "Alice <alice@contoso.com>", "RE: Fwd: Invoice", "see below\n\n" + block, true},
		{"report subject", "Alice <alice@contoso.com>", "Phishing: Invoice", "reported\n\n" + block, true},
		{"no prefix, block at the top", "Alice <alice@contoso.com>", "Invoice", "\n-----Original Message-----\n" + block, true},
		{"stolen reply thread below new text", "Alice <alice@contoso.com>", "RE: Invoice", "Please pay the attached today.\n\n" + block, false},
		{"stolen thread without a prefix", "Alice <alice@contoso.com>", "Invoice", "Pay now: https://pay.example/\n\n________________________________\n" + block, false},
		{"forward prefix from outside the organisation", "Spammer <boss@outside.example>", "FW: Invoice", "fyi\n\n" + block, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := analyzeRaw(t, "From: "+tt.from+"\nSubject: "+tt.subject+
				"\nAuthentication-Results: spf=fail smtp.mailfrom=outside.example; compauth=fail reason=001\n\n"+tt.body)
			isForward := rep.Suspect.Source == "inline-forward"
			if isForward != tt.forward {
				t.Fatalf("suspect source %q from %q, want forward=%v", rep.Suspect.Source, rep.Suspect.From.Address, tt.forward)
			}
			if !tt.forward && (rep.Suspect.Signals.CompAuth != "fail" || !rep.Reporter.IsZero()) {
				t.Errorf("the message itself is the suspect: compauth %q, reporter %+v", rep.Suspect.Signals.CompAuth, rep.Reporter)
			}
			if tt.forward && rep.Suspect.From.Address != "quoted@partner.example" {
				t.Errorf("forwarded suspect = %q", rep.Suspect.From.Address)
			}
		})
	}
}

func TestBlankTextPartDoesNotHideHTML(t *testing.T) {
	t.Parallel()
	rep := analyzeRaw(t, `From: a@fabrikam.example
Subject: blank
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

   
	
--b
Content-Type: text/html; charset=utf-8

<p>Renew your mailbox <a href="https://renew.example/x">here</a></p>
--b--
`)
	if !strings.Contains(rep.Suspect.Text, "Renew your mailbox") {
		t.Errorf("text = %q, want the HTML rendered", rep.Suspect.Text)
	}
}

func TestEmptyAttachmentIsListed(t *testing.T) {
	t.Parallel()
	rep := analyzeRaw(t, `From: a@fabrikam.example
Subject: empty file
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain

see attached
--b
Content-Type: application/pdf; name="statement.pdf"
Content-Disposition: attachment; filename="statement.pdf"
Content-Transfer-Encoding: base64

--b--
`)
	atts := rep.Suspect.Attachments
	if len(atts) != 1 {
		t.Fatalf("attachments = %+v", atts)
	}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if atts[0].SHA256 != emptySHA256 || atts[0].Size != 0 || atts[0].Kind != KindEmpty {
		t.Errorf("empty attachment = %+v", atts[0])
	}
	if slices.Contains(rep.Suspect.Observables.Hashes, emptySHA256) {
		t.Error("the hash of nothing is listed as an indicator")
	}
	if rep.Suspect.Signals.EmptyFiles != 1 {
		t.Errorf("EmptyFiles = %d", rep.Suspect.Signals.EmptyFiles)
	}
}

func TestAbsentVerdictsAreEmpty(t *testing.T) {
	t.Parallel()
	s := analyzeRaw(t, "From: a@fabrikam.example\nSubject: x\n\nbody\n").Suspect.Signals
	if s.SPF != "" || s.DKIM != "" || s.DMARC != "" || s.CompAuth != "" || s.CompAuthReason != "" || s.SCL != -1 || s.BCL != -1 || s.AuthFailed {
		t.Errorf("absent verdicts = %+v", s)
	}
}

// part is one MIME part of a test message.
func part(ct, disposition, cid string, data []byte) string {
	h := "Content-Type: " + ct + "\nContent-Transfer-Encoding: base64\n"
	if disposition != "" {
		h += "Content-Disposition: " + disposition + "\n"
	}
	if cid != "" {
		h += "Content-ID: <" + cid + ">\n"
	}
	return h + "\n" + base64.StdEncoding.EncodeToString(data) + "\n"
}

func TestSignals(t *testing.T) {
	t.Parallel()
	png := []byte("\x89PNG\r\n\x1a\nrest")
	html := `<p>Dear user</p>
<a href="https://bit.ly/3xYz">Track parcel</a>
<a href="https://203.0.113.7/login">www.contoso.com</a>
<a href="https://xn--cntoso-wqf.com/">account</a>
<a href="https://r.example/go?url=https%3A%2F%2Flanding.example%2F">open</a>
<img src="cid:logo"><img src="https://t.example/o.gif" width="1" height="1">`
	parts := []string{
		part("text/html; charset=utf-8", "", "", []byte(html)),
		part("image/png", "inline", "logo", png),
		part("image/png", `attachment; filename="scan.png"`, "", png),
		part("application/octet-stream", `attachment; filename="invoice.pdf.exe"`, "", []byte("MZ\x90\x00")),
		part("application/octet-stream", `attachment; filename="run.js"`, "", []byte("var x")),
		part("text/html", `attachment; filename="login.html"`, "", []byte("<html><form>")),
		part("application/zip", `attachment; filename="docs.zip"`, "", []byte("PK\x05\x06"+strings.Repeat("\x00", 18))),
		part("text/calendar", `attachment; filename="invite.ics"`, "", []byte("BEGIN:VCALENDAR\r\n")),
		part("application/pdf", `attachment; filename="empty.pdf"`, "", nil),
	}
	raw := `From: "Contoso IT" <it@helpdesk.example>
Reply-To: it@freemail.example
Subject: Parcel
Authentication-Results: spf=softfail smtp.mailfrom=helpdesk.example; dkim=none; dmarc=fail header.from=helpdesk.example; compauth=fail reason=001
X-Forefront-Antispam-Report: CIP:203.0.113.9;SCL:6;CAT:PHSH;
X-Microsoft-Antispam: BCL:3;
Content-Type: multipart/mixed; boundary="b"

--b
` + strings.Join(parts, "--b\n") + "--b--\n"
	s := analyzeRaw(t, raw).Suspect.Signals
	want := Signals{
		SCL: 6, BCL: 3, PCL: -1, Category: "PHSH", CompAuth: "fail", CompAuthReason: "001",
		SPF: "softfail", DKIM: "none", DMARC: "fail", AuthFailed: true,
		ExternalSender: true, ReplyToOtherDomain: true, DisplayNameSpoof: true,
		Lookalike: "xn--cntoso-wqf.com", LookalikeOf: "contoso.com",
		URLs: 5, LinkTextMismatch: 1, RawIPURLs: 1, PunycodeURLs: 1, ShortenerURLs: 1, NestedURLs: 1, TrackingPixels: 1,
		Attachments: 7, RiskyAttachments: 3, Executables: 1, Scripts: 1, HTMLAttachments: 1, Archives: 1,
		Images: 1, Calendars: 1, EmptyFiles: 1, InlineImages: 1,
	}
	if s != want {
		t.Errorf("signals\n got %+v\nwant %+v", s, want)
	}
}

func TestObservablesUnwrapAndImages(t *testing.T) {
	t.Parallel()
	rep := analyzeRaw(t, `From: a@fabrikam.example
Subject: links
Content-Type: text/html; charset=utf-8

<a href="https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fr.example%2Fr%3Fredirect%3Dhttps%253A%252F%252Flanding.example%252Fp&amp;data=1">go</a>
<a href="http://host.example/[optout]">unsubscribe</a>
<img src="https://cdn.images.example/banner.jpg" width="600">
<img src="https://open.tracker.example/p.gif" style="display:none">
`)
	o := rep.Suspect.Observables
	var urls []string
	for _, u := range o.URLs {
		urls = append(urls, u.URL+" <- "+u.Via)
	}
	want := []string{
		"https://r.example/r?redirect=https%3A%2F%2Flanding.example%2Fp <- https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fr.example%2Fr%3Fredirect%3Dhttps%253A%252F%252Flanding.example%252Fp&data=1",
		"https://landing.example/p <- https://r.example/r?redirect=https%3A%2F%2Flanding.example%2Fp",
		"http://host.example/[optout] <- ",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("urls\n%s\nwant\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range []string{"landing.example", "r.example", "host.example"} {
		if !slices.Contains(o.Domains, d) {
			t.Errorf("domains %q lack %q", o.Domains, d)
		}
	}
	if strings.Join(o.ImageHosts, " ") != "cdn.images.example open.tracker.example" || strings.Join(o.TrackingPixelHosts, " ") != "open.tracker.example" {
		t.Errorf("image hosts %q, pixel hosts %q", o.ImageHosts, o.TrackingPixelHosts)
	}
}

func TestConnectingIP(t *testing.T) {
	t.Parallel()
	a := &analyzer{opts: Options{InternalDomains: []string{"contoso.com"}}.withDefaults()}
	hop := func(from, ip string) Hop { return Hop{From: from, IP: ip} }
	tests := []struct {
		name string
		cip  string
		hops []Hop
		want string
	}{
		{"Exchange Online's CIP", "203.0.113.9", []Hop{hop("x", "2603:10b6:408:e7::9"), hop("mail.evil.example", "203.0.113.9")}, "203.0.113.9"},
		{"CIP of a Microsoft relay: walk the hops", "40.107.22.5", []Hop{
			hop("AM0PR.prod.outlook.com", "2603:10a6:208:1::5"), hop("mail.sender.example", "40.107.22.5"), hop("smtp.sender.example", "198.51.100.20")}, "198.51.100.20"},
		{"no CIP: first public hop outside Microsoft", "", []Hop{
			hop("BN8PR.namprd11.prod.outlook.com", "2603:10b6:408:e7::9"), hop("mx.internal", "10.1.2.3"), hop("mail.evil.example", "198.51.100.7"), hop("forged.example", "192.0.2.1")}, "198.51.100.7"},
		{"the organisation's relay is skipped", "198.51.100.50", []Hop{
			hop("gw.contoso.com", "198.51.100.50"), hop("mail.evil.example", "203.0.113.77")}, "203.0.113.77"},
		{"only private and Microsoft hops", "", []Hop{hop("a", "10.0.0.1"), hop("b", "52.100.1.1")}, ""},
		{"nothing", "", nil, ""},
	}
	for _, tt := range tests {
		m := &Message{connectingIP: tt.cip, Received: tt.hops}
		if got := a.connectingIP(m); got != tt.want {
			t.Errorf("%s: connectingIP = %q, want %q", tt.name, got, tt.want)
		}
	}
	if !isMicrosoftIP(netip.MustParseAddr("2a01:111:f400::1")) || isMicrosoftIP(netip.MustParseAddr("203.0.113.1")) {
		t.Error("isMicrosoftIP misreads its ranges")
	}
}

func TestObservableIPsAreTheConnectingIPAndLinks(t *testing.T) {
	t.Parallel()
	rep := analyzeRaw(t, `Received: from BN8PR.namprd11.prod.outlook.com (2603:10b6:408:e7::9) by BN8PR2.namprd11.prod.outlook.com with HTTPS; Mon, 9 Mar 2026 10:20:31 +0000
Received: from mail.evil.example (203.0.113.9) by BN8NAM12FT045.mail.protection.outlook.com (10.13.182.123) with Microsoft SMTP Server; Mon, 9 Mar 2026 10:20:30 +0000
Received: from [10.0.0.5] (client.example [198.51.100.201]) by mail.evil.example; Mon, 9 Mar 2026 10:20:29 +0000
From: a@evil.example
Subject: ips

see http://192.0.2.44/x
`)
	s := rep.Suspect
	if s.ConnectingIP != "203.0.113.9" || strings.Join(s.Observables.IPs, " ") != "192.0.2.44 203.0.113.9" {
		t.Errorf("connecting IP %q, IPs %q", s.ConnectingIP, s.Observables.IPs)
	}
}
