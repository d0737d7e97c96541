package graphsim

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Access is what the application may do in one mailbox, as granted by its
// application permissions and any application access policy: one of the
// levels AccessReadWrite, AccessRead and AccessNone, optionally combined
// with the flag AccessNoSend.
type Access int

const (
	// AccessReadWrite is Mail.ReadWrite: read, categorize, move. The default.
	AccessReadWrite Access = iota
	// AccessRead is Mail.Read: reads and subscriptions only.
	AccessRead
	// AccessNone denies every call on the mailbox (no consent, or an
	// application access policy excluding it), sendMail included.
	AccessNone
)

// AccessNoSend withholds Mail.Send, which is granted by default. Combined
// with a level (AccessRead|AccessNoSend), the mailbox stays readable while
// POST /users/{id}/sendMail answers 403 ErrorAccessDenied, as Graph does
// for an application without the Mail.Send application permission
// (learn.microsoft.com/graph/api/user-sendmail, "Permissions").
const AccessNoSend Access = 1 << 8

// level is the read/write level without the Mail.Send flag.
func (a Access) level() Access { return a &^ AccessNoSend }

// canSend reports whether sendMail is allowed: Mail.Send is granted and no
// access policy excludes the mailbox.
func (a Access) canSend() bool { return a&AccessNoSend == 0 && a.level() != AccessNone }

// Well-known folder names the simulator creates in every mailbox.
var wellKnownFolders = []struct{ wk, name string }{
	{"inbox", "Inbox"},
	{"archive", "Archive"},
	{"deleteditems", "Deleted Items"},
	{"junkemail", "Junk Email"},
	{"sentitems", "Sent Items"},
	{"drafts", "Drafts"},
}

type mailbox struct {
	id          string
	upn         string
	displayName string
	access      Access
	folders     []*folder
	byID        map[string]*message // immutable id and current REST id
	changes     []change
}

type folder struct {
	id        string
	name      string
	wellKnown string
}

type message struct {
	immutableID  string
	restID       string
	folderID     string
	mime         []byte
	view         *mimeView
	received     time.Time
	lastModified time.Time
	categories   []string
	isRead       bool
	changeKey    string
	attachIDs    []string
}

// change is one entry of a mailbox's change log, read by delta queries.
type change struct {
	seq      int64
	folderID string
	msg      *message
	removed  bool
	// restID is the REST id the message had in folderID at that moment.
	restID string
}

// Message is the control view of a stored message.
type Message struct {
	// ID is the current REST id; it changes when the message moves.
	ID string
	// ImmutableID never changes.
	ImmutableID string
	// FolderID is the id of the folder holding the message.
	FolderID string
	// MIME is the raw message exactly as delivered.
	MIME []byte
	// Categories are the Outlook categories set on the message.
	Categories []string
	// ReceivedAt is when the message was delivered.
	ReceivedAt time.Time
}

// ErrNotFound is returned by control methods for an unknown mailbox,
// folder or message.
var ErrNotFound = errors.New("graphsim: not found")

// AddMailbox creates a mailbox with the standard folders and returns its
// user id. Adding an existing UPN returns the existing id.
func (s *Server) AddMailbox(upn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(strings.TrimSpace(upn))
	if mb, ok := s.mailboxes[key]; ok {
		return mb.id
	}
	mb := &mailbox{id: newGUID(), upn: strings.TrimSpace(upn), byID: map[string]*message{}}
	mb.displayName, _, _ = strings.Cut(mb.upn, "@")
	for _, wk := range wellKnownFolders {
		mb.folders = append(mb.folders, &folder{id: newItemID("AAMkADFolder", 33), name: wk.name, wellKnown: wk.wk})
	}
	s.mailboxes[key] = mb
	s.mailboxes[strings.ToLower(mb.id)] = mb
	s.boxList = append(s.boxList, mb)
	return mb.id
}

// AddFolder creates a top-level folder and returns its id. An existing
// folder of that name (or well-known name) is returned instead.
func (s *Server) AddFolder(mailboxName, displayName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		return "", fmt.Errorf("add folder to %s: %w", mailboxName, ErrNotFound)
	}
	if f := mb.folderByNameOrID(displayName); f != nil {
		return f.id, nil
	}
	f := &folder{id: newItemID("AAMkADFolder", 33), name: displayName}
	mb.folders = append(mb.folders, f)
	return f.id, nil
}

// FolderID resolves a folder id, well-known name or display name.
func (s *Server) FolderID(mailboxName, folderName string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		return "", fmt.Errorf("folder %s of %s: %w", folderName, mailboxName, ErrNotFound)
	}
	f := mb.folderByNameOrID(folderName)
	if f == nil {
		return "", fmt.Errorf("folder %s of %s: %w", folderName, mailboxName, ErrNotFound)
	}
	return f.id, nil
}

// SetAccess sets what the application may do in a mailbox, for example
// AccessRead, or AccessReadWrite|AccessNoSend to take Mail.Send away.
func (s *Server) SetAccess(mailboxName string, a Access) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		return fmt.Errorf("set access on %s: %w", mailboxName, ErrNotFound)
	}
	mb.access = a
	return nil
}

// Message returns a stored message by REST or immutable id.
func (s *Server) Message(mailboxName, id string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		return Message{}, fmt.Errorf("message %s: mailbox %s: %w", id, mailboxName, ErrNotFound)
	}
	m := mb.byID[id]
	if m == nil {
		return Message{}, fmt.Errorf("message %s in %s: %w", id, mailboxName, ErrNotFound)
	}
	return Message{ID: m.restID, ImmutableID: m.immutableID, FolderID: m.folderID,
		MIME: append([]byte(nil), m.mime...), Categories: append([]string(nil), m.categories...), ReceivedAt: m.received}, nil
}

// MoveMessage moves a message as a user would in Outlook: it gets a new REST
// id, keeps its immutable id, and notifications go out as for a Graph move.
func (s *Server) MoveMessage(mailboxName, id, folderName string) (newID string, err error) {
	s.mu.Lock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("move %s: mailbox %s: %w", id, mailboxName, ErrNotFound)
	}
	m := mb.byID[id]
	dst := mb.folderByNameOrID(folderName)
	if m == nil || dst == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("move %s to %s: %w", id, folderName, ErrNotFound)
	}
	notes := s.moveLocked(mb, m, dst)
	newID = m.restID
	s.mu.Unlock()
	s.dispatch(notes)
	return newID, nil
}

// RemoveMessage deletes a message for good (as after emptying Deleted
// Items): both its ids answer 404 afterwards.
func (s *Server) RemoveMessage(mailboxName, id string) error {
	s.mu.Lock()
	mb := s.mailboxLocked(mailboxName)
	if mb == nil {
		s.mu.Unlock()
		return fmt.Errorf("remove %s: mailbox %s: %w", id, mailboxName, ErrNotFound)
	}
	m := mb.byID[id]
	if m == nil {
		s.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrNotFound)
	}
	delete(mb.byID, m.immutableID)
	delete(mb.byID, m.restID)
	s.recordChangeLocked(mb, change{folderID: m.folderID, msg: m, removed: true, restID: m.restID})
	notes := s.notificationsLocked(mb, m, m.folderID, "deleted")
	s.mu.Unlock()
	s.dispatch(notes)
	return nil
}

// mailboxLocked finds a mailbox by UPN or user id; s.mu must be held.
func (s *Server) mailboxLocked(name string) *mailbox {
	return s.mailboxes[strings.ToLower(strings.TrimSpace(name))]
}

func (mb *mailbox) folderByNameOrID(name string) *folder {
	for _, f := range mb.folders {
		if f.id == name {
			return f
		}
	}
	for _, f := range mb.folders {
		if strings.EqualFold(f.wellKnown, name) && f.wellKnown != "" {
			return f
		}
	}
	for _, f := range mb.folders {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

// folderByIDOrWellKnown is Graph's own lookup: ids and well-known names only.
func (mb *mailbox) folderByIDOrWellKnown(name string) *folder {
	for _, f := range mb.folders {
		if f.id == name || (f.wellKnown != "" && strings.EqualFold(f.wellKnown, name)) {
			return f
		}
	}
	return nil
}

func (s *Server) recordChangeLocked(mb *mailbox, c change) {
	s.seq++
	c.seq = s.seq
	mb.changes = append(mb.changes, c)
}

// moveLocked moves m to dst and returns the notifications to send.
func (s *Server) moveLocked(mb *mailbox, m *message, dst *folder) []pendingNote {
	if m.folderID == dst.id {
		return nil
	}
	src := m.folderID
	oldREST := m.restID
	s.recordChangeLocked(mb, change{folderID: src, msg: m, removed: true, restID: oldREST})
	notes := s.notificationsLocked(mb, m, src, "deleted")
	delete(mb.byID, oldREST)
	m.restID = newItemID("AAMkAD", 114)
	m.folderID = dst.id
	m.lastModified = s.nowLocked()
	m.changeKey = newItemID("CQAAABYAAAD", 12)
	mb.byID[m.restID] = m
	s.recordChangeLocked(mb, change{folderID: dst.id, msg: m, restID: m.restID})
	notes = append(notes, s.notificationsLocked(mb, m, dst.id, "created")...)
	return notes
}

// DeliverItem is one message for DeliverBatch.
type DeliverItem struct {
	// Mailbox is the recipient mailbox's UPN or user id.
	Mailbox string
	// Folder is a folder id, well-known name or display name; "" means Inbox.
	Folder string
	// MIME is the raw RFC 5322 message.
	MIME []byte
}

// Deliver stores a message in a mailbox folder as mail delivery would and
// notifies matching subscriptions. It returns the message's REST id. The
// notification goes out asynchronously; WaitDelivered waits for it.
func (s *Server) Deliver(mailboxName, folderName string, mime []byte) (string, error) {
	ids, err := s.DeliverBatch([]DeliverItem{{Mailbox: mailboxName, Folder: folderName, MIME: mime}})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// DeliverBatch stores several messages at once; their notifications are
// grouped into one POST per notification URL, as Graph batches them. It
// returns the REST ids in order. Nothing is stored if any item is invalid.
func (s *Server) DeliverBatch(items []DeliverItem) ([]string, error) {
	views := make([]*mimeView, len(items))
	for i, it := range items {
		v, err := parseMIME(it.MIME)
		if err != nil {
			return nil, fmt.Errorf("deliver item %d to %s: %w", i, it.Mailbox, err)
		}
		views[i] = v
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	type target struct {
		mb *mailbox
		f  *folder
	}
	targets := make([]target, len(items))
	for i, it := range items {
		mb := s.mailboxLocked(it.Mailbox)
		if mb == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("deliver item %d: mailbox %s: %w", i, it.Mailbox, ErrNotFound)
		}
		name := it.Folder
		if name == "" {
			name = "inbox"
		}
		f := mb.folderByNameOrID(name)
		if f == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("deliver item %d: folder %s of %s: %w", i, name, it.Mailbox, ErrNotFound)
		}
		targets[i] = target{mb, f}
	}
	ids := make([]string, len(items))
	var notes []pendingNote
	// Graph reports receivedDateTime with whole seconds.
	now := s.nowLocked().Truncate(time.Second)
	for i, it := range items {
		m, n := s.storeLocked(targets[i].mb, targets[i].f, it.MIME, views[i], now)
		notes = append(notes, n...)
		ids[i] = m.restID
	}
	s.mu.Unlock()
	s.dispatch(notes)
	return ids, nil
}

// storeLocked creates a message from raw MIME and its view in folder f,
// records the change for delta queries and returns the notifications to
// dispatch once s.mu is released; s.mu must be held.
func (s *Server) storeLocked(mb *mailbox, f *folder, raw []byte, v *mimeView, now time.Time) (*message, []pendingNote) {
	if v.internetMessageID == "" {
		v.internetMessageID = "<" + strings.ReplaceAll(newGUID(), "-", "") + "@graphsim.local>"
		if v.conversationKey == "" {
			v.conversationKey = v.internetMessageID
		}
	}
	m := &message{
		immutableID:  newItemID("AAkALgAAAAAAHYQDEapmEc2byACqAC", 90),
		restID:       newItemID("AAMkAD", 114),
		folderID:     f.id,
		mime:         append([]byte(nil), raw...),
		view:         v,
		received:     now,
		lastModified: now,
		changeKey:    newItemID("CQAAABYAAAD", 12),
	}
	for range v.attachments {
		m.attachIDs = append(m.attachIDs, newItemID("AAMkADAtt", 60))
	}
	mb.byID[m.immutableID] = m
	mb.byID[m.restID] = m
	s.recordChangeLocked(mb, change{folderID: m.folderID, msg: m, restID: m.restID})
	return m, s.notificationsLocked(mb, m, m.folderID, "created")
}
