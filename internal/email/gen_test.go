package email

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

var update = flag.Bool("update", false, "rewrite the generated corpus files and the golden files")

// testMsg describes an Outlook .msg for buildMsg.
type testMsg struct {
	subject, senderName, senderEmail, body, html, headers, messageID string
	submit                                                           time.Time
	recipients                                                       []testRecip
	attachments                                                      []testAttach
}

type testRecip struct {
	name, addr string
	kind       uint32 // 1 To, 2 Cc
}

type testAttach struct {
	name, mime string
	data       []byte
}

func utf16z(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, len(u)*2+2)
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

// msgProps accumulates the streams of one storage and its property stream.
type msgProps struct {
	nodes []*cfbNode
	props []byte
}

func (p *msgProps) str(id uint16, v string) {
	if v == "" {
		return
	}
	p.stream(uint32(id)<<16|ptUnicode, utf16z(v))
}

func (p *msgProps) stream(tag uint32, data []byte) {
	p.nodes = append(p.nodes, cfbStream(fmt.Sprintf("__substg1.0_%08X", tag), data))
	p.props = binary.LittleEndian.AppendUint32(p.props, tag)
	p.props = binary.LittleEndian.AppendUint32(p.props, 6)
	p.props = binary.LittleEndian.AppendUint32(p.props, uint32(len(data)))
	p.props = binary.LittleEndian.AppendUint32(p.props, 0)
}

func (p *msgProps) fixed(tag uint32, v uint64) {
	p.props = binary.LittleEndian.AppendUint32(p.props, tag)
	p.props = binary.LittleEndian.AppendUint32(p.props, 6)
	p.props = binary.LittleEndian.AppendUint64(p.props, v)
}

func (p *msgProps) storage(name string, header []byte) *cfbNode {
	nodes := append(p.nodes, cfbStream(propsStream, append(header, p.props...)))
	return cfbStorage(name, nodes...)
}

// buildMsg writes m as an Outlook .msg compound file.
func buildMsg(m testMsg) []byte {
	var top msgProps
	top.str(propSubject, m.subject)
	top.str(propSenderName, m.senderName)
	top.str(propSenderEmail, m.senderEmail)
	top.str(propSenderSMTP, m.senderEmail)
	top.str(propSentReprName, m.senderName)
	top.str(propSentReprEmail, m.senderEmail)
	top.str(propBody, m.body)
	if m.html != "" {
		top.stream(uint32(propHTML)<<16|ptBinary, []byte(m.html))
	}
	top.str(propTransportHeaders, m.headers)
	top.str(propInternetMessageID, m.messageID)
	top.str(0x001A, "IPM.Note")
	if !m.submit.IsZero() {
		ft := uint64(m.submit.UnixNano()/100) + 116444736000000000
		top.fixed(uint32(propClientSubmitTime)<<16|ptSysTime, ft)
	}
	var children []*cfbNode
	for i, r := range m.recipients {
		var p msgProps
		p.str(propDisplayName, r.name)
		p.str(propEmailAddress, r.addr)
		p.str(propSMTPAddress, r.addr)
		p.fixed(uint32(propRecipientType)<<16|ptLong, uint64(r.kind))
		children = append(children, p.storage(fmt.Sprintf("%s%08X", recipPrefix, i), make([]byte, 8)))
	}
	for i, a := range m.attachments {
		var p msgProps
		p.str(propAttachLongName, a.name)
		p.str(propAttachFilename, a.name)
		p.str(propDisplayName, a.name)
		p.str(propAttachMime, a.mime)
		p.stream(uint32(propAttachData)<<16|ptBinary, a.data)
		p.fixed(0x37050003, 1)
		children = append(children, p.storage(fmt.Sprintf("%s%08X", attachPrefix, i), make([]byte, 8)))
	}
	children = append(children, cfbStorage("__nameid_version1.0",
		cfbStream("__substg1.0_00020102", nil),
		cfbStream("__substg1.0_00030102", nil),
		cfbStream("__substg1.0_00040102", nil),
	))
	hdr := make([]byte, 32)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(m.recipients)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(m.attachments)))
	binary.LittleEndian.PutUint32(hdr[16:], uint32(len(m.recipients)))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(len(m.attachments)))
	root := top.storage("Root Entry", hdr)
	root.children = append(root.children, children...)
	// {00020D0B-0000-0000-C000-000000000046}, the class of an Outlook message.
	root.clsid = [16]byte{0x0B, 0x0D, 0x02, 0x00, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46}
	return buildCFB(root)
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// reportWithMsg wraps a .msg as Microsoft's report format does.
func reportWithMsg(headers, note, msgName string, msg []byte) []byte {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(strings.TrimSpace(headers), "\n", "\r\n"))
	b.WriteString("\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"_rep_msg_\"\r\n\r\n")
	b.WriteString("--_rep_msg_\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n")
	b.WriteString(note + "\r\n\r\n")
	fmt.Fprintf(&b, "--_rep_msg_\r\nContent-Type: application/vnd.ms-outlook; name=\"%s\"\r\n", msgName)
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", msgName)
	b.WriteString(base64Lines(msg))
	b.WriteString("--_rep_msg_--\r\n")
	return []byte(b.String())
}

func sampleMsgPhish() []byte {
	headers := strings.ReplaceAll(`Received: from BN8NAM12FT045.eop-nam12.prod.protection.outlook.com
 (2603:10b6:408:e7::9) by DM6PR11MB4321.namprd11.prod.outlook.com
 (2603:10b6:5:2a3::10) with Microsoft SMTP Server id 15.20.7000.1; Mon, 16 Mar 2026
 13:05:12 +0000
Received: from mta.payroll-portal.example (203.0.113.201) by
 BN8NAM12FT045.mail.protection.outlook.com (10.13.182.100) with Microsoft SMTP
 Server id 15.20.7000.1 via Frontend Transport; Mon, 16 Mar 2026 13:05:11 +0000
Authentication-Results: spf=pass (sender IP is 203.0.113.201)
 smtp.mailfrom=payroll-portal.example; dkim=pass (signature was verified)
 header.d=payroll-portal.example;dmarc=pass action=none
 header.from=payroll-portal.example;compauth=pass reason=100
X-Forefront-Antispam-Report: CIP:203.0.113.201;CTRY:US;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:mta.payroll-portal.example;PTR:mta.payroll-portal.example;CAT:NONE;SFS:(13230031);DIR:INB;
X-Microsoft-Antispam: BCL:0;ARA:13230031;
From: "Contoso HR (hr@contoso.com)" <hr-notice@payroll-portal.example>
To: Frank Wu <frank.wu@contoso.com>
Subject: Payroll change confirmation required
Date: Mon, 16 Mar 2026 13:05:00 +0000
Message-ID: <payroll-8812@payroll-portal.example>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
`, "\n", "\r\n")
	return buildMsg(testMsg{
		subject:     "Payroll change confirmation required",
		senderName:  "Contoso HR (hr@contoso.com)",
		senderEmail: "hr-notice@payroll-portal.example",
		body:        "Hello Frank,\r\n\r\nA change to your direct deposit was requested. Confirm or cancel it at https://payroll-portal.example/confirm?id=8812 before 17:00 today.\r\n\r\nContoso HR\r\n",
		html:        `<html><body><p>Hello Frank,</p><p>A change to your direct deposit was requested. <a href="https://payroll-portal.example/confirm?id=8812">Review the change on contoso.com</a> before 17:00 today.</p><p>Contoso HR</p></body></html>`,
		headers:     headers,
		messageID:   "<payroll-8812@payroll-portal.example>",
		submit:      time.Date(2026, 3, 16, 13, 5, 0, 0, time.UTC),
		recipients:  []testRecip{{name: "Frank Wu", addr: "frank.wu@contoso.com", kind: 1}},
		attachments: []testAttach{{name: "Direct deposit form.html", mime: "text/html", data: []byte("<html><body><form action=\"https://payroll-portal.example/collect\"><input name=\"account\"></form></body></html>\n")}},
	})
}

// sampleMsgPlain has no transport headers, so every field comes from MAPI
// properties; its body is longer than the mini stream cutoff.
func sampleMsgPlain() []byte {
	body := strings.Repeat("Minutes of the facilities meeting, kept for the record.\r\n", 80)
	return buildMsg(testMsg{
		subject:     "Facilities meeting minutes",
		senderName:  "Grace Hall",
		senderEmail: "grace.hall@fabrikam.example",
		body:        body,
		messageID:   "<minutes-0317@fabrikam.example>",
		submit:      time.Date(2026, 3, 17, 9, 30, 0, 0, time.UTC),
		recipients: []testRecip{
			{name: "Alice Smith", addr: "alice@contoso.com", kind: 1},
			{name: "Carol Smith", addr: "carol.smith@contoso.com", kind: 2},
		},
	})
}

func nestedMultipart(levels int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Nest <nest@proseware.example>\r\nTo: alice@contoso.com\r\nSubject: nested\r\nDate: Tue, 17 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < levels; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

func nestedRFC822(levels int) []byte {
	inner := []byte("From: Deep <deep@proseware.example>\r\nTo: alice@contoso.com\r\nSubject: the innermost message\r\nDate: Tue, 17 Mar 2026 11:00:00 +0000\r\n\r\nvisit https://deep.proseware.example/x\r\n")
	for i := levels; i > 0; i-- {
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: Layer %d <layer%d@contoso.com>\r\nTo: phish@contoso.com\r\nSubject: FW: layer %d\r\nDate: Tue, 17 Mar 2026 11:%02d:00 +0000\r\nMIME-Version: 1.0\r\n", i, i, i, i)
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"L%d\"\r\n\r\n--L%d\r\nContent-Type: text/plain\r\n\r\nforwarding layer %d\r\n", i, i, i)
		fmt.Fprintf(&b, "--L%d\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"layer%d.eml\"\r\n\r\n", i, i+1)
		b.Write(inner)
		fmt.Fprintf(&b, "\r\n--L%d--\r\n", i)
		inner = b.Bytes()
	}
	return inner
}

func longHeader() []byte {
	var b bytes.Buffer
	b.WriteString("Received: from mail.proseware.example (mail.proseware.example [192.0.2.33]) by mx.contoso.com; Wed, 18 Mar 2026 08:00:00 +0000\r\n")
	b.WriteString("From: Long Header <long@proseware.example>\r\nTo: alice@contoso.com\r\nDate: Wed, 18 Mar 2026 08:00:00 +0000\r\n")
	b.WriteString("Subject: " + strings.Repeat("long subject ", (1<<20)/13) + "\r\n")
	b.WriteString("Content-Type: text/plain\r\n\r\nThe headers above are one megabyte long.\r\n")
	return b.Bytes()
}

// generatedFiles are the corpus files produced by code rather than by hand.
func generatedFiles() map[string][]byte {
	phish := sampleMsgPhish()
	plain := sampleMsgPlain()
	return map[string][]byte{
		"samples/03-payroll-original.msg": phish,
		"samples/03-report-message-msg.eml": reportWithMsg(`Received: from DM6PR11MB4321.namprd11.prod.outlook.com (2603:10b6:5:2a3::10) by
 BN8PR11MB3609.namprd11.prod.outlook.com with HTTPS; Mon, 16 Mar 2026 13:40:07
 +0000
From: Frank Wu <frank.wu@contoso.com>
To: Phishing Reports <phish@contoso.com>
Subject: 3|Payroll change confirmation required
Date: Mon, 16 Mar 2026 13:40:05 +0000
Message-ID: <DM6PR11MB4321DD04@DM6PR11MB4321.namprd11.prod.outlook.com>
X-MS-Exchange-Organization-Network-Message-Id: 9c8d7e6f-5a4b-4c3d-9e2f-1a0b9c8d7e6f
X-MS-Exchange-Organization-AuthAs: Internal
X-MS-Exchange-Organization-SCL: -1`, "This message was reported as phishing.", "Payroll change confirmation required.msg", phish),
		"corpus/report-msg.eml": reportWithMsg(`From: Alice Smith <alice@contoso.com>
To: Phishing Reports <phish@contoso.com>
Subject: Not junk: Facilities meeting minutes
Date: Tue, 17 Mar 2026 10:15:00 +0000
Message-ID: <report-msg-2@contoso.com>
X-MS-Exchange-Organization-Network-Message-Id: 11112222-3333-4444-5555-666677778888`, "Reported as not junk.", "Facilities meeting minutes.msg", plain),
		"corpus/nested-multipart.eml": nestedMultipart(2000),
		"corpus/nested-rfc822.eml":    nestedRFC822(15),
		"corpus/long-header.eml":      longHeader(),
	}
}

// TestGeneratedCorpusIsCurrent checks that the generated corpus files on
// disk are exactly what the generators produce; -update rewrites them. It is
// deliberately not parallel, so that with -update it finishes before the
// parallel golden tests read the files.
func TestGeneratedCorpusIsCurrent(t *testing.T) {
	files := generatedFiles()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v (run go test -update)", path, err)
		}
		if !bytes.Equal(got, files[name]) {
			t.Errorf("%s differs from its generator (run go test -update)", path)
		}
	}
}
