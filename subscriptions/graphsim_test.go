package subscriptions_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

// restGraph speaks Graph's REST API with net/http: the six calls the
// Manager makes, mapped to its sentinel errors as the service's Graph
// client maps the SDK's.
type restGraph struct {
	base   string // the simulator's root URL
	client *http.Client
}

type restError struct {
	status int
	code   string
	msg    string
}

func (e *restError) Error() string { return fmt.Sprintf("graph %d %s: %s", e.status, e.code, e.msg) }

func (g *restGraph) do(ctx context.Context, method, rawURL string, body any, prefer ...string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	if !strings.HasPrefix(rawURL, "http") {
		rawURL = g.base + "/v1.0/" + rawURL
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer test-token")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, p := range prefer {
		req.Header.Add("Prefer", p)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(out, &e)
		re := &restError{status: resp.StatusCode, code: e.Error.Code, msg: e.Error.Message}
		return nil, re
	}
	return out, nil
}

type subJSON struct {
	ID                       string  `json:"id"`
	Resource                 string  `json:"resource"`
	ChangeType               string  `json:"changeType"`
	NotificationURL          string  `json:"notificationUrl"`
	LifecycleNotificationURL *string `json:"lifecycleNotificationUrl"`
	ClientState              *string `json:"clientState"`
	ExpirationDateTime       string  `json:"expirationDateTime"`
}

func (s subJSON) toSubscription() (subscriptions.Subscription, error) {
	exp, err := time.Parse(time.RFC3339Nano, s.ExpirationDateTime)
	if err != nil {
		return subscriptions.Subscription{}, fmt.Errorf("expirationDateTime %q: %w", s.ExpirationDateTime, err)
	}
	out := subscriptions.Subscription{ID: s.ID, Resource: s.Resource, ChangeType: s.ChangeType,
		NotificationURL: s.NotificationURL, ExpiresAt: exp}
	if s.LifecycleNotificationURL != nil {
		out.LifecycleNotificationURL = *s.LifecycleNotificationURL
	}
	if s.ClientState != nil {
		out.ClientState = *s.ClientState
	}
	return out, nil
}

func notFound(err error) error {
	var re *restError
	if errors.As(err, &re) && re.status == http.StatusNotFound {
		return fmt.Errorf("%w: %w", subscriptions.ErrNotFound, err)
	}
	return err
}

func (g *restGraph) CreateSubscription(ctx context.Context, r subscriptions.Request) (subscriptions.Subscription, error) {
	body := map[string]any{
		"changeType": "created", "notificationUrl": r.NotificationURL, "lifecycleNotificationUrl": r.LifecycleNotificationURL,
		"resource":           "users/" + r.Mailbox + "/mailFolders('" + r.Folder + "')/messages",
		"expirationDateTime": r.ExpiresAt.UTC().Format(time.RFC3339), "clientState": r.ClientState,
	}
	out, err := g.do(ctx, http.MethodPost, "subscriptions", body, `IdType="ImmutableId"`)
	if err != nil {
		return subscriptions.Subscription{}, err
	}
	var s subJSON
	if err := json.Unmarshal(out, &s); err != nil {
		return subscriptions.Subscription{}, err
	}
	return s.toSubscription()
}

func (g *restGraph) RenewSubscription(ctx context.Context, id string, exp time.Time) (subscriptions.Subscription, error) {
	out, err := g.do(ctx, http.MethodPatch, "subscriptions/"+url.PathEscape(id),
		map[string]string{"expirationDateTime": exp.UTC().Format(time.RFC3339)})
	if err != nil {
		return subscriptions.Subscription{}, notFound(err)
	}
	var s subJSON
	if err := json.Unmarshal(out, &s); err != nil {
		return subscriptions.Subscription{}, err
	}
	return s.toSubscription()
}

func (g *restGraph) ReauthorizeSubscription(ctx context.Context, id string) error {
	_, err := g.do(ctx, http.MethodPost, "subscriptions/"+url.PathEscape(id)+"/reauthorize", nil)
	return notFound(err)
}

func (g *restGraph) DeleteSubscription(ctx context.Context, id string) error {
	_, err := g.do(ctx, http.MethodDelete, "subscriptions/"+url.PathEscape(id), nil)
	return notFound(err)
}

func (g *restGraph) ListSubscriptions(ctx context.Context) ([]subscriptions.Subscription, error) {
	var all []subscriptions.Subscription
	next := "subscriptions"
	for next != "" {
		out, err := g.do(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []subJSON `json:"value"`
			NextLink string    `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(out, &page); err != nil {
			return nil, err
		}
		for _, s := range page.Value {
			sub, err := s.toSubscription()
			if err != nil {
				return nil, err
			}
			all = append(all, sub)
		}
		next = page.NextLink
	}
	return all, nil
}

func (g *restGraph) Delta(ctx context.Context, mailbox, folder, link string, since time.Time) (subscriptions.DeltaPage, error) {
	if link == "" {
		q := url.Values{"$select": {"id,receivedDateTime"}}
		if !since.IsZero() {
			q.Set("$filter", "receivedDateTime ge "+since.UTC().Format(time.RFC3339))
		}
		link = "users/" + url.PathEscape(mailbox) + "/mailFolders/" + url.PathEscape(folder) + "/messages/delta?" + q.Encode()
	}
	out, err := g.do(ctx, http.MethodGet, link, nil, `IdType="ImmutableId"`, "odata.maxpagesize=3")
	var re *restError
	if errors.As(err, &re) && (re.status == http.StatusGone || strings.EqualFold(re.code, "SyncStateNotFound")) {
		return subscriptions.DeltaPage{}, fmt.Errorf("%w: %w", subscriptions.ErrDeltaExpired, err)
	}
	if err != nil {
		return subscriptions.DeltaPage{}, err
	}
	var page struct {
		Value []struct {
			ID       string          `json:"id"`
			Received time.Time       `json:"receivedDateTime"`
			Removed  json.RawMessage `json:"@removed"`
		} `json:"value"`
		NextLink  string `json:"@odata.nextLink"`
		DeltaLink string `json:"@odata.deltaLink"`
	}
	if err := json.Unmarshal(out, &page); err != nil {
		return subscriptions.DeltaPage{}, err
	}
	res := subscriptions.DeltaPage{NextLink: page.NextLink, DeltaLink: page.DeltaLink}
	for _, v := range page.Value {
		res.Items = append(res.Items, subscriptions.DeltaItem{ID: v.ID, Removed: len(v.Removed) > 0, ReceivedAt: v.Received})
	}
	return res, nil
}

// receiver is the webhook side: it answers the validation handshake,
// checks clientState against the store and queues notifications; lifecycle
// events go to a channel for the test to hand to the Manager, as the
// service's lifecycle job does.
type receiver struct {
	store  subscriptions.Store
	queue  *subscriptionstest.Queue
	events chan [2]string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tok, ok := r.URL.Query()["validationToken"]; ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, tok[0])
		return
	}
	var batch struct {
		Value []struct {
			SubscriptionID string `json:"subscriptionId"`
			ClientState    string `json:"clientState"`
			LifecycleEvent string `json:"lifecycleEvent"`
			ResourceData   struct {
				ID string `json:"id"`
			} `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	recs, err := rc.store.Subscriptions(r.Context())
	if err != nil {
		http.Error(w, "store", http.StatusServiceUnavailable)
		return
	}
	for _, n := range batch.Value {
		for _, rec := range recs {
			if rec.ID != n.SubscriptionID || subtle.ConstantTimeCompare([]byte(rec.ClientState), []byte(n.ClientState)) != 1 {
				continue
			}
			if strings.HasSuffix(r.URL.Path, "/lifecycle") {
				rc.events <- [2]string{n.SubscriptionID, n.LifecycleEvent}
			} else {
				rc.queue.Notify(rec.Mailbox, n.ResourceData.ID)
			}
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// simBundle is a bundle whose Graph is the simulator over HTTP.
type simBundle struct {
	*bundle
	sim    *graphsim.Server
	rest   *restGraph
	events chan [2]string
}

func setupSim(t *testing.T, edit func(*subscriptions.Config)) *simBundle {
	t.Helper()
	b := setup(t, edit)
	sim := graphsim.New(graphsim.Options{AllowHTTP: true, AnyBearer: true, Clock: b.clock.Now, Seed: 1, Logger: zerolog.Nop()})
	t.Cleanup(sim.Close)
	gs := httptest.NewServer(sim)
	t.Cleanup(gs.Close)
	s := &simBundle{bundle: b, sim: sim, events: make(chan [2]string, 16)}
	hook := httptest.NewServer(&receiver{store: b.mem, queue: b.queue, events: s.events})
	t.Cleanup(hook.Close)
	s.rest = &restGraph{base: gs.URL, client: &http.Client{Timeout: 15 * time.Second}}
	for _, mb := range append([]string{"removed@contoso.com"}, b.cfg.Mailboxes...) {
		sim.AddMailbox(mb)
	}
	b.cfg.NotificationURL = hook.URL + "/webhooks/graph"
	b.cfg.LifecycleURL = hook.URL + "/webhooks/graph/lifecycle"
	b.cfg.AllowHTTP = true
	s.mgr = s.newSimManager(t, "replica-a")
	return s
}

func (s *simBundle) newSimManager(t *testing.T, holder string) *subscriptions.Manager {
	t.Helper()
	cfg := s.cfg
	cfg.Holder = holder
	m, err := subscriptions.New(cfg, s.rest, s.store, s.queue, subscriptions.Options{Clock: s.clock,
		Logger: slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// deliver puts a message into the simulated mailbox, waits for its
// notification (if any) and returns its immutable id.
func (s *simBundle) deliver(t *testing.T) string {
	t.Helper()
	mime := "From: attacker@example.net\r\nTo: phish@contoso.com\r\nSubject: verify your account\r\n" +
		"Message-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@example.net>\r\n\r\nclick here\r\n"
	id, err := s.sim.Deliver(mailbox, "Inbox", []byte(mime))
	if err != nil {
		t.Fatal(err)
	}
	s.waitDelivered(t)
	m, err := s.sim.Message(mailbox, id)
	if err != nil {
		t.Fatal(err)
	}
	return m.ImmutableID
}

func (s *simBundle) waitDelivered(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sim.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
}

// simSub returns the simulator's single subscription for the mailbox.
func (s *simBundle) simSub(t *testing.T) graphsim.Subscription {
	t.Helper()
	var found []graphsim.Subscription
	for _, sub := range s.sim.Subscriptions() {
		if strings.Contains(strings.ToLower(sub.Resource), strings.ToLower(mailbox)) {
			found = append(found, sub)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d simulated subscriptions for %s at %s: %+v", len(found), mailbox, s.clock.Now(), found)
	}
	return found[0]
}

// requests counts the simulator's recorded requests of one method whose
// path ends with suffix.
func (s *simBundle) requests(method, suffix string) int {
	n := 0
	for _, r := range s.sim.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

func TestSimThirtyDaysTheSubscriptionNeverExpires(t *testing.T) {
	t.Parallel()
	s := setupSim(t, func(c *subscriptions.Config) { c.LeaseTTL = 6 * time.Hour })
	s.run(t, s.mgr)
	s.settle(t)
	first := s.simSub(t)
	if !first.ImmutableIDs || first.ChangeType != "created" {
		t.Errorf("subscription %+v: want created with immutable ids", first)
	}
	for end := t0.Add(30 * 24 * time.Hour); s.clock.Now().Before(end); {
		s.clock.AdvanceToNext()
		s.settle(t)
		if sub := s.simSub(t); sub.ID != first.ID {
			t.Fatalf("replaced at %s", s.clock.Now())
		}
	}
	if n := s.requests(http.MethodPost, "/subscriptions"); n != 1 {
		t.Errorf("%d creations, want 1", n)
	}
	if n := s.requests(http.MethodPatch, "/subscriptions/"+first.ID); n < 7 || n > 11 {
		t.Errorf("%d renewals, want about 8", n)
	}
	// Mail still arrives after 30 days.
	id := s.deliver(t)
	if jobs := s.queue.Jobs(); len(jobs) != 1 || jobs[0].MessageID != id || jobs[0].Source != "notification" {
		t.Errorf("jobs %+v", jobs)
	}
}

func TestSimRenewal404Recreates(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	s.run(t, s.mgr)
	s.settle(t)
	old := s.simSub(t)
	if err := s.rest.DeleteSubscription(context.Background(), old.ID); err != nil { // gone behind our back
		t.Fatal(err)
	}
	s.advance(t, 4*24*time.Hour)
	sub := s.simSub(t)
	if sub.ID == old.ID {
		t.Fatal("not recreated")
	}
	if n := s.requests(http.MethodPatch, "/subscriptions/"+old.ID); n != 1 {
		t.Errorf("%d renewals of the lost subscription, want 1 (then recreate)", n)
	}
	if rec := s.stored(t)[sub.ID]; rec.ClientState != sub.ClientState {
		t.Error("new secret not stored")
	}
}

func TestSimSubscriptionRemovedRecreatesAndTheMissedMailIsQueued(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	s.run(t, s.mgr)
	s.settle(t)
	old := s.simSub(t)
	if err := s.sim.Lifecycle(old.ID, graphsim.EventSubscriptionRemoved); err != nil {
		t.Fatal(err)
	}
	s.waitDelivered(t)
	during := s.deliver(t) // no subscription: nobody is told
	ev := <-s.events
	if ev != [2]string{old.ID, subscriptions.EventSubscriptionRemoved} {
		t.Fatalf("event %v", ev)
	}
	if err := s.mgr.HandleLifecycle(context.Background(), ev[0], ev[1]); err != nil {
		t.Fatal(err)
	}
	if sub := s.simSub(t); sub.ID == old.ID {
		t.Fatal("not recreated")
	}
	jobs := s.queue.Jobs()
	if len(jobs) != 1 || jobs[0].MessageID != during || jobs[0].Source != "resync" {
		t.Fatalf("jobs %+v, want the missed message from the resync", jobs)
	}
	// The queued id is one the pipeline can fetch.
	if _, err := s.rest.do(context.Background(), http.MethodGet, "users/"+mailbox+"/messages/"+url.PathEscape(during), nil); err != nil {
		t.Errorf("fetch the queued message: %v", err)
	}
	after := s.deliver(t)
	if jobs := s.queue.Jobs(); len(jobs) != 2 || jobs[1].MessageID != after || jobs[1].Source != "notification" {
		t.Errorf("after the recreate: %+v", jobs)
	}
}

func TestSimDroppedNotificationsAreQueuedOnceByTheBackstop(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	s.run(t, s.mgr)
	s.settle(t)
	s.sim.SetBehavior(graphsim.Behavior{Drop: true})
	var dropped []string
	for range 7 {
		dropped = append(dropped, s.deliver(t))
		s.advance(t, time.Minute)
	}
	s.sim.SetBehavior(graphsim.Behavior{})
	announced := s.deliver(t)
	if ids := s.queue.IDs(mailbox); len(ids) != 1 {
		t.Fatalf("queued before the backstop: %v", ids)
	}
	s.advance(t, 15*time.Minute)
	att := s.queue.Attempts(mailbox)
	for _, id := range dropped {
		if att[id] != 1 {
			t.Errorf("dropped message offered %d times, want 1", att[id])
		}
	}
	if len(att) != 8 || att[announced] != 2 {
		t.Errorf("attempts %v", att)
	}
	// Later rounds find nothing new.
	s.advance(t, time.Hour)
	for id, n := range s.queue.Attempts(mailbox) {
		if n != att[id] {
			t.Errorf("%s offered again by a later round", id)
		}
	}
}

func TestSimReauthorizationRequiredResumesDelivery(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	s.run(t, s.mgr)
	s.settle(t)
	s.advance(t, time.Hour)
	sub := s.simSub(t)
	if err := s.sim.Lifecycle(sub.ID, graphsim.EventReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	s.waitDelivered(t)
	held := s.deliver(t) // held back while the subscription waits
	if !s.simSub(t).Paused || len(s.queue.Jobs()) != 0 {
		t.Fatal("the simulator did not pause delivery")
	}
	ev := <-s.events
	at := s.clock.Now()
	if err := s.mgr.HandleLifecycle(context.Background(), ev[0], ev[1]); err != nil {
		t.Fatal(err)
	}
	s.waitDelivered(t)
	if s.simSub(t).Paused {
		t.Fatal("still paused after the event was handled")
	}
	if n := s.requests(http.MethodPost, "/subscriptions/"+sub.ID+"/reauthorize"); n != 1 {
		t.Errorf("%d reauthorize calls, want 1", n)
	}
	if !s.clock.Now().Equal(at) {
		t.Error("reauthorization waited for the clock")
	}
	if jobs := s.queue.Jobs(); len(jobs) != 1 || jobs[0].MessageID != held || jobs[0].Source != "notification" {
		t.Errorf("held notification not delivered: %+v", jobs)
	}
}

func TestSimRemovedMailboxSubscriptionIsDeletedAtStart(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	ctx := context.Background()
	// An earlier run watched removed@contoso.com, which is no longer
	// configured.
	stale, err := s.rest.CreateSubscription(ctx, subscriptions.Request{Mailbox: "removed@contoso.com", Folder: "Inbox",
		NotificationURL: s.cfg.NotificationURL, LifecycleNotificationURL: s.cfg.LifecycleURL,
		ClientState: "old-secret", ExpiresAt: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.SaveSubscription(ctx, subscriptions.Record{ID: stale.ID, Mailbox: "removed@contoso.com",
		Folder: "Inbox", ClientState: "old-secret", ExpiresAt: stale.ExpiresAt}); err != nil {
		t.Fatal(err)
	}
	s.run(t, s.mgr)
	s.settle(t)
	for _, sub := range s.sim.Subscriptions() {
		if sub.ID == stale.ID {
			t.Fatal("the removed mailbox's subscription is still live")
		}
	}
	if _, ok := s.stored(t)[stale.ID]; ok {
		t.Error("its secret is still stored")
	}
	s.simSub(t) // the configured mailbox has one
}

func TestSimTwoManagersOnOneDatabaseOnlyOneActs(t *testing.T) {
	t.Parallel()
	s := setupSim(t, nil)
	sql := openSQL(t)
	s.store = sql
	a, c := s.newSimManager(t, "replica-a"), s.newSimManager(t, "replica-b")
	s.run(t, a)
	s.run(t, c)
	s.settle(t)
	s.advance(t, time.Hour)
	if n := s.requests(http.MethodPost, "/subscriptions"); n != 1 {
		t.Errorf("%d creations, want 1", n)
	}
	if n := s.requests(http.MethodGet, "/subscriptions"); n != 1 {
		t.Errorf("%d reconciles, want 1", n)
	}
	if a.Status()[0].Leader == c.Status()[0].Leader {
		t.Error("not exactly one leader")
	}
}
