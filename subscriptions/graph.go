package subscriptions

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is what a Graph implementation returns (wrapped or not) when
// the subscription it was asked about does not exist any more: expired,
// removed or deleted. The Manager then creates a new one.
var ErrNotFound = errors.New("subscription not found")

// ErrDeltaExpired is what a Graph implementation returns (wrapped or not)
// from Delta when the delta or next link is no longer valid
// (syncStateNotFound, or 410 Gone). The Manager then starts a bounded full
// round.
var ErrDeltaExpired = errors.New("delta link expired")

// Subscription is a change-notification subscription as Graph reports it.
type Subscription struct {
	// ID is Graph's subscription id.
	ID string
	// Resource is the watched resource, such as
	// users/phish@contoso.com/mailFolders('Inbox')/messages.
	Resource string
	// ChangeType is the comma-separated list of change types.
	ChangeType string
	// NotificationURL receives the change notifications.
	NotificationURL string
	// LifecycleNotificationURL receives the lifecycle events.
	LifecycleNotificationURL string
	// ClientState is only known on creation: Graph never returns it later.
	ClientState string
	// ExpiresAt is when Graph stops the subscription unless it is renewed.
	ExpiresAt time.Time
}

// Request asks Graph for "created" notifications on one mailbox folder,
// with immutable message ids.
type Request struct {
	// Mailbox is the user id or UPN.
	Mailbox string
	// Folder is a folder id or a well-known name such as Inbox.
	Folder string
	// NotificationURL receives the change notifications.
	NotificationURL string
	// LifecycleNotificationURL receives the lifecycle events.
	LifecycleNotificationURL string
	// ClientState is the per-subscription secret echoed in every
	// notification; at most 128 characters.
	ClientState string
	// ExpiresAt is the requested expiry.
	ExpiresAt time.Time
}

// DeltaItem is one entry of a delta page.
type DeltaItem struct {
	// ID is the message's immutable id.
	ID string
	// Removed is true for an "@removed" entry: the message left the folder.
	Removed bool
	// ReceivedAt is the message's receivedDateTime, zero when unknown.
	ReceivedAt time.Time
}

// DeltaPage is one page of a folder delta query. NextLink is set when more
// pages follow; DeltaLink is set on the last page of a round.
type DeltaPage struct {
	// Items are the page's messages.
	Items []DeltaItem
	// NextLink continues the round.
	NextLink string
	// DeltaLink starts the next round, from where this one ended.
	DeltaLink string
}

// Graph is the part of Microsoft Graph the Manager uses. Implementations
// must return errors that wrap ErrNotFound and ErrDeltaExpired where their
// documentation below says so; any other error is treated as temporary and
// retried with backoff.
type Graph interface {
	// CreateSubscription creates a subscription (POST /subscriptions),
	// asking for immutable ids. Graph runs the validation handshake against
	// both URLs before it answers.
	CreateSubscription(ctx context.Context, req Request) (Subscription, error)
	// RenewSubscription moves a subscription's expiry (PATCH); ErrNotFound
	// when Graph answers 404.
	RenewSubscription(ctx context.Context, id string, expiresAt time.Time) (Subscription, error)
	// ReauthorizeSubscription reauthorizes a subscription (POST
	// /subscriptions/{id}/reauthorize); ErrNotFound when Graph answers 404.
	ReauthorizeSubscription(ctx context.Context, id string) error
	// DeleteSubscription deletes a subscription; ErrNotFound when Graph
	// answers 404.
	DeleteSubscription(ctx context.Context, id string) error
	// ListSubscriptions lists the application's subscriptions, every page.
	ListSubscriptions(ctx context.Context) ([]Subscription, error)
	// Delta reads one page of a folder's delta query. With link == "" it
	// starts a round limited to messages received at or after since (all
	// messages when since is zero); otherwise link is a NextLink or
	// DeltaLink of an earlier page. ErrDeltaExpired when the link expired.
	Delta(ctx context.Context, mailbox, folder, link string, since time.Time) (DeltaPage, error)
}
