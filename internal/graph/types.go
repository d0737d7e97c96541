package graph

import "time"

// EmailAddress is a name and an SMTP address.
type EmailAddress struct {
	Name    string
	Address string
}

// Header is one internet message header as Graph reports it.
type Header struct {
	Name  string
	Value string
}

// Message is a fetched message's metadata; its raw MIME went to the writer
// FetchMessage was given.
type Message struct {
	ID                string
	InternetMessageID string
	Subject           string
	ConversationID    string
	WebLink           string
	ParentFolderID    string
	From, Sender      EmailAddress
	To, CC            []EmailAddress
	ReceivedAt        time.Time
	SentAt            time.Time
	HasAttachments    bool
	Categories        []string
	Headers           []Header
	// Size is the number of MIME bytes written.
	Size int64
}
