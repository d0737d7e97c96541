package campaign

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"mime/quotedprintable"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mail2archer/mail2archer/internal/email"
)

// The phish of these tests: a mailbox-quota lure from outside, sent once to
// several people of Contoso, with a logo shown in the body, a tracking
// pixel, two links and a PDF.
const (
	phishSubject = "Action required: mailbox quota exceeded"
	phishID      = "<Q-9921.1741514525@quota-alerts.example>"
	upgradeURL   = "https://quota-alerts.example/owa/upgrade?ref=7731"
	optoutURL    = "https://quota-alerts.example/optout/"
)

var (
	pdfReport = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n% mailbox quota report\n%%EOF\n")
	logoPNG   = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR quota notice logo")
	sigPNG    = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR Contoso signature logo")
)

// phish describes one variant of the email.
type phish struct {
	fromName, fromAddr string
	subject            string
	messageID          string // "" for no Message-ID header
	links              []string
	pdf                []byte
	pixel              string // the tracking pixel's per-recipient id
}

func basePhish() phish {
	return phish{
		fromName: "Microsoft 365 Admin", fromAddr: "No-Reply@Quota-Alerts.example",
		subject: phishSubject, messageID: phishID,
		links: []string{upgradeURL, optoutURL}, pdf: pdfReport, pixel: "a1",
	}
}

// noWrap leaves links as the sender wrote them: the copy the phishing
// mailbox receives, which Safe Links policies usually leave out.
func noWrap(u string) string { return u }

// safeLinks rewrites links the way Microsoft Defender Safe Links does in a
// recipient's copy: the data and sdata parameters differ per recipient.
func safeLinks(recipient string) func(string) string {
	return func(u string) string {
		sig := sha256.Sum256([]byte(recipient + u))
		return "https://nam12.safelinks.protection.outlook.com/?url=" + url.QueryEscape(u) +
			"&data=05%7C02%7C" + url.QueryEscape(recipient) +
			"%7C3c1f0e5d9a8b4c7d08de5f2a1b3c4d5e%7C72f988bf86f141af91ab2d7cd011db47%7C1%7C0%7C638771113345678901%7CUnknown" +
			"&sdata=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig[:12])) + "&reserved=0"
	}
}

var linkWords = []string{"Upgrade storage now", "Unsubscribe", "Details", "More"}

// phishText and phishHTML are the sender's bodies.
func phishText(p phish, wrap func(string) string) string {
	var b strings.Builder
	b.WriteString("Your mailbox is 99% full. Messages sent to you will be rejected after 24 hours.\n\n")
	for i, l := range p.links {
		fmt.Fprintf(&b, "%s: %s\n\n", linkWords[i], wrap(l))
	}
	b.WriteString("Microsoft 365 Message Center\n")
	return b.String()
}

func phishHTML(p phish, wrap func(string) string, logoCID string) string {
	var b strings.Builder
	b.WriteString("<html><head><title>Microsoft 365</title></head><body style=\"font-family:Segoe UI\">\n")
	fmt.Fprintf(&b, "<p><img src=\"cid:%s\" alt=\"Microsoft 365\" width=\"120\" height=\"40\"></p>\n", logoCID)
	b.WriteString("<p>Your mailbox is <b>99% full</b>. Messages sent to you will be rejected after 24 hours.</p>\n")
	for i, l := range p.links {
		fmt.Fprintf(&b, "<p><a href=\"%s\">%s</a></p>\n", html.EscapeString(wrap(l)), linkWords[i])
	}
	fmt.Fprintf(&b, "<p>Microsoft 365 Message Center</p>\n<img src=\"https://trk.quota-alerts.example/o.gif?r=%s\" width=\"1\" height=\"1\">\n</body></html>\n", p.pixel)
	return b.String()
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func b64(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	return b.String() + enc + "\n"
}

// crlf writes a message with the CRLF line ends of the wire.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// delivered is the copy of p in the mailbox of to, as Exchange Online
// delivers it.
func delivered(p phish, to string, wrap func(string) string) []byte {
	var b strings.Builder
	b.WriteString(`Received: from BN8NAM12FT045.eop-nam12.prod.protection.outlook.com
 (2603:10b6:408:e7::9) by DM6PR11MB4321.namprd11.prod.outlook.com
 (2603:10b6:5:2a3::10) with Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7000.1; Mon, 9 Mar 2026
 10:02:14 +0000
Received: from quota-alerts.example (203.0.113.9) by
 BN8NAM12FT045.mail.protection.outlook.com (10.13.182.100) with Microsoft SMTP
 Server id 15.20.7000.1 via Frontend Transport; Mon, 9 Mar 2026 10:02:13 +0000
Authentication-Results: spf=fail (sender IP is 203.0.113.9)
 smtp.mailfrom=quota-alerts.example; dkim=none (message not signed)
 header.d=none;dmarc=fail action=quarantine
 header.from=quota-alerts.example;compauth=fail reason=000
X-Forefront-Antispam-Report: CIP:203.0.113.9;CTRY:NL;LANG:en;SCL:5;SRV:;IPV:NLI;SFV:SPM;H:quota-alerts.example;PTR:InfoDomainNonexistent;CAT:PHSH;SFS:(13230031);DIR:INB;
`)
	fmt.Fprintf(&b, "From: \"%s\" <%s>\nTo: %s\nSubject: %s\nDate: Mon, 9 Mar 2026 10:02:05 +0000\n", p.fromName, p.fromAddr, to, p.subject)
	if p.messageID != "" {
		fmt.Fprintf(&b, "Message-ID: %s\n", p.messageID)
	}
	fmt.Fprintf(&b, `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_mixed_q_"

--_mixed_q_
Content-Type: multipart/related; boundary="_rel_q_"; type="multipart/alternative"

--_rel_q_
Content-Type: multipart/alternative; boundary="_alt_q_"

--_alt_q_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

%s
--_alt_q_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

%s
--_alt_q_--

--_rel_q_
Content-Type: image/png; name="logo.png"
Content-ID: <logo001@quota-alerts.example>
Content-Disposition: inline; filename="logo.png"
Content-Transfer-Encoding: base64

%s
--_rel_q_--
`, qp(phishText(p, wrap)), qp(phishHTML(p, wrap, "logo001@quota-alerts.example")), b64(logoPNG))
	if p.pdf != nil {
		fmt.Fprintf(&b, `
--_mixed_q_
Content-Type: application/pdf; name="Quota-Report.pdf"
Content-Disposition: attachment; filename="Quota-Report.pdf"
Content-Transfer-Encoding: base64

%s`, b64(p.pdf))
	}
	b.WriteString("\n--_mixed_q_--\n")
	return crlf(b.String())
}

// reportButton is the report Outlook's Report button sends to the phishing
// mailbox: the reporter's copy attached as message/rfc822.
func reportButton(reporter string, original []byte) []byte {
	head := fmt.Sprintf(`Received: from DM6PR11MB4321.namprd11.prod.outlook.com (2603:10b6:5:2a3::10) by
 BN8PR11MB3609.namprd11.prod.outlook.com with HTTPS; Mon, 9 Mar 2026 10:20:31
 +0000
From: %s
To: Phishing Reports <phish@contoso.com>
Subject: Phishing: %s
Date: Mon, 9 Mar 2026 10:20:29 +0000
Message-ID: <DM6PR11MB4321AA01@DM6PR11MB4321.namprd11.prod.outlook.com>
X-MS-Has-Attach: yes
X-MS-Exchange-Organization-AuthAs: Internal
X-MS-Exchange-Organization-SCL: -1
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_rep_001_"

--_rep_001_
Content-Type: text/plain; charset="us-ascii"

This message was reported as phishing.

--_rep_001_
Content-Type: message/rfc822
Content-Disposition: attachment; filename="Action required mailbox quota exceeded.eml"

`, reporter, phishSubject)
	return append(append(crlf(head), original...), crlf("\n--_rep_001_--\n")...)
}

// forwardStyle is how an Outlook version writes the forwarded header block.
type forwardStyle struct {
	name       string
	textHeader string // the block in the plain-text body
	htmlHeader string // the block in the HTML body
}

var forwardStyles = []forwardStyle{
	{
		name: "Outlook From/Sent/To/Subject block",
		textHeader: "________________________________\nFrom: Microsoft 365 Admin <No-Reply@Quota-Alerts.example>\n" +
			"Sent: Monday, March 9, 2026 10:02 AM\nTo: Bob Jones <bob.jones@contoso.com>\nSubject: " + phishSubject + "\n",
		htmlHeader: `<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">` +
			`<p class="MsoNormal"><b>From:</b> Microsoft 365 Admin &lt;No-Reply@Quota-Alerts.example&gt; <br>` +
			`<b>Sent:</b> Monday, March 9, 2026 10:02 AM<br><b>To:</b> Bob Jones &lt;bob.jones@contoso.com&gt;<br>` +
			`<b>Subject:</b> ` + phishSubject + `</p></div>`,
	},
	{
		name: "classic Outlook -----Original Message-----",
		textHeader: "-----Original Message-----\nFrom: Microsoft 365 Admin [mailto:No-Reply@Quota-Alerts.example]\n" +
			"Sent: Monday, March 9, 2026 10:02 AM\nTo: Bob Jones\nSubject: " + phishSubject + "\n",
		htmlHeader: `<p>-----Original Message-----<br>From: Microsoft 365 Admin [mailto:No-Reply@Quota-Alerts.example]<br>` +
			`Sent: Monday, March 9, 2026 10:02 AM<br>To: Bob Jones<br>Subject: ` + phishSubject + `</p>`,
	},
}

// inlineForward is Bob forwarding his copy (Safe Links rewritten) to the
// phishing mailbox from Outlook: his comment and signature (a website, a
// booking link, a signature picture) above the forwarded block, the
// phish's logo renamed to image002.png and its PDF carried along.
func inlineForward(p phish, style forwardStyle) []byte {
	wrap := safeLinks("bob.jones@contoso.com")
	var text strings.Builder
	text.WriteString("Looks fake to me, our quota notices never come from outside. Can you check?\n\n" +
		"Bob Jones | Finance | Contoso<https://www.contoso.com/>\n" +
		"Book time with me<https://outlook.office.com/bookwithme/user/4f1c2e7a@contoso.com?anonymous&ep=signature>\n" +
		"[Contoso]\n\n")
	text.WriteString(style.textHeader + "\n[Microsoft 365]\n")
	text.WriteString("Your mailbox is 99% full. Messages sent to you will be rejected after 24 hours.\n\n")
	for i, l := range p.links {
		fmt.Fprintf(&text, "%s<%s>\n\n", linkWords[i], wrap(l))
	}
	text.WriteString("Microsoft 365 Message Center\n")

	body := phishHTML(p, wrap, "image002.png@01DC8F5B.2A3C4D50")
	body = body[strings.Index(body, "<body"):]
	body = body[strings.Index(body, ">")+1 : strings.Index(body, "</body>")]
	htmlBody := `<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>` +
		`<body lang="EN-US"><div class="WordSection1">` +
		`<p class="MsoNormal">Looks fake to me, our quota notices never come from outside. Can you check?</p>` +
		`<p class="MsoNormal">&nbsp;</p>` +
		`<p class="MsoNormal"><b>Bob Jones</b> | Finance | <a href="https://www.contoso.com/">Contoso</a></p>` +
		`<p class="MsoNormal"><a href="https://outlook.office.com/bookwithme/user/4f1c2e7a@contoso.com?anonymous&amp;ep=signature">Book time with me</a></p>` +
		`<p class="MsoNormal"><img width="96" height="32" src="cid:image001.png@01DC8F5B.2A3C4D50" alt="Contoso"></p>` +
		style.htmlHeader + "\n" + body + "</div></body></html>\n"

	return crlf(fmt.Sprintf(`Received: from DM6PR11MB4321.namprd11.prod.outlook.com (2603:10b6:5:2a3::10) by
 BN8PR11MB3609.namprd11.prod.outlook.com with HTTPS; Mon, 9 Mar 2026 10:31:40
 +0000
From: Bob Jones <bob.jones@contoso.com>
To: Phishing Reports <phish@contoso.com>
Subject: FW: %s
Date: Mon, 9 Mar 2026 10:31:38 +0000
Message-ID: <DM6PR11MB4321EE07@DM6PR11MB4321.namprd11.prod.outlook.com>
X-MS-Has-Attach: yes
X-MS-Exchange-Organization-AuthAs: Internal
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_004_fwd_"

--_004_fwd_
Content-Type: multipart/related; boundary="_003_fwd_"; type="multipart/alternative"

--_003_fwd_
Content-Type: multipart/alternative; boundary="_000_fwd_"

--_000_fwd_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

%s
--_000_fwd_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

%s
--_000_fwd_--

--_003_fwd_
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"
Content-ID: <image001.png@01DC8F5B.2A3C4D50>
Content-Transfer-Encoding: base64

%s
--_003_fwd_
Content-Type: image/png; name="image002.png"
Content-Description: image002.png
Content-Disposition: inline; filename="image002.png"
Content-ID: <image002.png@01DC8F5B.2A3C4D50>
Content-Transfer-Encoding: base64

%s
--_003_fwd_--

--_004_fwd_
Content-Type: application/pdf; name="Quota-Report.pdf"
Content-Description: Quota-Report.pdf
Content-Disposition: attachment; filename="Quota-Report.pdf"
Content-Transfer-Encoding: base64

%s
--_004_fwd_--
`, p.subject, qp(text.String()), qp(htmlBody), b64(sigPNG), b64(logoPNG), b64(p.pdf)))
}

// analyze runs the service's analysis on a raw message in the phishing
// mailbox.
func analyze(t *testing.T, raw []byte) *email.Report {
	t.Helper()
	opts := email.DefaultOptions()
	opts.InternalDomains = []string{"contoso.com"}
	rep, err := email.Analyze(raw, email.Metadata{Mailbox: "phish@contoso.com"}, opts)
	if err != nil {
		t.Fatalf("analyze: %v", err)
	}
	return rep
}

var bothKinds = []string{KindMessageID, KindFingerprint}

// keyOf returns the key of one kind among keys, or "".
func keyOf(keys []string, prefix string) string {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return k
		}
	}
	return ""
}

// describe prints what a fingerprint is made of, for failure messages.
func describe(m *email.Message) string {
	f := fingerprintOf(m)
	return fmt.Sprintf("sender %q subject %q links %q attachments %q", f.sender, f.subject, f.links, f.attachments)
}

func hasLinkHost(m *email.Message, host string) bool {
	return slices.ContainsFunc(m.Observables.URLs, func(u email.URL) bool {
		p, err := url.Parse(u.URL)
		return err == nil && p.Hostname() == host
	})
}

func TestKeysSamePhishReportedThreeWays(t *testing.T) {
	t.Parallel()
	p := basePhish()
	attached := analyze(t, reportButton("Alice Smith <alice.smith@contoso.com>",
		delivered(p, "Alice Smith <alice.smith@contoso.com>", safeLinks("alice.smith@contoso.com"))))
	direct := analyze(t, delivered(p, "Phishing Reports <phish@contoso.com>", noWrap))

	if got := attached.Suspect.Source; got != "rfc822" {
		t.Fatalf("the Report button's original was read as %q, want rfc822", got)
	}
	if got := direct.Suspect.Source; got != "self" {
		t.Fatalf("the delivered phish was read as %q, want self", got)
	}
	if !hasLinkHost(attached.Suspect, "quota-alerts.example") || hasLinkHost(attached.Suspect, "nam12.safelinks.protection.outlook.com") {
		t.Fatalf("Safe Links were not unwrapped in the attached original: %v", attached.Suspect.Observables.URLs)
	}

	aKeys, cKeys := Keys(attached, bothKinds), Keys(direct, bothKinds)
	if len(aKeys) != 2 || len(cKeys) != 2 {
		t.Fatalf("keys: attached %q, delivered %q; want a Message-ID and a fingerprint key each", aKeys, cKeys)
	}
	if want := "mid:Q-9921.1741514525@quota-alerts.example"; aKeys[0] != want || cKeys[0] != want {
		t.Errorf("Message-ID keys: attached %q, delivered %q; want %q", aKeys[0], cKeys[0], want)
	}
	if aKeys[1] != cKeys[1] {
		t.Errorf("fingerprints differ:\nattached  %s\ndelivered %s", describe(attached.Suspect), describe(direct.Suspect))
	}

	for _, style := range forwardStyles {
		t.Run(style.name, func(t *testing.T) {
			t.Parallel()
			fwd := analyze(t, inlineForward(p, style))
			if got := fwd.Suspect.Source; got != "inline-forward" {
				t.Fatalf("the forward was read as %q, want inline-forward", got)
			}
			// What makes this case hard: the recovered original carries the
			// reporter's signature links and picture.
			if !hasLinkHost(fwd.Suspect, "www.contoso.com") || !hasLinkHost(fwd.Suspect, "outlook.office.com") {
				t.Fatalf("the forward's links lack the reporter's signature links: %v", fwd.Suspect.Observables.URLs)
			}
			if len(fwd.Suspect.Attachments) != 3 {
				t.Fatalf("the forward has %d attachments, want the signature picture, the logo and the PDF", len(fwd.Suspect.Attachments))
			}

			keys := Keys(fwd, bothKinds)
			if len(keys) != 1 || !strings.HasPrefix(keys[0], "fp:") {
				t.Fatalf("forward keys = %q, want the fingerprint only (an inline forward has no Message-ID)", keys)
			}
			if keys[0] != cKeys[1] {
				t.Errorf("fingerprints differ:\nforward   %s\ndelivered %s", describe(fwd.Suspect), describe(direct.Suspect))
			}
		})
	}
}

func TestKeysPersonalisedQueryStillGroups(t *testing.T) {
	t.Parallel()
	// The same lure sent as one message per recipient: each copy has its
	// own Message-ID, the recipient in the link's query and its own pixel.
	forAlice, forBob := basePhish(), basePhish()
	forAlice.messageID, forBob.messageID = "<a-77@quota-alerts.example>", "<b-78@quota-alerts.example>"
	forAlice.links = []string{upgradeURL + "&user=alice.smith%40contoso.com#top", optoutURL}
	forBob.links = []string{upgradeURL + "&user=bob.jones%40contoso.com", strings.TrimSuffix(optoutURL, "/")}
	forAlice.pixel, forBob.pixel = "alice", "bob"

	alice := Keys(analyze(t, reportButton("Alice Smith <alice.smith@contoso.com>", delivered(forAlice, "alice.smith@contoso.com", noWrap))), bothKinds)
	bob := Keys(analyze(t, delivered(forBob, "bob.jones@contoso.com", noWrap)), bothKinds)
	if len(alice) != 2 || len(bob) != 2 {
		t.Fatalf("keys: %q and %q, want two each", alice, bob)
	}
	if alice[0] == bob[0] {
		t.Errorf("different Message-IDs gave one key %q", alice[0])
	}
	if alice[1] != bob[1] {
		t.Errorf("copies differing only in query, fragment, trailing slash and pixel have fingerprints %q and %q", alice[1], bob[1])
	}
}

func TestKeysDoNotGroupOtherEmails(t *testing.T) {
	t.Parallel()
	base := Keys(analyze(t, delivered(basePhish(), "phish@contoso.com", noWrap)), bothKinds)
	if len(base) != 2 {
		t.Fatalf("base keys = %q", base)
	}
	tests := []struct {
		name   string
		change func(*phish)
		// wantMID and wantFP say whether the variant's key of that kind
		// equals the base's (true), differs (false); noMID: it has none.
		sameMID, sameFP, noMID bool
	}{
		{
			name: "same subject, another sender and other links",
			change: func(p *phish) {
				p.fromName, p.fromAddr = "IT Helpdesk", "helpdesk@mail-notices.example"
				p.messageID = "<77120.helpdesk@mail-notices.example>"
				p.links = []string{"https://mail-notices.example/quota/increase", "https://mail-notices.example/unsubscribe"}
			},
		},
		{
			name: "same sender and subject, another landing page",
			change: func(p *phish) {
				p.messageID = "<Q-9950.1741600925@quota-alerts.example>"
				p.links = []string{"https://quota-alerts.example/owa/upgrade-now?ref=7731", optoutURL}
			},
		},
		{
			name: "same sender, subject and links, another attachment",
			change: func(p *phish) {
				p.messageID = "<Q-9951.1741600926@quota-alerts.example>"
				p.pdf = []byte("%PDF-1.4\n% a different report\n%%EOF\n")
			},
		},
		{
			name: "same sender, subject and links, no attachment",
			change: func(p *phish) {
				p.messageID = "<Q-9952.1741600927@quota-alerts.example>"
				p.pdf = nil
			},
		},
		{
			name:   "same email without a Message-ID",
			change: func(p *phish) { p.messageID = "" },
			sameFP: true, noMID: true,
		},
		{
			name:   "same email with an empty Message-ID",
			change: func(p *phish) { p.messageID = "<>" },
			sameFP: true, noMID: true,
		},
		{
			name:    "same email, its subject re-sent as a reply",
			change:  func(p *phish) { p.subject = "RE:  " + strings.ToUpper(phishSubject) },
			sameMID: true, sameFP: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := basePhish()
			tt.change(&p)
			keys := Keys(analyze(t, delivered(p, "phish@contoso.com", noWrap)), bothKinds)
			mid, fp := keyOf(keys, "mid:"), keyOf(keys, "fp:")
			switch {
			case tt.noMID && mid != "":
				t.Errorf("Message-ID key %q, want none", mid)
			case !tt.noMID && mid == "":
				t.Errorf("no Message-ID key in %q", keys)
			case !tt.noMID && (mid == base[0]) != tt.sameMID:
				t.Errorf("Message-ID key %q, base %q: same = %v, want %v", mid, base[0], mid == base[0], tt.sameMID)
			}
			if fp == "" {
				t.Fatalf("no fingerprint in %q", keys)
			}
			if (fp == base[1]) != tt.sameFP {
				t.Errorf("fingerprint %q, base %q: same = %v, want %v", fp, base[1], fp == base[1], tt.sameFP)
			}
		})
	}
}

func TestKeysPerRecipientPathsDoNotGroup(t *testing.T) {
	t.Parallel()
	// The known limit: a campaign that puts the recipient in the link's
	// path gives each report its own fingerprint.
	forAlice, forBob := basePhish(), basePhish()
	forAlice.links = []string{"https://quota-alerts.example/u/alice-7f3a/upgrade"}
	forBob.links = []string{"https://quota-alerts.example/u/bob-91c2/upgrade"}
	alice := Keys(analyze(t, delivered(forAlice, "alice.smith@contoso.com", noWrap)), []string{KindFingerprint})
	bob := Keys(analyze(t, delivered(forBob, "bob.jones@contoso.com", noWrap)), []string{KindFingerprint})
	if len(alice) != 1 || len(bob) != 1 || alice[0] == bob[0] {
		t.Errorf("per-recipient paths: fingerprints %q and %q, want two different keys", alice, bob)
	}
}

func TestKeysKinds(t *testing.T) {
	t.Parallel()
	rep := analyze(t, delivered(basePhish(), "phish@contoso.com", noWrap))
	mid, fp := Keys(rep, []string{KindMessageID})[0], Keys(rep, []string{KindFingerprint})[0]
	noID := &email.Report{Suspect: &email.Message{From: email.Address{Address: "x@y.example"}}}
	empty := &email.Report{Suspect: &email.Message{Subject: "Hello"}}
	tests := []struct {
		name  string
		rep   *email.Report
		kinds []string
		want  []string
	}{
		{"both, Message-ID first", rep, []string{KindMessageID, KindFingerprint}, []string{mid, fp}},
		{"both, fingerprint first", rep, []string{KindFingerprint, KindMessageID}, []string{fp, mid}},
		{"a kind named twice", rep, []string{KindFingerprint, KindFingerprint, KindMessageID}, []string{fp, mid}},
		{"unknown kinds are ignored", rep, []string{"subject", KindMessageID, ""}, []string{mid}},
		{"no kinds", rep, nil, nil},
		{"nil report", nil, bothKinds, nil},
		{"nil suspect", &email.Report{}, bothKinds, nil},
		{"no Message-ID", noID, bothKinds, []string{Keys(noID, []string{KindFingerprint})[0]}},
		{"nothing to fingerprint", empty, bothKinds, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Keys(tt.rep, tt.kinds)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Keys = %q, want %q", got, tt.want)
			}
			for _, k := range got {
				if len(k) > MaxKeyLen {
					t.Errorf("key %q is %d bytes, over %d", k, len(k), MaxKeyLen)
				}
			}
		})
	}
	if !strings.HasPrefix(mid, "mid:") || !strings.HasPrefix(fp, "fp:") || len(fp) != len("fp:")+64 {
		t.Errorf("keys %q and %q lack their kind's prefix or the fingerprint is not a SHA-256", mid, fp)
	}
}

func TestValidKind(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]bool{
		KindMessageID: true, KindFingerprint: true, "": false, "Message_ID": false, "subject": false,
	} {
		if got := ValidKind(kind); got != want {
			t.Errorf("ValidKind(%q) = %v, want %v", kind, got, want)
		}
	}
}

func TestNormalizeMessageID(t *testing.T) {
	t.Parallel()
	long := "<" + strings.Repeat("x", 990) + "@quota.example>" // 1004 bytes inside the brackets
	tests := []struct {
		raw  string
		want string
		ok   bool
	}{
		{"<Q-9921.1741514525@quota-alerts.example>", "Q-9921.1741514525@quota-alerts.example", true},
		{"  <Q-9921@Quota-Alerts.Example>  ", "Q-9921@Quota-Alerts.Example", true},
		{"< spaced@x.example >", "spaced@x.example", true},
		{"bare@x.example", "bare@x.example", true},
		{"<first@x.example> <second@x.example>", "first@x.example", true},
		{"<a@x.example> (comment)", "a@x.example", true},
		{"<unclosed@x.example", "unclosed@x.example", true},
		{"", "", false},
		{"<>", "", false},
		{"  < >  ", "", false},
		{"<12345>", "", false},
		{"<@x.example>", "", false},
		{"<left@>", "", false},
		{long, "", false},
		{"<" + strings.Repeat("y", 985) + "@q.example>", strings.Repeat("y", 985) + "@q.example", true},
	}
	for _, tt := range tests {
		got, ok := normalizeMessageID(tt.raw)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeMessageID(%.40q) = %.40q, %v; want %.40q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func TestMessageIDKey(t *testing.T) {
	t.Parallel()
	longID := strings.Repeat("a", 96) + "@x.example"
	hashed := func(id string) string {
		sum := sha256.Sum256([]byte(id))
		return fmt.Sprintf("mid:sha256:%x", sum)
	}
	tests := []struct {
		name, raw, want string
	}{
		{"short id kept as it is", "<Q-9921@quota-alerts.example>", "mid:Q-9921@quota-alerts.example"},
		{"case is kept", "<Q-9921@QUOTA-ALERTS.example>", "mid:Q-9921@QUOTA-ALERTS.example"},
		{"96 bytes fill the key exactly", "<" + strings.Repeat("b", 86) + "@x.example>", "mid:" + strings.Repeat("b", 86) + "@x.example"},
		{"longer ids are hashed", "<" + longID + ">", hashed(longID)},
		{"ids that are not printable ASCII are hashed", "<rapport-é@x.example>", hashed("rapport-é@x.example")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := messageIDKey(tt.raw)
			if !ok || got != tt.want {
				t.Errorf("messageIDKey = %q, %v; want %q", got, ok, tt.want)
			}
			if len(got) > MaxKeyLen {
				t.Errorf("key is %d bytes", len(got))
			}
		})
	}
}

func TestNormalizeSubject(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Action required: mailbox quota exceeded", "action required: mailbox quota exceeded"},
		{"RE: FW: Action required", "action required"},
		{"Fwd: Re: Fw: invoice", "invoice"},
		{"AW: WG: Rechnung", "rechnung"},
		{"TR : RE : Facture impayée", "facture impayée"},
		{"RV: RE: Factura", "factura"},
		{"ENC: RES: Fatura", "fatura"},
		{"R: I: Fattura", "fattura"},
		{"SV: VS: Faktura", "faktura"},
		{"Antw: Doorst: factuur", "factuur"},
		{"VB: PD: FS: lasku", "lasku"},
		{"RE[2]: Re (3): status", "status"},
		{"FW： 請求書", "請求書"},
		{"  re:re:re:  spaced\t\tout   subject  ", "spaced out subject"},
		{"Reminder: your invoice", "reminder: your invoice"},
		{"Fwding: not a prefix", "fwding: not a prefix"},
		{"Invoice RE: 4471", "invoice re: 4471"},
		{"STRASSE", "strasse"},
		{"Straße", "strasse"},
		{"Cafe\u0301 menu", "café menu"},
		{"line\u00a0break", "line break"},
		{"RE:", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := normalizeSubject(tt.in); got != tt.want {
			t.Errorf("normalizeSubject(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"No-Reply@Quota-Alerts.example":     "no-reply@quota-alerts.example",
		" <Eve@Example.COM> ":               "eve@example.com",
		"eve@example.com.":                  "eve@example.com",
		"ÉLODIE@Exemple.example":            "élodie@exemple.example",
		"":                                  "",
		"already@lower.example":             "already@lower.example",
		"\tspaced@Example.example\r\n":      "spaced@example.example",
		"<>":                                "",
		"Mixed.Case+Tag@Sub.Domain.Example": "mixed.case+tag@sub.domain.example",
	} {
		if got := normalizeAddress(in); got != want {
			t.Errorf("normalizeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://quota-alerts.example/owa/upgrade?ref=7731", "quota-alerts.example/owa/upgrade", true},
		{"HTTPS://Quota-Alerts.Example/OWA/Upgrade/#top", "quota-alerts.example/OWA/Upgrade", true},
		{"http://quota-alerts.example/owa/upgrade", "quota-alerts.example/owa/upgrade", true},
		{"https://quota-alerts.example/optout/", "quota-alerts.example/optout", true},
		{"https://quota-alerts.example/optout///", "quota-alerts.example/optout", true},
		{"https://quota-alerts.example", "quota-alerts.example", true},
		{"https://quota-alerts.example/", "quota-alerts.example", true},
		{"https://quota-alerts.example./a", "quota-alerts.example/a", true},
		{"https://user:pw@quota-alerts.example/a", "quota-alerts.example/a", true},
		{"https://quota-alerts.example:443/a", "quota-alerts.example/a", true},
		{"http://quota-alerts.example:80/a", "quota-alerts.example/a", true},
		{"https://quota-alerts.example:8443/a", "quota-alerts.example:8443/a", true},
		{"https://quota-alerts.example/%7Euser/a%20b", "quota-alerts.example/~user/a b", true},
		{"https://bücher.example/kasse", "xn--bcher-kva.example/kasse", true},
		{"https://xn--bcher-kva.example/kasse", "xn--bcher-kva.example/kasse", true},
		{"http://[2001:DB8::1]:8080/x", "[2001:db8::1]:8080/x", true},
		{"http://203.0.113.9/login.php?x=1", "203.0.113.9/login.php", true},
		{"ftp://files.example/a", "", false},
		{"mailto:a@b.example", "", false},
		{"https:///nohost", "", false},
		{"https://bad host.example/", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeURL(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFingerprintIgnoresOrderAndRepetition(t *testing.T) {
	t.Parallel()
	att := func(sum string) email.Attachment { return email.Attachment{Size: 10, SHA256: sum} }
	msg := func(urls []string, atts ...email.Attachment) *email.Message {
		m := &email.Message{From: email.Address{Address: "a@x.example"}, Subject: "s", Attachments: atts}
		for _, u := range urls {
			m.Observables.URLs = append(m.Observables.URLs, email.URL{URL: u})
		}
		return m
	}
	key := func(m *email.Message) string {
		k, ok := fingerprintKey(m)
		if !ok {
			t.Fatalf("no fingerprint for %+v", m)
		}
		return k
	}
	base := key(msg([]string{"https://x.example/a", "https://y.example/b"}, att("aa"), att("bb")))
	tests := []struct {
		name string
		m    *email.Message
		same bool
	}{
		{"reordered", msg([]string{"https://y.example/b", "https://x.example/a"}, att("bb"), att("aa")), true},
		{"repeated", msg([]string{"https://x.example/a", "https://y.example/b", "https://x.example/a?again=1"}, att("aa"), att("bb"), att("AA")), true},
		{"inline pictures, empty files and other schemes do not count", msg(
			[]string{"https://x.example/a", "ftp://z.example/c", "https://y.example/b"},
			att("aa"), att("bb"), email.Attachment{Size: 10, SHA256: "cc", Inline: true}, email.Attachment{SHA256: "dd"}), true},
		{"one link more", msg([]string{"https://x.example/a", "https://y.example/b", "https://z.example/c"}, att("aa"), att("bb")), false},
		{"one file less", msg([]string{"https://x.example/a", "https://y.example/b"}, att("aa")), false},
		{"a link moved into the attachment set cannot collide", msg([]string{"https://x.example/a"}, att("aa"), att("bb"), att("y.example/b")), false},
	}
	for _, tt := range tests {
		if got := key(tt.m); (got == base) != tt.same {
			t.Errorf("%s: same = %v, want %v (%s)", tt.name, got == base, tt.same, describe(tt.m))
		}
	}
}

func TestForwardedURLs(t *testing.T) {
	t.Parallel()
	wrapped := safeLinks("bob.jones@contoso.com")("https://landing.example/login?x=1")
	urls := []email.URL{
		{URL: "https://www.contoso.com/"},                                                                // the reporter's signature
		{URL: "https://landing.example/login?x=1", Via: wrapped},                                         // Safe Links unwrapped
		{URL: "https://redir.example/r?u=https%3A%2F%2Fdeep.example%2Fp"},                                // an open redirect...
		{URL: "https://deep.example/p", Via: "https://redir.example/r?u=https%3A%2F%2Fdeep.example%2Fp"}, // ...and its target
		{URL: "https://shown.example/end"},                                                               // written before a full stop
		{URL: "HTTP://CAPS.example/Path"},                                                                // upper-case scheme
		{URL: "https://signature.example/only-in-html"},
	}
	text := "Sign in<" + wrapped + ">\nor https://redir.example/r?u=https%3A%2F%2Fdeep.example%2Fp\n" +
		"Read (https://shown.example/end).\nHTTP://CAPS.example/Path"
	var got []string
	for _, u := range forwardedURLs(urls, text) {
		got = append(got, u.URL)
	}
	want := []string{
		"https://landing.example/login?x=1", "https://redir.example/r?u=https%3A%2F%2Fdeep.example%2Fp",
		"https://deep.example/p", "https://shown.example/end", "HTTP://CAPS.example/Path",
	}
	if !slices.Equal(got, want) {
		t.Errorf("forwardedURLs = %q\nwant %q", got, want)
	}
}

func FuzzKeys(f *testing.F) {
	p := basePhish()
	f.Add(delivered(p, "phish@contoso.com", noWrap))
	f.Add(reportButton("alice@contoso.com", delivered(p, "alice@contoso.com", safeLinks("alice@contoso.com"))))
	f.Add(inlineForward(p, forwardStyles[0]))
	f.Add([]byte("Message-ID: <" + strings.Repeat("\xff", 200) + "@x>\r\nSubject: RE:RE:\r\n\r\nhttps://[::1]:99999/ http://%zz/"))
	opts := email.DefaultOptions()
	opts.InternalDomains = []string{"contoso.com"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rep, _ := email.Analyze(raw, email.Metadata{}, opts)
		keys := Keys(rep, bothKinds)
		if len(keys) > 2 {
			t.Fatalf("%d keys for two kinds", len(keys))
		}
		for _, k := range keys {
			if len(k) > MaxKeyLen || !printableASCII(k) || !(strings.HasPrefix(k, "mid:") || strings.HasPrefix(k, "fp:")) {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

// FuzzNormalizers feeds arbitrary text to every normalisation: none may
// panic, and the keys stay within their bound.
func FuzzNormalizers(f *testing.F) {
	f.Add("<Q-9921@quota-alerts.example>", "RE: FW: Invoice", "https://Quota-Alerts.example/owa/?x=1", "see https://a.example/b).")
	f.Add("<"+strings.Repeat("é", 60)+"@x>", "ＦＷ： x", "http://[::1]:99999/", "http://%zz/ https://")
	f.Fuzz(func(t *testing.T, id, subject, link, text string) {
		if k, ok := messageIDKey(id); ok && (len(k) > MaxKeyLen || !printableASCII(k)) {
			t.Fatalf("Message-ID key %q", k)
		}
		if s := normalizeSubject(subject); s != normalizeSubject(s) && !subjectPrefix.MatchString(s) {
			t.Fatalf("normalizeSubject(%q) = %q is not stable", subject, s)
		}
		if host, ok := normalizeURL(link); ok && host == "" {
			t.Fatalf("normalizeURL(%q) gave an empty host", link)
		}
		for _, u := range forwardedURLs([]email.URL{{URL: link, Via: text}, {URL: text}}, text) {
			if u.URL != link && u.URL != text {
				t.Fatalf("forwardedURLs invented %q", u.URL)
			}
		}
	})
}

// BenchmarkKeys measures the keys of one report (the analysis excluded):
// go test -run '^$' -bench Keys -benchmem ./internal/campaign/
func BenchmarkKeys(b *testing.B) {
	p := basePhish()
	opts := email.DefaultOptions()
	opts.InternalDomains = []string{"contoso.com"}
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"report button", reportButton("alice@contoso.com", delivered(p, "alice@contoso.com", safeLinks("alice@contoso.com")))},
		{"inline forward", inlineForward(p, forwardStyles[0])},
		{"delivered", delivered(p, "phish@contoso.com", noWrap)},
	} {
		rep, err := email.Analyze(c.raw, email.Metadata{}, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if len(Keys(rep, bothKinds)) == 0 {
					b.Fatal("no keys")
				}
			}
		})
	}
}

func TestLinkTokensAreBounded(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"overlapping schemes": strings.Repeat("http://", 300_000),
		"one endless link":    "https://x.example/" + strings.Repeat("a", 3<<20),
		"punctuation runs":    strings.Repeat("https://x.example/a"+strings.Repeat(".", 40)+" ", 50_000),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			total := 0
			for k := range linkTokens(text) {
				if len(k) > maxLinkLen {
					t.Fatalf("a %d-byte link, over %d", len(k), maxLinkLen)
				}
				total += len(k)
			}
			if total > maxTokenBytes+maxLinkLen {
				t.Errorf("%d bytes of links, over %d", total, maxTokenBytes+maxLinkLen)
			}
		})
	}
}
