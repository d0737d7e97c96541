package incident

import "sort"

// preset is a documented way to recognise the messages of a phishing
// simulation platform. A rule that names it (preset: name) skips a match
// as a simulation unless the rule gives another action.
type preset struct {
	when When
	// source is the public page that documents the condition.
	source string
}

// presets holds only conditions a vendor documents publicly; each cites
// its source. Platforms whose own documentation states no header are left
// out: operators write a rule for the sender domain or header their
// account uses (docs/mapping.md, "Presets").
//
// Left out, with the reason:
//
//   - Microsoft Defender for Office 365 Attack simulation training: its
//     documentation names no header on simulation messages. What it does
//     document is that reports made with Microsoft's own reporting tools
//     are recognised as simulations on the Submissions page of the
//     Defender portal: the User reported tab has a "Simulations" quick
//     filter and a "Phish simulation" column (Yes/No), and a report's
//     Result can be "Phish simulation"
//     (https://learn.microsoft.com/defender-office-365/submissions-admin,
//     "View user reported messages to Microsoft"). It does not say whether
//     such reports still reach the reporting mailbox. The page
//     https://learn.microsoft.com/defender-office-365/attack-simulation-training-get-started
//     lists the URLs simulation payloads link to, but rules have no
//     condition on links, and the sender address of a payload is chosen
//     by the administrator.
//   - Proofpoint Security Awareness (ThreatSim, Wombat; X-ThreatSim-ID,
//     X-ThreatSim-Header) and Cofense PhishMe (X-PhishMe): these headers
//     are known only from third-party write-ups; neither vendor's public
//     documentation that could be consulted states them.
var presets = map[string]preset{
	// KnowBe4's support article "Whitelisting by Email Header"
	// (https://support.knowbe4.com/hc/en-us/articles/212723707), part of
	// its whitelisting guide
	// (https://support.knowbe4.com/hc/en-us/articles/203645138), tells
	// customers to allow its simulated phishing emails by the header
	// X-PHISHTEST, the default header of its phishing security tests. The
	// header is an account setting: an account can change it, and then
	// needs a rule on its own header instead of this preset.
	"knowbe4": {
		when:   When{Headers: []HeaderCondition{{Name: "X-PHISHTEST"}}},
		source: "https://support.knowbe4.com/hc/en-us/articles/212723707",
	},
}

// PresetNames lists the presets a rule may name, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PresetSource returns the public page that documents a preset's
// condition; false for an unknown preset.
func PresetSource(name string) (string, bool) {
	p, ok := presets[name]
	return p.source, ok
}
