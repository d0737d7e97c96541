package email

import (
	"net/mail"
	"time"
)

// Address is one mailbox: a display name and an address.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address,omitempty"`
}

// String formats the address as `Name <address>`, or the bare address when
// there is no display name, or the name alone when there is no address.
func (a Address) String() string {
	switch {
	case a.Address == "" && a.Name == "":
		return ""
	case a.Address == "":
		return a.Name
	case a.Name == "":
		return a.Address
	}
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

// IsZero reports whether both the name and the address are empty.
func (a Address) IsZero() bool { return a.Name == "" && a.Address == "" }

// Metadata is what the caller knows about the message from Microsoft Graph.
// The package does not depend on Graph types; the caller copies the fields.
// Non-empty values take precedence over what the MIME headers say.
type Metadata struct {
	Mailbox           string    `json:"mailbox,omitempty"`
	MessageID         string    `json:"message_id,omitempty"`
	InternetMessageID string    `json:"internet_message_id,omitempty"`
	Subject           string    `json:"subject,omitempty"`
	WebLink           string    `json:"web_link,omitempty"`
	ReceivedAt        time.Time `json:"received_at,omitempty"`
	From              Address   `json:"from,omitempty"`
	Sender            Address   `json:"sender,omitempty"`
}

// Report is the analysis of one message in the phishing mailbox.
type Report struct {
	// Mailbox and MessageID identify the message in Graph (from Metadata).
	Mailbox   string `json:"mailbox,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	// InternetMessageID is the report's own Message-ID header.
	InternetMessageID string `json:"internet_message_id,omitempty"`
	// WebLink opens the report in Outlook on the web (from Metadata).
	WebLink string `json:"web_link,omitempty"`
	// Reporter is the person who reported the message (the report's From);
	// empty when the message is not a report.
	Reporter Address `json:"reporter"`
	// ReportSubject is the subject of the message in the mailbox.
	ReportSubject string `json:"report_subject"`
	// ReceivedAt is when the mailbox received the message.
	ReceivedAt time.Time `json:"received_at"`
	// Classification is the reporter's verdict from Microsoft's report
	// format: "phishing", "junk", "not-junk", or "" when none was given.
	Classification string `json:"classification"`
	// ReportHeaders holds the Exchange headers of the report worth keeping
	// (X-MS-Exchange-Organization-Network-Message-Id and the others listed
	// in ReportHeaderNames), by canonical header name.
	ReportHeaders map[string]string `json:"report_headers"`
	// Originals are the reported messages, outermost first.
	Originals []*Message `json:"originals"`
	// IsReport is true when the message wraps or forwards a reported
	// original, or carries a report classification.
	IsReport bool `json:"is_report"`
	// MultipleOriginals is true when more than one original was found.
	MultipleOriginals bool `json:"multiple_originals"`
	// Suspect is the message to investigate: Originals[0], or the message
	// itself when it wraps no original.
	Suspect *Message `json:"suspect"`
	// Warnings lists what could not be parsed or was cut to a bound.
	Warnings []string `json:"warnings"`
}

// Message is one email: the reported original or the message itself.
type Message struct {
	From       Address   `json:"from"`
	Sender     Address   `json:"sender"`
	ReplyTo    Address   `json:"reply_to"`
	ReturnPath Address   `json:"return_path"`
	To         []Address `json:"to"`
	CC         []Address `json:"cc"`
	Subject    string    `json:"subject"`
	// Date is the Date header; zero when absent or unreadable.
	Date      time.Time `json:"date"`
	MessageID string    `json:"message_id"`
	// Received lists the Received headers in header order: the hop nearest
	// the recipient first.
	Received []Hop `json:"received"`
	// Text and HTML are the bodies, decoded to UTF-8. Text is derived from
	// HTML when the message has no text part.
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
	// Raw is the original as it was attached: .eml bytes for message/rfc822,
	// the .msg bytes for an Outlook item. It is not part of the JSON form.
	Raw []byte `json:"-"`
	// RawName is a file name for Raw (the attachment's name when it had one).
	RawName string `json:"raw_name"`
	// ConnectingIP is the address of the host that handed the message to the
	// receiving organisation: the first hop outside Microsoft's and the
	// organisation's relays ("" when the headers do not tell).
	ConnectingIP string      `json:"connecting_ip"`
	Observables  Observables `json:"observables"`
	Auth         Auth        `json:"auth"`
	Indicators   Indicators  `json:"indicators"`
	// Signals gathers the facts a verdict is made of, for the mapping's
	// criticality and category rules.
	Signals Signals `json:"signals"`
	// Source says where the message came from: "rfc822" (attached .eml or
	// Graph item attachment), "msg" (attached Outlook .msg),
	// "inline-forward" (recovered from a forwarded body), or "self".
	Source string `json:"source"`
	// Headers holds the message's header fields by lower-case name, each
	// name with its values in header order: unfolded, not RFC 2047
	// decoded, invalid UTF-8 replaced, each cut to MaxHeaderValueBytes. At
	// most MaxHeaderFields values are kept (every name's first value
	// before any name's second). An original recovered from an inline
	// forward has none: a forwarded body holds no real header. It is not
	// part of the JSON form.
	Headers map[string][]string `json:"-"`

	// connectingIP is the CIP of X-Forefront-Antispam-Report.
	connectingIP string
	// html is what scanning the HTML body found.
	html *htmlScan
}

// Hop is one Received header.
type Hop struct {
	From string    `json:"from"`
	By   string    `json:"by"`
	IP   string    `json:"ip"`
	Time time.Time `json:"time"`
}

// Attachment is one attached or inline file of a message.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	MD5         string `json:"md5"`
	SHA1        string `json:"sha1"`
	SHA256      string `json:"sha256"`
	// IsEmail is true when the attachment is itself an email (.eml, .msg).
	IsEmail bool `json:"is_email"`
	// Kind is what the file is, detected from its content (magic bytes)
	// before its name and declared type: one of the Kind constants
	// ("executable", "script", "macro-document", "html", "archive",
	// "disk-image", "document", "image", "calendar", "email", "empty",
	// "other").
	Kind string `json:"kind"`
	// Inline is true for a picture shown in the body (a logo, a signature
	// image) rather than a file sent to be opened.
	Inline bool `json:"inline"`
	// Data is the decoded content, for attaching to the incident. It is
	// not part of the JSON form.
	Data []byte `json:"-"`
}

// Observables are the indicators of compromise found in a message,
// deduplicated. URLs keep the order of first appearance (HTML links first,
// then the text body), each URL unwrapped from another right after it; the
// other lists are sorted.
type Observables struct {
	URLs []URL `json:"urls"`
	// Domains are the registrable domains of the URLs (unwrapped ones
	// included) and of the addresses.
	Domains []string `json:"domains"`
	// IPs are the connecting IP and the IP addresses links point to.
	IPs    []string `json:"ips"`
	Emails []string `json:"emails"`
	// Hashes are the MD5, SHA-1 and SHA-256 of every attachment that is not
	// empty (the hashes of nothing match every empty file).
	Hashes []string `json:"hashes"`
	// ImageHosts are the hosts the HTML body loads pictures from, tracking
	// pixels included.
	ImageHosts []string `json:"image_hosts"`
	// TrackingPixelHosts are the hosts of images too small or hidden to be
	// seen, which only tell the sender the message was opened.
	TrackingPixelHosts []string `json:"tracking_pixel_hosts"`
}

// URL is one link. Text is the displayed text of an HTML link; Mismatch is
// true when that text names a different registrable domain than the link.
// Via is set on a URL found inside another: the open redirect whose query,
// fragment or path carried it, or the Safe Links or URL Defense rewrite
// that wrapped it.
type URL struct {
	URL      string `json:"url"`
	Text     string `json:"text,omitempty"`
	Mismatch bool   `json:"mismatch"`
	Via      string `json:"via,omitempty"`
}

// String returns the URL itself.
func (u URL) String() string { return u.URL }

// Auth holds the authentication verdicts stamped on the message by the
// receiving system. Verdicts are lower-case result words ("pass", "fail",
// "softfail", "none", ...) or "" when absent; the numeric levels are -1 when
// absent.
type Auth struct {
	SPF      string `json:"spf"`
	DKIM     string `json:"dkim"`
	DMARC    string `json:"dmarc"`
	CompAuth string `json:"compauth"`
	// SCL is the spam confidence level, BCL the bulk complaint level, PCL
	// the phishing confidence level.
	SCL int `json:"scl"`
	BCL int `json:"bcl"`
	PCL int `json:"pcl"`
	// CompAuthReason is the reason code of the composite authentication
	// verdict ("000" explicit failure, "001" implicit, "1xx"/"2xx"/"3xx"/
	// "4xx"/"5xx"/"6xx"/"7xx"/"9xx" as Microsoft documents them).
	CompAuthReason string `json:"compauth_reason"`
	// CAT is the protection policy category (e.g. "PHSH", "SPM", "NONE").
	CAT string `json:"cat"`
	// Raw is the Authentication-Results header values, one per line.
	Raw string `json:"raw"`
}

// Indicators are simple phishing signals derived from the headers.
type Indicators struct {
	// DisplayNameSpoof is true when the From display name carries another
	// address or names an internal domain the address does not belong to.
	DisplayNameSpoof bool `json:"display_name_spoof"`
	// ReplyToMismatch is true when a Reply-To address is in another
	// registrable domain than From.
	ReplyToMismatch bool `json:"reply_to_mismatch"`
	// Lookalike is the first sender or link domain that imitates one of the
	// internal domains, and LookalikeOf the internal domain it imitates.
	Lookalike   string `json:"lookalike"`
	LookalikeOf string `json:"lookalike_of"`
}
