package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	sdksubscriptions "github.com/microsoftgraph/msgraph-sdk-go/subscriptions"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// The Client is the subscriptions manager's Graph: the calls below and
// Delta take and return the manager's own types.
var _ subscriptions.Graph = (*Client)(nil)

// maxListPages bounds how many pages ListSubscriptions follows.
const maxListPages = 1000

// subscriptionsBuilder addresses POST and GET /subscriptions, or a
// nextLink as it came when link is set.
func (c *Client) subscriptionsBuilder(link string) *sdksubscriptions.SubscriptionsRequestBuilder {
	if link != "" {
		return sdksubscriptions.NewSubscriptionsRequestBuilder(link, c.adapter)
	}
	return sdksubscriptions.NewSubscriptionsRequestBuilderInternal(map[string]string{}, c.adapter)
}

// subscriptionBuilder addresses PATCH and DELETE /subscriptions/{id}.
func (c *Client) subscriptionBuilder(id string) *sdksubscriptions.SubscriptionItemRequestBuilder {
	return sdksubscriptions.NewSubscriptionItemRequestBuilderInternal(map[string]string{keySubscription: id}, c.adapter)
}

// reauthorizeBuilder addresses POST /subscriptions/{id}/reauthorize.
func (c *Client) reauthorizeBuilder(id string) *sdksubscriptions.ItemReauthorizeRequestBuilder {
	return sdksubscriptions.NewItemReauthorizeRequestBuilderInternal(map[string]string{keySubscription: id}, c.adapter)
}

// marked is an error that also matches a sentinel of package
// subscriptions, with the text of the error it marks.
type marked struct {
	err, sentinel error
}

func (e *marked) Error() string   { return e.err.Error() }
func (e *marked) Unwrap() []error { return []error{e.err, e.sentinel} }

// mark makes err, a *Error, also match sentinel with errors.Is. It stays a
// *Error of the same class and text, so Decide and ClassOf read it as
// before.
func mark(err error, sentinel error) error {
	var ge *Error
	if !errors.As(err, &ge) {
		return err
	}
	if ge.Err == nil {
		ge.Err = sentinel
	} else {
		ge.Err = &marked{err: ge.Err, sentinel: sentinel}
	}
	return err
}

// subscriptionGone marks the failure of a call on one subscription as
// subscriptions.ErrNotFound when Graph answered 404. For subscriptions the
// status alone decides: Graph answers 404 also with codes that elsewhere
// mean a permission problem (ExtensionError), so such an error keeps
// ClassPermission and yet means the subscription is gone.
func subscriptionGone(err error) error {
	var ge *Error
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return mark(err, subscriptions.ErrNotFound)
	}
	return err
}

// immutableIDHeaders asks Graph for immutable ids.
func immutableIDHeaders() *abstractions.RequestHeaders {
	h := abstractions.NewRequestHeaders()
	h.Add("Prefer", `IdType="ImmutableId"`)
	return h
}

// CreateSubscription subscribes to messages created in one mailbox folder,
// with immutable ids in notifications, TLS 1.2 and the lifecycle URL. Graph
// validates both URLs before it answers.
func (c *Client) CreateSubscription(ctx context.Context, req subscriptions.Request) (subscriptions.Subscription, error) {
	op := fmt.Sprintf("create subscription on %s/%s", req.Mailbox, req.Folder)
	if err := checkSegment("mailbox", req.Mailbox); err != nil {
		return subscriptions.Subscription{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if err := checkSegment("folder", req.Folder); err != nil {
		return subscriptions.Subscription{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	if len([]rune(req.ClientState)) > 128 {
		err := errors.New("clientState is longer than 128 characters")
		return subscriptions.Subscription{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	s := models.NewSubscription()
	s.SetChangeType(ptr("created"))
	s.SetNotificationUrl(ptr(req.NotificationURL))
	if req.LifecycleNotificationURL != "" {
		s.SetLifecycleNotificationUrl(ptr(req.LifecycleNotificationURL))
	}
	s.SetResource(ptr(fmt.Sprintf("users/%s/mailFolders('%s')/messages", req.Mailbox, req.Folder)))
	exp := req.ExpiresAt.UTC()
	s.SetExpirationDateTime(&exp)
	if req.ClientState != "" {
		s.SetClientState(ptr(req.ClientState))
	}
	tls := "v1_2"
	s.SetLatestSupportedTlsVersion(&tls)
	st := &callState{}
	out, err := c.subscriptionsBuilder("").Post(withCall(ctx, st), s, &sdksubscriptions.SubscriptionsRequestBuilderPostRequestConfiguration{
		Headers: immutableIDHeaders(),
	})
	if err != nil {
		return subscriptions.Subscription{}, c.wrap(op, req.Mailbox, st, err)
	}
	sub := toSubscription(out)
	if sub.ClientState == "" {
		sub.ClientState = req.ClientState
	}
	c.log.Debug().Str("subscription", sub.ID).Str("resource", sub.Resource).Time("expires", sub.ExpiresAt).Msg("subscription created")
	return sub, nil
}

// RenewSubscription moves a subscription's expiry; this also reauthorizes
// it. An error that matches subscriptions.ErrNotFound (Graph answered 404)
// means it is gone and must be created again.
func (c *Client) RenewSubscription(ctx context.Context, id string, expiresAt time.Time) (subscriptions.Subscription, error) {
	op := "renew subscription " + id
	if err := checkID("subscription", id); err != nil {
		return subscriptions.Subscription{}, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	s := models.NewSubscription()
	exp := expiresAt.UTC()
	s.SetExpirationDateTime(&exp)
	st := &callState{}
	out, err := c.subscriptionBuilder(id).Patch(withCall(ctx, st), s, nil)
	if err != nil {
		return subscriptions.Subscription{}, subscriptionGone(c.wrap(op, "", st, err))
	}
	return toSubscription(out), nil
}

// ReauthorizeSubscription answers a reauthorizationRequired lifecycle
// event. An error that matches subscriptions.ErrNotFound (Graph answered
// 404) means the subscription is gone.
func (c *Client) ReauthorizeSubscription(ctx context.Context, id string) error {
	op := "reauthorize subscription " + id
	if err := checkID("subscription", id); err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	st := &callState{}
	err := c.reauthorizeBuilder(id).Post(withCall(ctx, st), nil)
	return subscriptionGone(c.wrap(op, "", st, err))
}

// DeleteSubscription deletes a subscription. Deleting one that is already
// gone returns an error that matches subscriptions.ErrNotFound.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	op := "delete subscription " + id
	if err := checkID("subscription", id); err != nil {
		return &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	st := &callState{}
	err := c.subscriptionBuilder(id).Delete(withCall(ctx, st), nil)
	return subscriptionGone(c.wrap(op, "", st, err))
}

// ListSubscriptions returns every active subscription of this application,
// following nextLinks. ClientState is always empty: Graph does not return it.
func (c *Client) ListSubscriptions(ctx context.Context) ([]subscriptions.Subscription, error) {
	const op = "list subscriptions"
	st := &callState{}
	ctx = withCall(ctx, st)
	resp, err := c.subscriptionsBuilder("").Get(ctx, nil)
	var out []subscriptions.Subscription
	for page := 0; ; page++ {
		if err != nil {
			return nil, c.wrap(op, "", st, err)
		}
		for _, s := range resp.GetValue() {
			out = append(out, toSubscription(s))
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		if page >= maxListPages {
			return nil, &Error{Op: op, Class: ClassPermanent, Message: fmt.Sprintf("more than %d pages of subscriptions", maxListPages)}
		}
		if err := c.checkLink(*next); err != nil {
			return nil, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
		}
		resp, err = c.subscriptionsBuilder(*next).Get(ctx, nil)
	}
}

// toSubscription reads the subscription Graph returned.
func toSubscription(s models.Subscriptionable) subscriptions.Subscription {
	if s == nil {
		return subscriptions.Subscription{}
	}
	out := subscriptions.Subscription{
		ID:                       deref(s.GetId()),
		Resource:                 deref(s.GetResource()),
		ChangeType:               deref(s.GetChangeType()),
		NotificationURL:          deref(s.GetNotificationUrl()),
		LifecycleNotificationURL: deref(s.GetLifecycleNotificationUrl()),
		ClientState:              deref(s.GetClientState()),
	}
	if t := s.GetExpirationDateTime(); t != nil {
		out.ExpiresAt = t.UTC()
	}
	return out
}

// checkSegment rejects values that would change the resource path.
func checkSegment(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsAny(v, "/'?#\\ \t\r\n") {
		return fmt.Errorf("%s %q contains characters not allowed in a Graph resource path", what, v)
	}
	return nil
}

// checkLink refuses to follow a paging link to any other place than the
// configured Graph endpoint.
func (c *Client) checkLink(link string) error {
	if !strings.HasPrefix(link, c.baseURL+"/") {
		return fmt.Errorf("link %q does not point at %s", clip.String(link, 120), c.baseURL)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
