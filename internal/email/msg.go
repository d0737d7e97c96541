package email

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/richardlehane/mscfb"
	"golang.org/x/text/encoding/charmap"
)

// MAPI property ids read from an Outlook .msg.
const (
	propSubject           = 0x0037
	propClientSubmitTime  = 0x0039
	propSentReprName      = 0x0042
	propSentReprEmail     = 0x0065
	propTransportHeaders  = 0x007D
	propSenderName        = 0x0C1A
	propSenderEmail       = 0x0C1F
	propRecipientType     = 0x0C15
	propDisplayName       = 0x3001
	propEmailAddress      = 0x3003
	propBody              = 0x1000
	propHTML              = 0x1013
	propInternetMessageID = 0x1035
	propAttachData        = 0x3701
	propAttachFilename    = 0x3704
	propAttachLongName    = 0x3707
	propAttachMime        = 0x370E
	propAttachContentID   = 0x3712
	propAttachmentHidden  = 0x7FFE
	propSenderSMTP        = 0x5D01
	propSMTPAddress       = 0x39FE
)

// MAPI property types.
const (
	ptString8 = 0x001E
	ptUnicode = 0x001F
	ptBinary  = 0x0102
	ptObject  = 0x000D
	ptLong    = 0x0003
	ptBoolean = 0x000B
	ptSysTime = 0x0040
)

const (
	attachPrefix = "__attach_version1.0_#"
	recipPrefix  = "__recip_version1.0_#"
	substgPrefix = "__substg1.0_"
	propsStream  = "__properties_version1.0"
)

// msgStorage is the properties of one storage: the message, a recipient or
// an attachment.
type msgStorage struct {
	streams map[uint32][]byte // tag (id<<16|type) → stream content
	fixed   map[uint32][]byte // tag → 8-byte value from the property stream
	props   []byte
}

func newMsgStorage() *msgStorage {
	return &msgStorage{streams: map[uint32][]byte{}, fixed: map[uint32][]byte{}}
}

// str returns a string property in either string type.
func (s *msgStorage) str(id uint16) string {
	if b, ok := s.streams[uint32(id)<<16|ptUnicode]; ok {
		return decodeUTF16(b)
	}
	if b, ok := s.streams[uint32(id)<<16|ptString8]; ok {
		return decode8bit(bytes.TrimRight(b, "\x00"))
	}
	return ""
}

func (s *msgStorage) bin(id uint16) []byte {
	return s.streams[uint32(id)<<16|ptBinary]
}

func (s *msgStorage) long(id uint16) (uint32, bool) {
	b, ok := s.fixed[uint32(id)<<16|ptLong]
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[:4]), true
}

func (s *msgStorage) boolean(id uint16) bool {
	b, ok := s.fixed[uint32(id)<<16|ptBoolean]
	return ok && b[0] != 0
}

func (s *msgStorage) sysTime(id uint16) (time.Time, bool) {
	b, ok := s.fixed[uint32(id)<<16|ptSysTime]
	if !ok {
		return time.Time{}, false
	}
	ft := binary.LittleEndian.Uint64(b)
	if ft == 0 {
		return time.Time{}, false
	}
	// FILETIME counts 100 ns since 1601-01-01; 11644473600 s separate it
	// from the Unix epoch.
	const epochDiff = 116444736000000000
	if ft < epochDiff {
		return time.Time{}, false
	}
	d := ft - epochDiff
	return time.Unix(int64(d/1e7), int64(d%1e7)*100).UTC(), true
}

// parseProps reads the fixed-size entries of a property stream, after a
// header of hdr bytes.
func (s *msgStorage) parseProps(hdr int) {
	b := s.props
	if len(b) < hdr {
		return
	}
	for b = b[hdr:]; len(b) >= 16; b = b[16:] {
		tag := binary.LittleEndian.Uint32(b[:4])
		switch tag & 0xFFFF {
		case ptLong, ptSysTime, ptBoolean:
			v := make([]byte, 8)
			copy(v, b[8:16])
			s.fixed[tag] = v
		}
	}
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.LittleEndian.Uint16(b[i:]))
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	return strings.ToValidUTF8(string(utf16.Decode(u)), "\uFFFD")
}

// decode8bit reads 8-bit text as UTF-8 when it is valid, else as
// Windows-1252.
func decode8bit(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// parseMSG reads an Outlook .msg (a compound file of MAPI properties).
func (a *analyzer) parseMSG(raw []byte, label string) (p *parsed, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%s: read .msg: compound file reader failed: %v", label, r)
		}
	}()
	r, err := mscfb.New(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: read .msg: %w", label, err)
	}
	top := newMsgStorage()
	attach := map[string]*msgStorage{}
	recip := map[string]*msgStorage{}
	budget := int64(len(raw)) + 1<<20
	embedded := false
	for _, f := range r.File {
		if err := a.check(label); err != nil {
			return nil, err
		}
		if f.FileInfo().IsDir() {
			continue
		}
		var st *msgStorage
		switch {
		case len(f.Path) == 0:
			st = top
		case len(f.Path) == 1 && strings.HasPrefix(f.Path[0], attachPrefix):
			if attach[f.Path[0]] == nil {
				attach[f.Path[0]] = newMsgStorage()
			}
			st = attach[f.Path[0]]
		case len(f.Path) == 1 && strings.HasPrefix(f.Path[0], recipPrefix):
			if recip[f.Path[0]] == nil {
				recip[f.Path[0]] = newMsgStorage()
			}
			st = recip[f.Path[0]]
		default:
			embedded = embedded || strings.HasPrefix(f.Path[0], attachPrefix)
			continue
		}
		var tag uint32
		switch {
		case f.Name == propsStream:
		case strings.HasPrefix(f.Name, substgPrefix) && len(f.Name) == len(substgPrefix)+8:
			if _, err := fmt.Sscanf(f.Name[len(substgPrefix):], "%08X", &tag); err != nil {
				continue
			}
			if !wantedTag(tag) {
				continue
			}
		default:
			continue
		}
		size := min(f.Size, int64(len(raw)))
		if size > budget {
			return nil, fmt.Errorf("%s: read .msg: streams larger than the file: %w", label, ErrTooLarge)
		}
		budget -= size
		data, err := io.ReadAll(io.LimitReader(f, size))
		if err != nil && !errors.Is(err, io.EOF) {
			a.warn("%s: .msg stream %s: %v", label, f.Name, err)
			continue
		}
		if f.Name == propsStream {
			st.props = data
		} else {
			st.streams[tag] = data
		}
	}
	if embedded {
		a.warn("%s: .msg has an embedded Outlook item; it is listed as an attachment but not analysed", label)
	}
	if len(attach)+len(recip)+1 > a.opts.MaxParts-a.parts {
		return nil, fmt.Errorf("%s: .msg has %d attachments and recipients: %w", label, len(attach)+len(recip), ErrTooManyParts)
	}
	a.parts += len(attach) + 1
	top.parseProps(32)
	return a.msgMessage(raw, label, top, recip, attach)
}

func wantedTag(tag uint32) bool {
	switch uint16(tag >> 16) {
	case propSubject, propSentReprName, propSentReprEmail, propTransportHeaders, propSenderName,
		propSenderEmail, propDisplayName, propEmailAddress, propBody, propHTML, propInternetMessageID,
		propAttachData, propAttachFilename, propAttachLongName, propAttachMime, propAttachContentID,
		propSenderSMTP, propSMTPAddress:
		return true
	}
	return false
}

// msgMessage builds the Message of a .msg from its storages.
func (a *analyzer) msgMessage(raw []byte, label string, top *msgStorage, recip, attach map[string]*msgStorage) (*parsed, error) {
	p := &parsed{}
	var m *Message
	if hdrs := top.str(propTransportHeaders); strings.TrimSpace(hdrs) != "" {
		hp, err := a.parseMIME(bytesSource([]byte(strings.TrimRight(hdrs, "\r\n")+"\r\n\r\n")), label+" transport headers")
		if err == nil {
			m, p.header = hp.msg, hp.header
			m.Text, m.HTML, m.Attachments = "", "", nil
		} else if isBound(err) {
			return nil, err
		} else {
			a.warn("%s: unreadable transport headers: %v", label, err)
		}
	}
	if m == nil {
		m = &Message{Auth: Auth{SCL: -1, BCL: -1, PCL: -1}}
	}
	if s := cleanHeaderText(top.str(propSubject)); s != "" {
		m.Subject = truncateRunes(s, maxSubject)
	}
	if m.From.IsZero() {
		m.From = Address{Name: cleanHeaderText(top.str(propSentReprName)), Address: smtpOnly(top.str(propSentReprEmail))}
		if m.From.Address == "" {
			m.From.Address = smtpOnly(top.str(propSenderSMTP))
		}
		if m.From.IsZero() {
			m.From = Address{Name: cleanHeaderText(top.str(propSenderName)), Address: smtpOnly(top.str(propSenderEmail))}
		}
	}
	if m.Sender.IsZero() {
		sender := Address{Name: cleanHeaderText(top.str(propSenderName)), Address: smtpOnly(top.str(propSenderSMTP))}
		if sender.Address == "" {
			sender.Address = smtpOnly(top.str(propSenderEmail))
		}
		if sender != m.From {
			m.Sender = sender
		}
	}
	if m.MessageID == "" {
		m.MessageID = cleanHeaderText(top.str(propInternetMessageID))
	}
	if m.Date.IsZero() {
		if t, ok := top.sysTime(propClientSubmitTime); ok {
			m.Date = t
		}
	}
	if len(m.To) == 0 && len(m.CC) == 0 {
		for _, key := range sortedStorageKeys(recip) {
			st := recip[key]
			st.parseProps(8)
			addr := Address{Name: cleanHeaderText(st.str(propDisplayName)), Address: smtpOnly(st.str(propSMTPAddress))}
			if addr.Address == "" {
				addr.Address = smtpOnly(st.str(propEmailAddress))
			}
			switch kind, _ := st.long(propRecipientType); kind {
			case 2:
				m.CC = append(m.CC, addr)
			case 3: // Bcc is not shown.
			default:
				m.To = append(m.To, addr)
			}
		}
	}
	m.Text = top.str(propBody)
	if b := top.bin(propHTML); len(b) > 0 {
		m.HTML = decode8bit(bytes.TrimRight(b, "\x00"))
	} else {
		m.HTML = top.str(propHTML)
	}
	a.scanBodies(m, label)
	for _, key := range sortedStorageKeys(attach) {
		st := attach[key]
		data := st.bin(propAttachData)
		name := cleanFileName(st.str(propAttachLongName))
		if name == "" {
			name = cleanFileName(st.str(propAttachFilename))
		}
		if name == "" {
			name = cleanFileName(st.str(propDisplayName))
		}
		ct := strings.ToLower(strings.TrimSpace(st.str(propAttachMime)))
		if ct == "" {
			ct = "application/octet-stream"
		}
		kind := emailKind(ct, name, data)
		if name == "" {
			name = defaultName(ct, kind)
		}
		att := newAttachment(name, ct, data)
		att.IsEmail = kind != ""
		if att.IsEmail {
			att.Kind = KindEmail
		}
		st.parseProps(8)
		disposition := ""
		if st.boolean(propAttachmentHidden) {
			disposition = "inline"
		}
		att.Inline = isInline(att.Kind, disposition, st.str(propAttachContentID))
		m.Attachments = append(m.Attachments, att)
		if kind != "" {
			p.emails = append(p.emails, attached{name: name, kind: kind, raw: data})
		}
	}
	m.Raw = raw
	p.msg = m
	return p, nil
}

// smtpOnly returns s lower-cased when it is an SMTP address; Exchange
// addresses ("/O=EXCHANGELABS/...") give "".
func smtpOnly(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "@") || strings.HasPrefix(s, "/") {
		return ""
	}
	return strings.ToLower(s)
}

func sortedStorageKeys(m map[string]*msgStorage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
