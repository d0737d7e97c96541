package graph

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// messageSelect is the $select of FetchMessage: internetMessageHeaders only
// come back when selected.
var messageSelect = []string{
	"id", "internetMessageId", "subject", "conversationId", "webLink", "parentFolderId",
	"from", "sender", "toRecipients", "ccRecipients", "receivedDateTime", "sentDateTime",
	"hasAttachments", "categories", "internetMessageHeaders",
}

// deltaPageSize is the Prefer: odata.maxpagesize of delta queries.
const deltaPageSize = 50

// Keys of the path parameters in the SDK's URL templates, such as
// "{+baseurl}/users/{user%2Did}/messages/{message%2Did}". They are internals
// of the msgraph-sdk-go version pinned in go.mod;
// TestRequestURLsMatchGraphAndSimulator fails when an upgrade changes a
// template or a key.
const (
	keyUser         = "user%2Did"
	keyMessage      = "message%2Did"
	keyMailFolder   = "mailFolder%2Did"
	keySubscription = "subscription%2Did"
)

// The request builders are made straight from the request adapter, one per
// call, never reached through the SDK's root client.

// messageBuilder addresses GET and PATCH /users/{mailbox}/messages/{id}.
func (c *Client) messageBuilder(mailbox, id string) *users.ItemMessagesMessageItemRequestBuilder {
	return users.NewItemMessagesMessageItemRequestBuilderInternal(map[string]string{keyUser: mailbox, keyMessage: id}, c.adapter)
}

// mimeBuilder addresses GET /users/{mailbox}/messages/{id}/$value.
func (c *Client) mimeBuilder(mailbox, id string) *users.ItemMessagesItemValueContentRequestBuilder {
	return users.NewItemMessagesItemValueContentRequestBuilderInternal(map[string]string{keyUser: mailbox, keyMessage: id}, c.adapter)
}

// moveBuilder addresses POST /users/{mailbox}/messages/{id}/move.
func (c *Client) moveBuilder(mailbox, id string) *users.ItemMessagesItemMoveRequestBuilder {
	return users.NewItemMessagesItemMoveRequestBuilderInternal(map[string]string{keyUser: mailbox, keyMessage: id}, c.adapter)
}

// deltaBuilder addresses GET
// /users/{mailbox}/mailFolders/{folder}/messages/delta(), or a nextLink or
// deltaLink as it came when link is set.
func (c *Client) deltaBuilder(mailbox, folder, link string) *users.ItemMailFoldersItemMessagesDeltaRequestBuilder {
	if link != "" {
		return users.NewItemMailFoldersItemMessagesDeltaRequestBuilder(link, c.adapter)
	}
	return users.NewItemMailFoldersItemMessagesDeltaRequestBuilderInternal(map[string]string{keyUser: mailbox, keyMailFolder: folder}, c.adapter)
}

// mailFoldersBuilder addresses GET /users/{mailbox}/mailFolders.
func (c *Client) mailFoldersBuilder(mailbox string) *users.ItemMailFoldersRequestBuilder {
	return users.NewItemMailFoldersRequestBuilderInternal(map[string]string{keyUser: mailbox}, c.adapter)
}

// checkID rejects an empty message or subscription id, which would address
// the collection instead of one item.
func checkID(what, id string) error {
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%s id is empty", what)
	}
	return nil
}

// wellKnownFolders are the folder names Graph accepts in place of an id.
var wellKnownFolders = map[string]bool{
	"inbox": true, "archive": true, "deleteditems": true, "junkemail": true, "sentitems": true,
	"drafts": true, "outbox": true, "clutter": true, "conversationhistory": true, "scheduled": true,
	"searchfolders": true, "recoverableitemsdeletions": true, "msgfolderroot": true,
}

// FetchMessage reads a message's metadata ($select) and streams its raw
// MIME ($value, at most Config.MaxMIMEBytes) into mime, so that a large
// message never sits in memory. A ClassNotFound error means the message was
// deleted or moved (with mutable ids) since it was announced. A failure to
// write to mime is returned as a *WriteError, not as a Graph failure.
func (c *Client) FetchMessage(ctx context.Context, mailbox, id string, mime io.Writer) (*Message, error) {
	op := "fetch message " + id
	if err := checkSegment("mailbox", mailbox); err != nil {
		return nil, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if err := checkID("message", id); err != nil {
		return nil, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	st := &callState{mailbox: mailbox}
	m, err := c.messageBuilder(mailbox, id).Get(withCall(ctx, st), &users.ItemMessagesMessageItemRequestBuilderGetRequestConfiguration{
		Headers:         immutableIDHeaders(),
		QueryParameters: &users.ItemMessagesMessageItemRequestBuilderGetQueryParameters{Select: messageSelect},
	})
	if err != nil {
		return nil, c.wrap(op, mailbox, st, err)
	}
	out := toMessage(m)
	st = &callState{mailbox: mailbox, maxBody: c.maxMIME}
	sink := &countingWriter{w: mime}
	opt := abstractions.NewRequestHandlerOption()
	opt.SetResponseHandler(func(resp any, _ abstractions.ErrorMappings) (any, error) {
		return nil, streamBody(resp, sink)
	})
	_, err = c.mimeBuilder(mailbox, id).Get(withCall(ctx, st), &users.ItemMessagesItemValueContentRequestBuilderGetRequestConfiguration{
		Options: []abstractions.RequestOption{opt},
	})
	if sink.err != nil {
		return nil, &WriteError{Op: op + " MIME", Err: sink.err}
	}
	if err != nil {
		return nil, c.wrap(op+" MIME", mailbox, st, err)
	}
	out.Size = sink.n
	return out, nil
}

// WriteError is a failure to write a message's MIME where the caller asked
// (a full disk, say): Graph answered, the local side failed.
type WriteError struct {
	Op  string
	Err error
}

// Error names the operation and the cause.
func (e *WriteError) Error() string { return e.Op + ": write: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *WriteError) Unwrap() error { return e.Err }

// countingWriter counts what it writes and keeps the first write error, so
// that a local failure is told apart from a failed download.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// streamBody copies a successful response's body to w, or turns a failed
// one into a *statusError. The SDK hands a response handler the raw
// response and does not close it.
func streamBody(resp any, w io.Writer) error {
	r, ok := resp.(*http.Response)
	if !ok || r == nil {
		return fmt.Errorf("no HTTP response (%T)", resp)
	}
	defer func() { _ = r.Body.Close() }()
	if r.StatusCode >= 300 {
		return newStatusError(r)
	}
	_, err := io.Copy(w, r.Body)
	return err
}

func toMessage(m models.Messageable) *Message {
	out := &Message{
		ID:                deref(m.GetId()),
		InternetMessageID: deref(m.GetInternetMessageId()),
		Subject:           deref(m.GetSubject()),
		ConversationID:    deref(m.GetConversationId()),
		WebLink:           deref(m.GetWebLink()),
		ParentFolderID:    deref(m.GetParentFolderId()),
		From:              toAddress(m.GetFrom()),
		Sender:            toAddress(m.GetSender()),
		To:                toAddresses(m.GetToRecipients()),
		CC:                toAddresses(m.GetCcRecipients()),
		HasAttachments:    deref(m.GetHasAttachments()),
		Categories:        m.GetCategories(),
	}
	if t := m.GetReceivedDateTime(); t != nil {
		out.ReceivedAt = t.UTC()
	}
	if t := m.GetSentDateTime(); t != nil {
		out.SentAt = t.UTC()
	}
	for _, h := range m.GetInternetMessageHeaders() {
		if h == nil {
			continue
		}
		out.Headers = append(out.Headers, Header{Name: deref(h.GetName()), Value: deref(h.GetValue())})
	}
	return out
}

func toAddress(r models.Recipientable) EmailAddress {
	if r == nil || r.GetEmailAddress() == nil {
		return EmailAddress{}
	}
	e := r.GetEmailAddress()
	return EmailAddress{Name: deref(e.GetName()), Address: deref(e.GetAddress())}
}

func toAddresses(list []models.Recipientable) []EmailAddress {
	var out []EmailAddress
	for _, r := range list {
		if a := toAddress(r); a != (EmailAddress{}) {
			out = append(out, a)
		}
	}
	return out
}

// Delta reads one page of a folder's delta query. With link == "" it starts
// a new round (only messages received at or after since, when since is not
// zero); otherwise link is a NextLink or DeltaLink from an earlier page.
// When Graph says the delta state is gone (410, 404, or 400
// syncStateNotFound and its kin: ClassNotFound), the error also matches
// subscriptions.ErrDeltaExpired: start again with "".
func (c *Client) Delta(ctx context.Context, mailbox, folder, link string, since time.Time) (subscriptions.DeltaPage, error) {
	op := fmt.Sprintf("delta of %s/%s", mailbox, folder)
	if err := checkSegment("mailbox", mailbox); err != nil {
		return subscriptions.DeltaPage{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if err := checkSegment("folder", folder); err != nil {
		return subscriptions.DeltaPage{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	headers := abstractions.NewRequestHeaders()
	headers.Add("Prefer", `IdType="ImmutableId"`)
	headers.Add("Prefer", fmt.Sprintf("odata.maxpagesize=%d", deltaPageSize))
	cfg := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: headers}
	if link == "" {
		q := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{Select: []string{"id", "receivedDateTime"}}
		if !since.IsZero() {
			q.Filter = ptr("receivedDateTime ge " + since.UTC().Format(time.RFC3339))
		}
		cfg.QueryParameters = q
	} else {
		if err := c.checkLink(link); err != nil {
			return subscriptions.DeltaPage{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
		}
	}
	st := &callState{mailbox: mailbox}
	resp, err := c.deltaBuilder(mailbox, folder, link).GetAsDeltaGetResponse(withCall(ctx, st), cfg)
	if err != nil {
		err = c.wrap(op, mailbox, st, err)
		if ClassOf(err) == ClassNotFound {
			err = mark(err, subscriptions.ErrDeltaExpired)
		}
		return subscriptions.DeltaPage{}, err
	}
	page := subscriptions.DeltaPage{NextLink: deref(resp.GetOdataNextLink()), DeltaLink: deref(resp.GetOdataDeltaLink())}
	for _, m := range resp.GetValue() {
		if m == nil {
			continue
		}
		item := subscriptions.DeltaItem{ID: deref(m.GetId())}
		if _, ok := m.GetAdditionalData()["@removed"]; ok {
			item.Removed = true
		}
		if t := m.GetReceivedDateTime(); t != nil {
			item.ReceivedAt = t.UTC()
		}
		if item.ID != "" {
			page.Items = append(page.Items, item)
		}
	}
	if page.NextLink == "" && page.DeltaLink == "" {
		return subscriptions.DeltaPage{}, &Error{Op: op, Class: ClassTransient, Message: "the delta page has neither a nextLink nor a deltaLink"}
	}
	return page, nil
}

// Categorize replaces a message's Outlook categories (needs Mail.ReadWrite).
func (c *Client) Categorize(ctx context.Context, mailbox, id string, categories []string) error {
	op := "categorize message " + id
	if err := checkSegment("mailbox", mailbox); err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if err := checkID("message", id); err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	m := models.NewMessage()
	m.SetCategories(append([]string{}, categories...))
	st := &callState{mailbox: mailbox}
	_, err := c.messageBuilder(mailbox, id).Patch(withCall(ctx, st), m,
		&users.ItemMessagesMessageItemRequestBuilderPatchRequestConfiguration{Headers: immutableIDHeaders()})
	return c.wrap(op, mailbox, st, err)
}

// Move moves a message to a folder given by id, well-known name or display
// name (top-level folders), and returns the message's id afterwards (the
// same immutable id). Needs Mail.ReadWrite.
func (c *Client) Move(ctx context.Context, mailbox, id, folder string) (string, error) {
	op := fmt.Sprintf("move message %s to %s", id, folder)
	if err := checkSegment("mailbox", mailbox); err != nil {
		return "", &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if err := checkID("message", id); err != nil {
		return "", &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	dest, err := c.resolveFolder(ctx, mailbox, folder)
	if err != nil {
		return "", err
	}
	body := users.NewItemMessagesItemMovePostRequestBody()
	body.SetDestinationId(&dest)
	st := &callState{mailbox: mailbox}
	m, err := c.moveBuilder(mailbox, id).Post(withCall(ctx, st), body,
		&users.ItemMessagesItemMoveRequestBuilderPostRequestConfiguration{Headers: immutableIDHeaders()})
	if err != nil {
		return "", c.wrap(op, mailbox, st, err)
	}
	return deref(m.GetId()), nil
}

// folderCache remembers display name → folder id per mailbox.
type folderCache struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *folderCache) get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	return v, ok
}

func (f *folderCache) put(key, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]string{}
	}
	f.m[key] = id
}

// resolveFolder returns what Graph accepts as destinationId: a well-known
// name as is, a display name looked up among the top-level folders, and
// anything else as a folder id.
func (c *Client) resolveFolder(ctx context.Context, mailbox, folder string) (string, error) {
	op := fmt.Sprintf("resolve folder %s of %s", folder, mailbox)
	if strings.TrimSpace(folder) == "" {
		return "", &Error{Op: op, Class: ClassPermanent, Message: "folder is empty"}
	}
	if wellKnownFolders[strings.ToLower(folder)] {
		return folder, nil
	}
	key := strings.ToLower(mailbox) + "\x00" + strings.ToLower(folder)
	if id, ok := c.folders.get(key); ok {
		return id, nil
	}
	filter := "displayName eq '" + strings.ReplaceAll(folder, "'", "''") + "'"
	st := &callState{mailbox: mailbox}
	resp, err := c.mailFoldersBuilder(mailbox).Get(withCall(ctx, st), &users.ItemMailFoldersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemMailFoldersRequestBuilderGetQueryParameters{Filter: &filter, Select: []string{"id", "displayName"}},
	})
	if err != nil {
		return "", c.wrap(op, mailbox, st, err)
	}
	for _, f := range resp.GetValue() {
		if f != nil && strings.EqualFold(deref(f.GetDisplayName()), folder) && deref(f.GetId()) != "" {
			c.folders.put(key, deref(f.GetId()))
			return deref(f.GetId()), nil
		}
	}
	return folder, nil
}
