package email

import (
	"net/textproto"
	"testing"
	"time"
)

func TestParseReceived(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Hop
	}{
		{
			"from mail.fabrikam.example (mail.fabrikam.example [198.51.100.23]) by mx.contoso.com (Postfix) with ESMTPS id 1; Mon, 02 Mar 2026 09:14:55 +0000 (UTC)",
			Hop{From: "mail.fabrikam.example", By: "mx.contoso.com", IP: "198.51.100.23", Time: time.Date(2026, 3, 2, 9, 14, 55, 0, time.UTC)},
		},
		{
			"from [192.168.1.23] (cpe.example [198.51.100.201]) by mail.example with ESMTPSA; Thu, 12 Mar 2026 07:41:06 +0000",
			Hop{From: "192.168.1.23", By: "mail.example", IP: "198.51.100.201", Time: time.Date(2026, 3, 12, 7, 41, 6, 0, time.UTC)},
		},
		{
			"from DM6PR11MB4321.namprd11.prod.outlook.com (2603:10b6:5:2a3::10) by BN8PR11MB3609.namprd11.prod.outlook.com with HTTPS; Mon, 9 Mar 2026 10:20:31 +0000",
			Hop{From: "DM6PR11MB4321.namprd11.prod.outlook.com", By: "BN8PR11MB3609.namprd11.prod.outlook.com", IP: "2603:10b6:5:2a3::10", Time: time.Date(2026, 3, 9, 10, 20, 31, 0, time.UTC)},
		},
		{
			"from unknown (HELO mail.example) (192.0.2.200) by mx.contoso.com with SMTP; 8 Mar 2026 03:03:03 -0000",
			Hop{From: "unknown", By: "mx.contoso.com", IP: "192.0.2.200", Time: time.Date(2026, 3, 8, 3, 3, 3, 0, time.UTC)},
		},
		{"by mx.contoso.com id 7", Hop{By: "mx.contoso.com"}},
		{"garbage ; not a date", Hop{}},
		{"", Hop{}},
	}
	for _, tt := range tests {
		got := parseReceived(tt.in)
		if got.From != tt.want.From || got.By != tt.want.By || got.IP != tt.want.IP || !got.Time.Equal(tt.want.Time) {
			t.Errorf("parseReceived(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 3, 2, 9, 14, 50, 0, time.UTC)
	for _, in := range []string{
		"Mon, 02 Mar 2026 09:14:50 +0000",
		"Mon, 2 Mar 2026 09:14:50 +0000 (UTC)",
		"2 Mar 2026 09:14:50 +0000",
		"Mon,2 Mar 2026 09:14:50 +0000",
		"Mon, 2 Mar 2026 09:14:50 GMT",
		"2026-03-02T09:14:50Z",
	} {
		got, ok := parseDate(in)
		if !ok || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yesterday", "Mon, 99 Foo 2026"} {
		if _, ok := parseDate(in); ok {
			t.Errorf("parseDate(%q) accepted", in)
		}
	}
}

func TestParseAuth(t *testing.T) {
	t.Parallel()
	h := textproto.MIMEHeader{}
	h.Add("Authentication-Results", "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=x.example; dkim=none (message not signed) header.d=none;dmarc=fail action=quarantine header.from=x.example;compauth=fail reason=000")
	h.Add("Authentication-Results", "mx.older.example; spf=pass smtp.mailfrom=x.example; dkim=pass header.d=x.example")
	h.Set("X-Forefront-Antispam-Report", "CIP:203.0.113.9;CTRY:NL;SCL:5;CAT:phsh;DIR:INB;")
	h.Set("X-Microsoft-Antispam", "BCL:7;PCL:3;")
	got := parseAuth(h)
	want := Auth{SPF: "fail", DKIM: "none", DMARC: "fail", CompAuth: "fail", CompAuthReason: "000", SCL: 5, BCL: 7, PCL: 3, CAT: "PHSH"}
	got.Raw = ""
	if got != want {
		t.Errorf("parseAuth = %+v, want %+v", got, want)
	}

	none := parseAuth(textproto.MIMEHeader{"Authentication-Results": {"garbage;;; =;dkim"}, "X-Ms-Exchange-Organization-Scl": {"-1"}})
	if none.SPF != "" || none.DKIM != "" || none.SCL != -1 || none.BCL != -1 || none.PCL != -1 {
		t.Errorf("malformed headers gave %+v", none)
	}
	orgSCL := parseAuth(textproto.MIMEHeader{"X-Ms-Exchange-Organization-Scl": {"6"}})
	if orgSCL.SCL != 6 {
		t.Errorf("SCL from X-MS-Exchange-Organization-SCL = %d, want 6", orgSCL.SCL)
	}
}
