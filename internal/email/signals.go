package email

import "strings"

// Signals are the facts an analyst weighs to rate a message, gathered in
// one place for the mapping's criticality and category rules. A count is 0
// and a verdict "" when the fact is absent; the Microsoft levels are -1
// when the message carries none.
type Signals struct {
	// SCL is Microsoft's spam confidence level: -1 absent or filtering
	// bypassed, 0-1 not spam, 5-6 spam, 8-9 high-confidence spam.
	SCL int `json:"scl"`
	// BCL is the bulk complaint level, 0-9: 4-7 typical bulk mail, 8-9 bulk
	// with many complaints.
	BCL int `json:"bcl"`
	// PCL is the phishing confidence level, 0-9 (higher is more likely
	// phishing).
	PCL int `json:"pcl"`
	// Category is the protection policy category Microsoft applied
	// (X-Forefront-Antispam-Report CAT): "PHSH", "HPHSH", "SPOOF", "MALW",
	// "SPM", "HSPM", "BULK", "NONE", ... or "".
	Category string `json:"category"`
	// CompAuth is Microsoft's composite authentication verdict ("pass",
	// "fail", "softfail", "none") and CompAuthReason its reason code.
	CompAuth       string `json:"compauth"`
	CompAuthReason string `json:"compauth_reason"`
	// SPF, DKIM and DMARC are the verdicts of Authentication-Results.
	SPF   string `json:"spf"`
	DKIM  string `json:"dkim"`
	DMARC string `json:"dmarc"`
	// AuthFailed is true when composite authentication or DMARC failed:
	// the sender is not who the From header says.
	AuthFailed bool `json:"auth_failed"`

	// ExternalSender is true when the From address is outside the internal
	// domains (always false when none are configured).
	ExternalSender bool `json:"external_sender"`
	// ReplyToOtherDomain is true when replies go to another registrable
	// domain than the From address.
	ReplyToOtherDomain bool `json:"reply_to_other_domain"`
	// DisplayNameSpoof is true when the display name shows another address
	// than the real one, or an internal brand used from outside.
	DisplayNameSpoof bool `json:"display_name_spoof"`
	// Lookalike is the first sender or link domain imitating an internal
	// domain, LookalikeOf the internal domain it imitates.
	Lookalike   string `json:"lookalike"`
	LookalikeOf string `json:"lookalike_of"`

	// URLs counts the listed URLs, unwrapped ones included.
	URLs int `json:"urls"`
	// LinkTextMismatch counts links whose displayed text names another
	// domain than their target.
	LinkTextMismatch int `json:"link_text_mismatch"`
	// RawIPURLs counts URLs to a bare IP address instead of a name.
	RawIPURLs int `json:"raw_ip_urls"`
	// PunycodeURLs counts URLs to an internationalised (punycode) host name,
	// the usual vehicle of homograph look-alikes.
	PunycodeURLs int `json:"punycode_urls"`
	// ShortenerURLs counts URLs through a URL shortener (see
	// ShortenerHosts).
	ShortenerURLs int `json:"shortener_urls"`
	// NestedURLs counts URLs unwrapped from open redirects and link
	// rewriting.
	NestedURLs int `json:"nested_urls"`
	// TrackingPixels counts images too small or hidden to be seen.
	TrackingPixels int `json:"tracking_pixels"`

	// Attachments counts the files sent to be opened: every attachment but
	// the pictures shown inline in the body.
	Attachments int `json:"attachments"`
	// RiskyAttachments counts the attachments that deliver malware:
	// executables, scripts, macro documents, archives and disk images.
	RiskyAttachments int `json:"risky_attachments"`
	// The attachments (inline pictures excluded) by Attachment.Kind.
	Executables     int `json:"executables"`
	Scripts         int `json:"scripts"`
	MacroDocuments  int `json:"macro_documents"`
	HTMLAttachments int `json:"html_attachments"`
	Archives        int `json:"archives"`
	DiskImages      int `json:"disk_images"`
	Documents       int `json:"documents"`
	Images          int `json:"images"`
	Calendars       int `json:"calendars"`
	AttachedEmails  int `json:"attached_emails"`
	EmptyFiles      int `json:"empty_files"`
	// InlineImages counts the pictures shown in the body (logos, signature
	// images); they are not attachments an analyst needs to open.
	InlineImages int `json:"inline_images"`
}

// signals gathers the Signals of an enriched message.
func (a *analyzer) signals(m *Message) Signals {
	s := Signals{
		SCL:                m.Auth.SCL,
		BCL:                m.Auth.BCL,
		PCL:                m.Auth.PCL,
		Category:           m.Auth.CAT,
		CompAuth:           m.Auth.CompAuth,
		CompAuthReason:     m.Auth.CompAuthReason,
		SPF:                m.Auth.SPF,
		DKIM:               m.Auth.DKIM,
		DMARC:              m.Auth.DMARC,
		AuthFailed:         m.Auth.CompAuth == "fail" || m.Auth.DMARC == "fail",
		ReplyToOtherDomain: m.Indicators.ReplyToMismatch,
		DisplayNameSpoof:   m.Indicators.DisplayNameSpoof,
		Lookalike:          m.Indicators.Lookalike,
		LookalikeOf:        m.Indicators.LookalikeOf,
		URLs:               len(m.Observables.URLs),
	}
	if m.html != nil {
		for _, img := range m.html.Images {
			if img.Pixel {
				s.TrackingPixels++
			}
		}
	}
	if d := domainOf(m.From.Address); d != "" && len(a.opts.InternalDomains) > 0 {
		s.ExternalSender = !a.isInternal(d)
	}
	for _, u := range m.Observables.URLs {
		host := urlHost(u.URL)
		if u.Mismatch {
			s.LinkTextMismatch++
		}
		if u.Via != "" {
			s.NestedURLs++
		}
		switch {
		case isIPHost(host):
			s.RawIPURLs++
		case isIDNHost(host):
			s.PunycodeURLs++
		}
		if isShortener(host) {
			s.ShortenerURLs++
		}
	}
	for _, at := range m.Attachments {
		if at.Inline {
			s.InlineImages++
			continue
		}
		s.Attachments++
		switch at.Kind {
		case KindExecutable:
			s.Executables++
		case KindScript:
			s.Scripts++
		case KindMacroDocument:
			s.MacroDocuments++
		case KindHTML:
			s.HTMLAttachments++
		case KindArchive:
			s.Archives++
		case KindDiskImage:
			s.DiskImages++
		case KindDocument:
			s.Documents++
		case KindImage:
			s.Images++
		case KindCalendar:
			s.Calendars++
		case KindEmail:
			s.AttachedEmails++
		case KindEmpty:
			s.EmptyFiles++
		}
	}
	s.RiskyAttachments = s.Executables + s.Scripts + s.MacroDocuments + s.Archives + s.DiskImages
	return s
}

// isInternal reports whether a domain is one of the internal domains or
// below one.
func (a *analyzer) isInternal(domain string) bool {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	for _, in := range a.opts.InternalDomains {
		if domain == in || strings.HasSuffix(domain, "."+in) {
			return true
		}
	}
	return false
}
