package subscriptionstest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// MaxExpiry is the longest lifetime the fake Graph grants, as live Graph:
// 10,070 minutes.
const MaxExpiry = 10070 * time.Minute

// ErrConflict is returned by CreateSubscription when a live subscription
// already watches the same resource (Graph's 409).
var ErrConflict = errors.New("subscription already exists for the requested combination")

// Graph is an in-memory subscriptions.Graph. Subscriptions expire on the
// clock; messages delivered to a folder are announced to the Notify
// callback while a live subscription watches it and notifications are not
// being dropped; the folder's delta query returns them.
type Graph struct {
	clock interface{ Now() time.Time }

	mu       sync.Mutex
	subs     map[string]*subscriptions.Subscription
	nextID   int
	folders  map[string][]message // by lower-case "mailbox/folder"
	seq      int
	epoch    int // delta links of earlier epochs have expired
	pageSize int
	dropping bool
	notify   func(mailbox, id string)
	fail     map[string]error
	sticky   map[string]error
	calls    map[string]int
	touches  map[string][]time.Time // renewals and reauthorizations by id
}

type message struct {
	id       string
	received time.Time
	seq      int
	removed  bool
}

// NewGraph returns an empty fake Graph on clock.
func NewGraph(clock interface{ Now() time.Time }) *Graph {
	return &Graph{
		clock:    clock,
		subs:     map[string]*subscriptions.Subscription{},
		folders:  map[string][]message{},
		pageSize: 2,
		fail:     map[string]error{},
		sticky:   map[string]error{},
		calls:    map[string]int{},
		touches:  map[string][]time.Time{},
	}
}

// OnNotify sets the function that receives change notifications: the
// mailbox (as the subscription named it) and the message id.
func (g *Graph) OnNotify(fn func(mailbox, id string)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notify = fn
}

// SetDropping makes Graph drop (true) or deliver (false) notifications.
func (g *Graph) SetDropping(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dropping = on
}

// FailNext makes the next call of method (e.g. "RenewSubscription") return
// err.
func (g *Graph) FailNext(method string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail[method] = err
}

// FailAlways makes every call of method return err until it is called with
// a nil err.
func (g *Graph) FailAlways(method string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		delete(g.sticky, method)
		return
	}
	g.sticky[method] = err
}

// call counts a call and returns its injected failure.
func (g *Graph) callLocked(method string) error {
	g.calls[method]++
	if err := g.fail[method]; err != nil {
		delete(g.fail, method)
		return err
	}
	return g.sticky[method]
}

// Calls returns how many times method was called.
func (g *Graph) Calls(method string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[method]
}

// Touches returns when the subscription id was renewed or reauthorized.
func (g *Graph) Touches(id string) []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Time(nil), g.touches[id]...)
}

func (g *Graph) expireLocked() {
	now := g.clock.Now()
	for id, s := range g.subs {
		if !now.Before(s.ExpiresAt) {
			delete(g.subs, id)
		}
	}
}

func resource(mailbox, folder string) string {
	return "users/" + mailbox + "/mailFolders('" + folder + "')/messages"
}

// CreateSubscription creates a subscription after checking it as Graph
// does: known mailbox-folder resource, clientState of at most 128
// characters, expiry within MaxExpiry (raised to 45 minutes), no live
// subscription on the same resource.
func (g *Graph) CreateSubscription(_ context.Context, req subscriptions.Request) (subscriptions.Subscription, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("CreateSubscription"); err != nil {
		return subscriptions.Subscription{}, err
	}
	g.expireLocked()
	now := g.clock.Now()
	switch {
	case req.Mailbox == "" || req.Folder == "":
		return subscriptions.Subscription{}, errors.New("invalid resource")
	case req.NotificationURL == "":
		return subscriptions.Subscription{}, errors.New("notificationUrl is required")
	case len(req.ClientState) > 128:
		return subscriptions.Subscription{}, errors.New("clientState longer than 128 characters")
	case req.ExpiresAt.Sub(now) > MaxExpiry:
		return subscriptions.Subscription{}, fmt.Errorf("subscription expiration can only be %d minutes in the future", int(MaxExpiry/time.Minute))
	}
	res := resource(req.Mailbox, req.Folder)
	for _, s := range g.subs {
		if strings.EqualFold(s.Resource, res) {
			return subscriptions.Subscription{}, fmt.Errorf("subscription id %s: %w", s.ID, ErrConflict)
		}
	}
	exp := req.ExpiresAt
	if exp.Sub(now) < subscriptions.MinLifetime {
		exp = now.Add(subscriptions.MinLifetime)
	}
	g.nextID++
	s := &subscriptions.Subscription{
		ID: "sub-" + strconv.Itoa(g.nextID), Resource: res, ChangeType: "created",
		NotificationURL: req.NotificationURL, LifecycleNotificationURL: req.LifecycleNotificationURL,
		ClientState: req.ClientState, ExpiresAt: exp,
	}
	g.subs[s.ID] = s
	return *s, nil
}

// RenewSubscription moves a live subscription's expiry; ErrNotFound for an
// unknown or expired one.
func (g *Graph) RenewSubscription(_ context.Context, id string, expiresAt time.Time) (subscriptions.Subscription, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("RenewSubscription"); err != nil {
		return subscriptions.Subscription{}, err
	}
	g.expireLocked()
	s, ok := g.subs[id]
	if !ok {
		return subscriptions.Subscription{}, fmt.Errorf("renew %s: %w", id, subscriptions.ErrNotFound)
	}
	now := g.clock.Now()
	if expiresAt.Sub(now) > MaxExpiry {
		return subscriptions.Subscription{}, fmt.Errorf("subscription expiration can only be %d minutes in the future", int(MaxExpiry/time.Minute))
	}
	s.ExpiresAt = expiresAt
	g.touches[id] = append(g.touches[id], now)
	out := *s
	out.ClientState = ""
	return out, nil
}

// ReauthorizeSubscription reauthorizes a live subscription; ErrNotFound for
// an unknown or expired one.
func (g *Graph) ReauthorizeSubscription(_ context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("ReauthorizeSubscription"); err != nil {
		return err
	}
	g.expireLocked()
	if _, ok := g.subs[id]; !ok {
		return fmt.Errorf("reauthorize %s: %w", id, subscriptions.ErrNotFound)
	}
	g.touches[id] = append(g.touches[id], g.clock.Now())
	return nil
}

// DeleteSubscription deletes a subscription; ErrNotFound for an unknown one.
func (g *Graph) DeleteSubscription(_ context.Context, id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("DeleteSubscription"); err != nil {
		return err
	}
	g.expireLocked()
	if _, ok := g.subs[id]; !ok {
		return fmt.Errorf("delete %s: %w", id, subscriptions.ErrNotFound)
	}
	delete(g.subs, id)
	return nil
}

// ListSubscriptions lists the live subscriptions by id, without their
// clientState, as Graph does.
func (g *Graph) ListSubscriptions(context.Context) ([]subscriptions.Subscription, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("ListSubscriptions"); err != nil {
		return nil, err
	}
	g.expireLocked()
	return g.listLocked(false), nil
}

func (g *Graph) listLocked(withSecret bool) []subscriptions.Subscription {
	out := make([]subscriptions.Subscription, 0, len(g.subs))
	for _, s := range g.subs {
		c := *s
		if !withSecret {
			c.ClientState = ""
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Subscriptions returns the live subscriptions with their clientState, for
// assertions.
func (g *Graph) Subscriptions() []subscriptions.Subscription {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked()
	return g.listLocked(true)
}

// AddSubscription installs a subscription as if an earlier run had created
// it, and returns its id.
func (g *Graph) AddSubscription(s subscriptions.Subscription) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	if s.ID == "" {
		s.ID = "sub-" + strconv.Itoa(g.nextID)
	}
	g.subs[s.ID] = &s
	return s.ID
}

// Remove deletes a subscription as Graph does before it sends
// subscriptionRemoved.
func (g *Graph) Remove(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.subs, id)
}

// Deliver puts a new message, received now, into a mailbox folder and
// announces it to the Notify callback when a live subscription watches the
// folder and notifications are not dropped. It returns the message id.
func (g *Graph) Deliver(mailbox, folder string) string {
	g.mu.Lock()
	g.expireLocked()
	g.seq++
	key := strings.ToLower(mailbox + "/" + folder)
	id := fmt.Sprintf("msg-%s-%d", strings.ToLower(mailbox), g.seq)
	g.folders[key] = append(g.folders[key], message{id: id, received: g.clock.Now(), seq: g.seq})
	var watched bool
	for _, s := range g.subs {
		if strings.EqualFold(s.Resource, resource(mailbox, folder)) {
			watched = true
		}
	}
	notify := g.notify
	if !watched || g.dropping {
		notify = nil
	}
	g.mu.Unlock()
	if notify != nil {
		notify(mailbox, id)
	}
	return id
}

// RemoveMessage takes a message out of its folder; delta reports it as
// removed.
func (g *Graph) RemoveMessage(mailbox, folder, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := strings.ToLower(mailbox + "/" + folder)
	g.seq++
	for i, m := range g.folders[key] {
		if m.id == id {
			g.folders[key][i].removed = true
			g.folders[key][i].seq = g.seq
		}
	}
}

// ExpireDeltaLinks makes every delta and next link issued so far invalid
// (syncStateNotFound).
func (g *Graph) ExpireDeltaLinks() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.epoch++
}

// SetPageSize sets the number of items per delta page; default 2.
func (g *Graph) SetPageSize(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pageSize = max(n, 1)
}

// Delta pages through the folder's changes. Links have the form
// fake:{epoch}:{after seq}:{upto seq}:{offset}:{since unix ns}; a round
// with link "" covers every message received at or after since.
func (g *Graph) Delta(_ context.Context, mailbox, folder, link string, since time.Time) (subscriptions.DeltaPage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.callLocked("Delta"); err != nil {
		return subscriptions.DeltaPage{}, err
	}
	after, upto, offset := 0, g.seq, 0
	var sinceNS int64
	if !since.IsZero() {
		sinceNS = since.UnixNano()
	}
	if link != "" {
		parts := strings.Split(link, ":")
		if len(parts) != 6 || parts[0] != "fake" {
			return subscriptions.DeltaPage{}, fmt.Errorf("malformed delta link %q", link)
		}
		var n [5]int64
		for i := range n {
			v, err := strconv.ParseInt(parts[i+1], 10, 64)
			if err != nil {
				return subscriptions.DeltaPage{}, fmt.Errorf("malformed delta link %q", link)
			}
			n[i] = v
		}
		if int(n[0]) != g.epoch {
			return subscriptions.DeltaPage{}, fmt.Errorf("delta of %s: syncStateNotFound: %w", mailbox, subscriptions.ErrDeltaExpired)
		}
		after, upto, offset, sinceNS = int(n[1]), int(n[2]), int(n[3]), n[4]
		if offset == -1 { // a delta link: a new round from "after"
			upto, offset = g.seq, 0
		}
	}
	var items []subscriptions.DeltaItem
	for _, m := range g.folders[strings.ToLower(mailbox+"/"+folder)] {
		if m.seq <= after || m.seq > upto {
			continue
		}
		if sinceNS != 0 && m.received.UnixNano() < sinceNS {
			continue
		}
		if m.removed && after == 0 {
			continue
		}
		items = append(items, subscriptions.DeltaItem{ID: m.id, Removed: m.removed, ReceivedAt: m.received})
	}
	page := subscriptions.DeltaPage{}
	end := min(offset+g.pageSize, len(items))
	if offset < len(items) {
		page.Items = items[offset:end]
	}
	if end < len(items) {
		page.NextLink = fmt.Sprintf("fake:%d:%d:%d:%d:%d", g.epoch, after, upto, end, sinceNS)
	} else {
		page.DeltaLink = fmt.Sprintf("fake:%d:%d:%d:%d:%d", g.epoch, upto, upto, -1, 0)
	}
	return page, nil
}
