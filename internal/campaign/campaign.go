// Package campaign says which reports are of the same email. It derives the
// campaign keys of a report's suspect message: its Message-ID, and a
// fingerprint of what makes one phishing email that email (its sender, its
// subject, where its links lead and the files it carries). Reports whose keys
// match belong to one campaign and go onto one incident; grouping them,
// storing the keys and the window are the caller's business.
//
// The keys are built so that the same email reported in the three shapes the
// phishing mailbox receives (the original attached by Outlook's Report
// button, an inline forward, the email delivered to the mailbox itself)
// gives the same fingerprint, and the attached and delivered copies the same
// Message-ID key. docs/campaigns.md says what is and is not grouped.
package campaign

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/mail2archer/mail2archer/internal/email"
)

// Kinds of campaign key.
const (
	KindMessageID   = "message_id"
	KindFingerprint = "fingerprint"
)

// MaxKeyLen is the length in bytes no key exceeds.
const MaxKeyLen = 100

// Key prefixes: a key carries its kind, so keys of two kinds never collide.
const (
	prefixMessageID   = "mid:"
	prefixFingerprint = "fp:"
	// prefixHashedID marks a Message-ID key that holds the SHA-256 of an id
	// too long or not printable. A literal id always contains "@", the hex
	// digest never does, so the two forms cannot collide.
	prefixHashedID = prefixMessageID + "sha256:"
)

// Bounds on what is read from a message.
const (
	// maxMessageID is the longest Message-ID taken as an id: RFC 5322
	// limits a line to 998 bytes, so a longer one is not a real id.
	maxMessageID = 998
	// maxForwardText bounds the forwarded text searched for link targets
	// (the email package scans no more of a body for URLs).
	maxForwardText = 2 << 20
	// maxViaChain bounds the wrappers followed from a URL to the link that
	// carried it (the email package unwraps at most five levels, plus a
	// gateway rewrite).
	maxViaChain = 8
	// maxTrailingTrim bounds the forms of one link in the forwarded text
	// (the link and the link without each of its trailing punctuation
	// marks).
	maxTrailingTrim = 16
	// maxLinkLen bounds a link read from the forwarded text; a longer URL
	// is not kept for the fingerprint of an inline forward.
	maxLinkLen = 8192
	// maxTokenBytes bounds the bytes of all the links read from one
	// forwarded text.
	maxTokenBytes = 16 << 20
)

// sourceInlineForward is email.Message.Source for an original recovered
// from the body of an inline forward.
const sourceInlineForward = "inline-forward"

// fingerprintVersion starts every fingerprint's hashed input: a change to
// what is hashed changes the version, so old and new keys never match by
// accident.
const fingerprintVersion = "mail2archer campaign fingerprint v1"

// ValidKind reports whether kind is one of the kinds above.
func ValidKind(kind string) bool {
	return kind == KindMessageID || kind == KindFingerprint
}

// Keys returns the campaign keys of the email rep reports (rep.Suspect), one
// per kind in kinds, in that order, skipping a kind the email has no value
// for (no Message-ID, or nothing to fingerprint: no sender address, no link
// and no attached file). Keys carry their kind as a prefix ("mid:", "fp:")
// so that keys of two kinds never collide, and are at most MaxKeyLen bytes
// (the Message-ID part is hashed if needed). A kind that ValidKind rejects
// is ignored, and a kind named twice gives one key. rep and rep.Suspect may
// be nil: no keys. Keys only reads rep and is safe for concurrent use.
func Keys(rep *email.Report, kinds []string) []string {
	if rep == nil || rep.Suspect == nil {
		return nil
	}
	m := rep.Suspect
	var keys []string
	done := map[string]bool{}
	for _, kind := range kinds {
		if done[kind] {
			continue
		}
		done[kind] = true
		switch kind {
		case KindMessageID:
			if k, ok := messageIDKey(m.MessageID); ok {
				keys = append(keys, k)
			}
		case KindFingerprint:
			if k, ok := fingerprintKey(m); ok {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// messageIDKey returns the key of a Message-ID header value, or false when
// the id is useless (see normalizeMessageID).
func messageIDKey(raw string) (string, bool) {
	id, ok := normalizeMessageID(raw)
	if !ok {
		return "", false
	}
	if len(prefixMessageID)+len(id) <= MaxKeyLen && printableASCII(id) {
		return prefixMessageID + id, true
	}
	sum := sha256.Sum256([]byte(id))
	return prefixHashedID + hex.EncodeToString(sum[:]), true
}

// normalizeMessageID returns the id of a Message-ID header value: the text
// between the angle brackets (RFC 5322 §3.6.4: the brackets are not part of
// the id), without surrounding white space, otherwise byte for byte. Case
// is kept: RFC 5322 defines no case-insensitive comparison, and Exchange,
// Graph and every relay copy the header unchanged, so the attached original
// and the delivered copy carry identical bytes; folding case could only
// merge ids that differ. It returns false for an id that cannot name one
// email: empty ("<>"), longer than a header line may be (998 bytes), or
// without the "@" that separates id-left from id-right (sending tools that
// write such ids tend to write the same one for every message).
func normalizeMessageID(raw string) (string, bool) {
	id := strings.TrimSpace(raw)
	if rest, ok := strings.CutPrefix(id, "<"); ok {
		if end := strings.IndexByte(rest, '>'); end >= 0 {
			rest = rest[:end]
		}
		id = strings.TrimSpace(rest)
	}
	if id == "" || len(id) > maxMessageID {
		return "", false
	}
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return "", false
	}
	return id, true
}

// printableASCII reports whether s holds only visible ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// fingerprint is what the fingerprint key is a hash of.
type fingerprint struct {
	sender      string
	subject     string
	links       []string // normalised host+path, sorted, unique
	attachments []string // SHA-256 hex, sorted, unique
}

// fingerprintKey returns the fingerprint key of m, or false when m has no
// sender address, no link and no attached file: a subject alone does not
// identify an email.
func fingerprintKey(m *email.Message) (string, bool) {
	f := fingerprintOf(m)
	if f.sender == "" && len(f.links) == 0 && len(f.attachments) == 0 {
		return "", false
	}
	h := sha256.New()
	writeField(h, fingerprintVersion)
	writeField(h, f.sender)
	writeField(h, f.subject)
	writeSet(h, f.links)
	writeSet(h, f.attachments)
	return prefixFingerprint + hex.EncodeToString(h.Sum(nil)), true
}

// fingerprintOf collects the normalised parts of m's fingerprint.
func fingerprintOf(m *email.Message) fingerprint {
	f := fingerprint{
		sender:  normalizeAddress(m.From.Address),
		subject: normalizeSubject(m.Subject),
	}
	urls := m.Observables.URLs
	if m.Source == sourceInlineForward {
		urls = forwardedURLs(urls, m.Text)
	}
	for _, u := range urls {
		if link, ok := normalizeURL(u.URL); ok {
			f.links = append(f.links, link)
		}
	}
	for _, a := range m.Attachments {
		if sum, ok := attachmentHash(a); ok {
			f.attachments = append(f.attachments, sum)
		}
	}
	f.links = sortedSet(f.links)
	f.attachments = sortedSet(f.attachments)
	return f
}

// writeField writes one length-prefixed value, so that no two different
// sequences of values hash the same input.
func writeField(h hash.Hash, v string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
	h.Write([]byte(v))
}

// writeSet writes the size of a set and then its members.
func writeSet(h hash.Hash, set []string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(set)))])
	for _, v := range set {
		writeField(h, v)
	}
}

// sortedSet sorts s and removes repeated values.
func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// normalizeAddress returns an email address in lower case, without
// surrounding white space, angle brackets or a final dot.
func normalizeAddress(addr string) string {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(addr)), ".")
}

// subjectPrefix matches one reply or forward prefix at the start of a
// subject, with an optional counter ("RE[2]:", "AW (3):") and an ASCII or
// full-width colon. The words are those the email package reads as replies
// and forwards (internal/email/analyze.go forwardSubject and
// wrapperSubject): English, German, French, Spanish, Portuguese, Italian,
// Dutch and the Nordic languages, plus Portuguese Outlook's "RES:".
var subjectPrefix = regexp.MustCompile(`(?i)^(?:re|res|aw|sv|antw|r|rif|fw|fwd|tr|rv|wg|enc|i|vs|vb|pd|doorst|fs)\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：]`)

// subjectFolder folds case the Unicode way ("STRASSE" and "straße" fold
// alike), which lower-casing alone does not.
var subjectFolder = cases.Fold()

// normalizeSubject returns a subject without its leading reply and forward
// prefixes (removed repeatedly: "RE: FW: AW: x" is "x"), with runs of white
// space collapsed to one space, case folded, in Unicode NFC.
func normalizeSubject(s string) string {
	s = norm.NFC.String(s)
	for {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		loc := subjectPrefix.FindStringIndex(s)
		if loc == nil {
			break
		}
		s = s[loc[1]:]
	}
	return norm.NFC.String(subjectFolder.String(strings.Join(strings.Fields(s), " ")))
}

// normalizeURL returns the host and path of an http(s) URL: the host in
// lower case (an internationalised name in its ASCII form, a port only when
// it is not the scheme's default), the path decoded and without trailing
// slashes; no scheme, user, query or fragment. The query is left out
// because campaigns put the recipient in it (?user=alice@...) and the
// landing page is the host and path. It returns false for other schemes
// and URLs without a host.
func normalizeURL(raw string) (string, bool) {
	p, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", false
	}
	scheme := strings.ToLower(p.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.TrimSuffix(strings.ToLower(p.Hostname()), ".")
	if host == "" {
		return "", false
	}
	if !printableASCII(host) {
		if ascii, err := idna.Lookup.ToASCII(host); err == nil && ascii != "" {
			host = ascii
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := p.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	return host + strings.TrimRight(p.Path, "/"), true
}

// attachmentHash returns the SHA-256 of an attached file that counts for
// the fingerprint. Pictures shown in the body (logos, and in an inline
// forward the reporter's signature images, which the forward carries as
// attachments) and empty files do not count: what is sent to be opened does.
func attachmentHash(a email.Attachment) (string, bool) {
	if a.Inline || a.Size <= 0 || a.SHA256 == "" {
		return "", false
	}
	return strings.ToLower(a.SHA256), true
}

// forwardedURLs keeps the URLs of an inline forward that the forwarded part
// shows. The email package recovers the forwarded text from below the
// forward's header block, but takes the links of the whole HTML body, so
// links the reporter added above the block (a signature's website, a
// booking page) would otherwise count as the phish's. Every forwarding
// client writes a link's target in the plain text ("Open<https://...>",
// "Open ( https://... )"), so a URL is kept when it, or the link that
// carried it (a Safe Links rewrite, an open redirect), appears in text.
func forwardedURLs(urls []email.URL, text string) []email.URL {
	shown := linkTokens(text)
	via := make(map[string]string, len(urls))
	for _, u := range urls {
		if u.Via != "" {
			via[u.URL] = u.Via
		}
	}
	var out []email.URL
	for _, u := range urls {
		cur := u.URL
		for range maxViaChain {
			if c := strings.TrimSpace(cur); len(c) <= maxLinkLen && shown[c] {
				out = append(out, u)
				break
			}
			next := u.Via
			if cur != u.URL {
				next = via[cur]
			}
			if next == "" || next == cur {
				break
			}
			cur = next
		}
	}
	return out
}

// linkTokens returns the http(s) links written in text: each run from an
// "http://" or "https://" to the next white space, angle bracket or quote
// (at most maxLinkLen bytes), and each of its forms without sentence
// punctuation at the end ("see https://x.example/a." gives
// "https://x.example/a." and "https://x.example/a"). The work is linear in
// the text, and the set holds at most about maxTokenBytes bytes of links
// whatever the text ("http://http://http://..." included).
func linkTokens(text string) map[string]bool {
	if len(text) > maxForwardText {
		text = text[:maxForwardText]
	}
	set := map[string]bool{}
	budget := maxTokenBytes
	fieldStart := -1
	for i, r := range text {
		if !isLinkSeparator(r) {
			if fieldStart < 0 {
				fieldStart = i
			}
			continue
		}
		if fieldStart >= 0 {
			budget = addLinks(set, text[fieldStart:i], budget)
			fieldStart = -1
		}
	}
	if fieldStart >= 0 {
		addLinks(set, text[fieldStart:], budget)
	}
	return set
}

// trailingPunctuation is what a sentence may put right after a link.
const trailingPunctuation = ".,;:!?')]}*|"

// addLinks adds the links that start in field (a run without separators)
// to set, spending budget bytes, and returns what is left of the budget.
func addLinks(set map[string]bool, field string, budget int) int {
	for i := 0; i < len(field) && budget > 0; i++ {
		if field[i] != 'h' && field[i] != 'H' {
			continue
		}
		link := field[i:]
		if !hasPrefixFold(link, "http://") && !hasPrefixFold(link, "https://") {
			continue
		}
		link = link[:min(len(link), maxLinkLen)]
		for range maxTrailingTrim {
			set[link] = true
			budget -= len(link)
			if budget <= 0 || strings.IndexByte(trailingPunctuation, link[len(link)-1]) < 0 {
				break
			}
			link = link[:len(link)-1]
		}
	}
	return budget
}

// isLinkSeparator reports whether r ends a link in plain text.
func isLinkSeparator(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' || r == '"'
}

// hasPrefixFold reports whether s starts with the ASCII prefix, in any case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
