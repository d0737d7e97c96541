package graph

import "time"

// Subscription is a Graph change-notification subscription.
type Subscription struct {
	ID                       string
	Resource                 string
	ChangeType               string
	NotificationURL          string
	LifecycleNotificationURL string
	// ClientState is only known on creation: Graph returns null afterwards.
	ClientState string
	ExpiresAt   time.Time
}

// SubscriptionRequest asks for "created" notifications on one mailbox folder.
type SubscriptionRequest struct {
	// Mailbox is the user id or UPN.
	Mailbox string
	// Folder is a folder id or a well-known name such as "inbox".
	Folder                   string
	NotificationURL          string
	LifecycleNotificationURL string
	// ClientState is the per-subscription secret echoed in every
	// notification; at most 128 characters.
	ClientState string
	ExpiresAt   time.Time
}

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

// Message is a fetched message: its metadata and its raw MIME.
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
	// MIME is the message exactly as Graph's $value returned it.
	MIME []byte
}

// DeltaItem is one entry of a delta page.
type DeltaItem struct {
	ID string
	// Removed is true for an "@removed" entry: the message left the folder.
	Removed    bool
	ReceivedAt time.Time
}

// DeltaPage is one page of a folder delta query. Exactly one of NextLink
// (more pages follow) and DeltaLink (the round is complete; keep it for the
// next round) is set.
type DeltaPage struct {
	Items     []DeltaItem
	NextLink  string
	DeltaLink string
}
