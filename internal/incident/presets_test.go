package incident

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mail2archer/mail2archer/internal/email"
)

// reportOf wraps an original email in a report as Outlook's Report button
// sends it to the phishing mailbox: the original attached as
// message/rfc822.
func reportOf(original string) []byte {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	return []byte(crlf(`From: Adele Vance <adelev@contoso.com>
To: Phishing Reports <phish@contoso.com>
Subject: Phishing: Action required: shared document
Date: Tue, 17 Mar 2026 09:02:10 +0000
Message-ID: <report-77@contoso.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="rep"

--rep
Content-Type: text/plain; charset=utf-8

This message was reported as phishing.

--rep
Content-Type: message/rfc822

`) + crlf(original) + "\r\n--rep--\r\n")
}

// simulatedOriginal is a simulated phishing email as a platform that marks
// its messages with a header delivers it; extra goes into its header.
func simulatedOriginal(extra string) string {
	return `Received: from psm.example-sim.net (192.0.2.77) by
 BN8NAM12FT045.mail.protection.outlook.com (10.13.182.100) with Microsoft SMTP
 Server id 15.20.7000.1 via Frontend Transport; Tue, 17 Mar 2026 08:55:03 +0000
Authentication-Results: spf=pass (sender IP is 192.0.2.77)
 smtp.mailfrom=example-sim.net; dkim=none (message not signed)
 header.d=none;dmarc=none action=none header.from=docs-share.example;compauth=pass reason=100
From: "SharePoint Online" <no-reply@docs-share.example>
To: Adele Vance <adelev@contoso.com>
Subject: Action required: shared document
Date: Tue, 17 Mar 2026 08:55:00 +0000
Message-ID: <sim-4411@example-sim.net>
` + extra + `MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<p>A document was shared with you. <a href="https://docs-share.example/open?u=4411">Open</a></p>
`
}

func TestPresetsAgainstRealisticHeaders(t *testing.T) {
	t.Parallel()
	c := rulesOnly(t, "  - name: knowbe4\n    preset: knowbe4\n")
	tests := []struct {
		name, extra string
		match       bool
	}{
		{"KnowBe4's header", "X-PHISHTEST: account-token-0001\n", true},
		{"the header in another case", "x-phishtest: account-token-0001\n", true},
		{"the header folded over two lines", "X-PHISHTEST:\n account-token-0001\n", true},
		{"another header", "X-PHISHTEST-NOTE: not the header\n", false},
		{"the name in another header's value", "X-Note: X-PHISHTEST\n", false},
		{"no header", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep, err := email.Analyze(reportOf(simulatedOriginal(tt.extra)), email.Metadata{Mailbox: "phish@contoso.com", MessageID: "m1"}, email.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Suspect == nil || rep.Suspect.Subject != "Action required: shared document" {
				t.Fatalf("the original was not found: %+v", rep.Suspect)
			}
			got, ok := c.MatchRules(rep, nil)
			if ok != tt.match {
				t.Fatalf("match = %v, want %v (headers %v)", ok, tt.match, rep.Suspect.Headers)
			}
			if ok && (!got.Skip || !got.Simulation || got.Category != DefaultSimulationCategory) {
				t.Errorf("match %+v", got)
			}
		})
	}
	// The report's own headers do not count: a reporter's client that
	// stamped the header on the report does not make the original a
	// simulation.
	rep, err := email.Analyze(reportOf(simulatedOriginal("")), email.Metadata{}, email.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	rep.ReportHeaders["X-PHISHTEST"] = "x"
	if _, ok := c.MatchRules(rep, nil); ok {
		t.Error("a header of the report matched")
	}
}

func TestEveryPresetIsValidAndCitesItsSource(t *testing.T) {
	t.Parallel()
	for _, name := range PresetNames() {
		p := presets[name]
		if _, problems := buildMatcher(&p.when); len(problems) > 0 {
			t.Errorf("%s: %v", name, problems)
		}
		if src, ok := PresetSource(name); !ok || !strings.HasPrefix(src, "https://") {
			t.Errorf("%s: source %q", name, src)
		}
	}
	if _, ok := PresetSource("nope"); ok {
		t.Error("an unknown preset has a source")
	}
	// The schema lists exactly the presets.
	b, err := os.ReadFile("../../api/mapping.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs struct {
			Rule struct {
				Properties struct {
					Preset struct {
						Enum []string `json:"enum"`
					} `json:"preset"`
				} `json:"properties"`
			} `json:"rule"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(schema.Defs.Rule.Properties.Preset.Enum)
	slices.Sort(got)
	if !slices.Equal(got, PresetNames()) {
		t.Errorf("schema presets %q, code presets %q", got, PresetNames())
	}
}
