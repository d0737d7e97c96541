package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/mail2archer/mail2archer/subscriptions"
)

const (
	testTenant  = "11111111-2222-3333-4444-555555555555"
	testApp     = "66666666-7777-8888-9999-000000000000"
	testSecret  = "sim-secret"
	testMailbox = "phish@contoso.com"
)

// bundle is a graphsim over TLS and a Client that authenticates against its
// token endpoint with the real azidentity client-secret credential.
type bundle struct {
	sim    *graphsim.Server
	srv    *httptest.Server
	client *Client
	hook   *webhook
}

func setup(t *testing.T, opts graphsim.Options, mutate ...func(*Config)) *bundle {
	t.Helper()
	opts.TenantID, opts.AppID, opts.ClientSecret, opts.AllowHTTP = testTenant, testApp, testSecret, true
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 10 * time.Millisecond
	}
	sim := graphsim.New(opts)
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	sim.AddMailbox(testMailbox)
	cfg := Config{
		TenantID: testTenant, ClientID: testApp, ClientSecret: testSecret,
		BaseURL: srv.URL + "/v1.0", AuthorityHost: srv.URL, HTTPClient: srv.Client(),
		MaxRetries: -1,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{sim: sim, srv: srv, client: c, hook: newWebhook(t)}
}

// webhook is a real notification endpoint: it echoes validation tokens and
// queues notifications.
type webhook struct {
	srv *httptest.Server
	got chan []byte

	mu          sync.Mutex
	validations int
	// last is scratch space for a test step to hand a link to the next.
	last string
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	h := &webhook{got: make(chan []byte, 100)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("validationToken") {
			h.mu.Lock()
			h.validations++
			h.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		h.got <- body
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// notification is the change-notification shape we decode.
type notification struct {
	Value []struct {
		SubscriptionID string `json:"subscriptionId"`
		ClientState    string `json:"clientState"`
		ChangeType     string `json:"changeType"`
		TenantID       string `json:"tenantId"`
		ResourceData   struct {
			ID string `json:"id"`
		} `json:"resourceData"`
	} `json:"value"`
}

func (h *webhook) next(t *testing.T) notification {
	t.Helper()
	select {
	case body := <-h.got:
		var n notification
		if err := json.Unmarshal(body, &n); err != nil {
			t.Fatalf("decode notification %s: %v", body, err)
		}
		return n
	case <-time.After(15 * time.Second):
		t.Fatal("no notification arrived")
		return notification{}
	}
}

func report(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/report.eml")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
}

func (b *bundle) subscribe(t *testing.T) subscriptions.Subscription {
	t.Helper()
	sub, err := b.client.CreateSubscription(context.Background(), subscriptions.Request{
		Mailbox: testMailbox, Folder: "inbox",
		NotificationURL:          b.hook.srv.URL + "/webhooks/graph",
		LifecycleNotificationURL: b.hook.srv.URL + "/webhooks/graph/lifecycle",
		ClientState:              "per-subscription-secret",
		ExpiresAt:                b.sim.Now().Add(48 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestEndToEndSubscribeNotifyFetch(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	ctx := context.Background()
	sub := b.subscribe(t)
	if sub.ID == "" || sub.ClientState != "per-subscription-secret" || sub.Resource != "users/phish@contoso.com/mailFolders('inbox')/messages" {
		t.Errorf("subscription = %+v", sub)
	}
	if b.hook.validations != 2 {
		t.Errorf("handshakes = %d, want 2 (notification and lifecycle URL)", b.hook.validations)
	}
	simSub := b.sim.Subscriptions()[0]
	if !simSub.ImmutableIDs || simSub.LatestSupportedTLSVersion != "v1_2" || simSub.ChangeType != "created" {
		t.Errorf("sim sees %+v", simSub)
	}

	mime := report(t)
	restID, err := b.sim.Deliver(testMailbox, "inbox", mime)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.sim.Message(testMailbox, restID)
	if err != nil {
		t.Fatal(err)
	}
	n := b.hook.next(t)
	if len(n.Value) != 1 || n.Value[0].SubscriptionID != sub.ID || n.Value[0].ClientState != "per-subscription-secret" || n.Value[0].TenantID != testTenant {
		t.Fatalf("notification = %+v", n)
	}
	id := n.Value[0].ResourceData.ID
	if id != stored.ImmutableID {
		t.Errorf("notification id %s, want the immutable id %s", id, stored.ImmutableID)
	}

	var fetched bytes.Buffer
	msg, err := b.client.FetchMessage(ctx, testMailbox, id, &fetched)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fetched.Bytes(), mime) || msg.Size != int64(len(mime)) {
		t.Error("fetched MIME differs from the delivered message")
	}
	if msg.ID != id || msg.InternetMessageID != "<report-1@contoso.com>" || msg.Subject != "FW: Your mailbox is full" ||
		msg.From.Address != "adelev@contoso.com" || msg.Sender.Address != "helpdesk@contoso.com" ||
		len(msg.To) != 1 || len(msg.CC) != 1 || !msg.HasAttachments || msg.ConversationID == "" || msg.WebLink == "" ||
		msg.ParentFolderID == "" || msg.SentAt.IsZero() || !msg.ReceivedAt.Equal(stored.ReceivedAt) {
		t.Errorf("message = %+v", msg)
	}
	if len(msg.Headers) == 0 || msg.Headers[0].Name != "Received" {
		t.Errorf("headers = %+v", msg.Headers)
	}

	// Request bodies go uncompressed (see newHTTPClient), with the
	// immutable-id preference.
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1.0/subscriptions" {
			if r.Gzipped || r.Header.Get("Prefer") != `IdType="ImmutableId"` {
				t.Errorf("subscription POST gzipped=%v Prefer=%q", r.Gzipped, r.Header.Get("Prefer"))
			}
		}
	}
}

func TestSubscriptionLifecycleCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{PageSize: 1})
	ctx := context.Background()
	sub := b.subscribe(t)
	second, err := b.client.CreateSubscription(ctx, subscriptions.Request{
		Mailbox: testMailbox, Folder: "archive", NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.client.ListSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ClientState != "" {
		t.Errorf("list (two pages of one) = %+v", list)
	}
	want := b.sim.Now().Add(72 * time.Hour).Truncate(time.Second)
	renewed, err := b.client.RenewSubscription(ctx, sub.ID, want)
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.ExpiresAt.Equal(want) {
		t.Errorf("renewed until %v, want %v", renewed.ExpiresAt, want)
	}
	if err := b.client.ReauthorizeSubscription(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.client.DeleteSubscription(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	err = b.client.DeleteSubscription(ctx, second.ID)
	if ClassOf(err) != ClassNotFound || !errors.Is(err, subscriptions.ErrNotFound) {
		t.Errorf("deleting twice: %v (%v)", err, ClassOf(err))
	}
	_, err = b.client.RenewSubscription(ctx, second.ID, want)
	if ClassOf(err) != ClassNotFound || !errors.Is(err, subscriptions.ErrNotFound) {
		t.Errorf("renewing a deleted subscription: %v", err)
	}
	err = b.client.ReauthorizeSubscription(ctx, second.ID)
	if ClassOf(err) != ClassNotFound || !errors.Is(err, subscriptions.ErrNotFound) {
		t.Errorf("reauthorizing a deleted subscription: %v", err)
	}
	_, err = b.client.CreateSubscription(ctx, subscriptions.Request{
		Mailbox: testMailbox, Folder: "inbox", NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour),
	})
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusConflict || ge.Class != ClassPermanent || errors.Is(err, subscriptions.ErrNotFound) {
		t.Errorf("duplicate subscription: %v", err)
	}
}

// TestA404OnASubscriptionMeansItIsGone: Graph answers 404 on a
// subscription with codes that elsewhere mean a permission problem; the
// subscription is gone whatever the code, while the class stays what the
// code says.
func TestA404OnASubscriptionMeansItIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := map[string]struct {
		route graphsim.Route
		call  func(c *Client, id string) error
	}{
		"renew": {graphsim.RouteUpdateSubscription, func(c *Client, id string) error {
			_, err := c.RenewSubscription(ctx, id, time.Now().Add(time.Hour))
			return err
		}},
		"reauthorize": {graphsim.RouteReauthorize, func(c *Client, id string) error { return c.ReauthorizeSubscription(ctx, id) }},
		"delete":      {graphsim.RouteDeleteSubscription, func(c *Client, id string) error { return c.DeleteSubscription(ctx, id) }},
	}
	answers := []struct {
		status int
		code   string
		class  Class
		gone   bool
	}{
		{http.StatusNotFound, "ResourceNotFound", ClassNotFound, true},
		{http.StatusNotFound, "ExtensionError", ClassPermission, true},
		{http.StatusForbidden, "ExtensionError", ClassPermission, false},
		{http.StatusInternalServerError, "InternalServerError", ClassTransient, false},
	}
	for name, c := range calls {
		for _, a := range answers {
			t.Run(fmt.Sprintf("%s %d %s", name, a.status, a.code), func(t *testing.T) {
				t.Parallel()
				b := setup(t, graphsim.Options{})
				sub := b.subscribe(t)
				b.sim.SetFaults(graphsim.Fault{Route: c.route, Status: a.status, Code: a.code, Message: "The subscription was not found.", Times: 1})
				err := c.call(b.client, sub.ID)
				var ge *Error
				if !errors.As(err, &ge) || ge.Class != a.class || ge.Status != a.status {
					t.Fatalf("error %v (%T), want a *Error of class %v", err, err, a.class)
				}
				if errors.Is(err, subscriptions.ErrNotFound) != a.gone {
					t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !a.gone, a.gone)
				}
				if !strings.Contains(err.Error(), "The subscription was not found.") || strings.Contains(err.Error(), subscriptions.ErrNotFound.Error()) {
					t.Errorf("text %q, want Graph's words unchanged", err.Error())
				}
			})
		}
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

// TestAServerRefusingGzipIsServedAtOnce: request bodies are never
// compressed, so a gateway that answers 415 to gzip costs no round trip.
func TestAServerRefusingGzipIsServedAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	b.sim.Reject415(true)
	if _, err := b.client.CreateSubscription(context.Background(), subscriptions.Request{
		Mailbox: testMailbox, Folder: "inbox", NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour),
	}); err != nil {
		t.Fatalf("create after a 415: %v", err)
	}
	var gz, plain int
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1.0/subscriptions" {
			if r.Gzipped {
				gz++
			} else {
				plain++
			}
		}
	}
	if gz != 0 || plain != 1 {
		t.Errorf("POSTs: %d gzipped, %d plain; want one plain", gz, plain)
	}
}

// pathSegment escapes one value as the SDK's URL templates do ({name}
// expansion of RFC 6570): everything but letters, digits and "-._~" is
// percent-encoded.
func pathSegment(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// lastRequest returns the last request the simulator recorded on path's
// prefix /v1.0 (token requests are skipped).
func lastRequest(t *testing.T, sim *graphsim.Server) graphsim.Request {
	t.Helper()
	reqs := sim.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if strings.HasPrefix(reqs[i].Path, "/v1.0/") {
			return reqs[i]
		}
	}
	t.Fatal("no Graph request was recorded")
	return graphsim.Request{}
}

// TestRequestURLsMatchGraphAndSimulator pins the request builders made from
// the adapter with the SDK's internal path-parameter keys: every call must
// send Graph's documented method, path and query, and the simulator must
// route it to the intended endpoint (an injected 418 on that route proves
// it). A changed URL template or key in an SDK upgrade fails here.
func TestRequestURLsMatchGraphAndSimulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	since := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	type target struct {
		msgID, subID string
	}
	mb := "/v1.0/users/" + pathSegment(testMailbox)
	tests := []struct {
		name   string
		route  graphsim.Route
		call   func(b *bundle, tg target) error
		method string
		path   func(tg target) string
		query  url.Values
		prefer []string
	}{
		{
			name: "message metadata", route: graphsim.RouteGetMessage, method: http.MethodGet,
			call: func(b *bundle, tg target) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, tg.msgID, io.Discard)
				return err
			},
			path: func(tg target) string { return mb + "/messages/" + pathSegment(tg.msgID) },
			query: url.Values{"$select": {"id,internetMessageId,subject,conversationId,webLink,parentFolderId,from,sender," +
				"toRecipients,ccRecipients,receivedDateTime,sentDateTime,hasAttachments,categories,internetMessageHeaders"}},
			prefer: []string{`IdType="ImmutableId"`},
		},
		{
			name: "message MIME", route: graphsim.RouteGetMIME, method: http.MethodGet,
			call: func(b *bundle, tg target) error {
				_, err := b.client.FetchMessage(ctx, testMailbox, tg.msgID, io.Discard)
				return err
			},
			path:  func(tg target) string { return mb + "/messages/" + pathSegment(tg.msgID) + "/$value" },
			query: url.Values{},
		},
		{
			name: "folder delta", route: graphsim.RouteDelta, method: http.MethodGet,
			call: func(b *bundle, tg target) error {
				_, err := b.client.Delta(ctx, testMailbox, "inbox", "", since)
				return err
			},
			path: func(tg target) string { return mb + "/mailFolders/inbox/messages/delta()" },
			query: url.Values{"$select": {"id,receivedDateTime"},
				"$filter": {"receivedDateTime ge 2026-05-01T12:00:00Z"}},
			prefer: []string{`IdType="ImmutableId"`, "odata.maxpagesize=50"},
		},
		{
			name: "mail folder lookup", route: graphsim.RouteListFolders, method: http.MethodGet,
			call: func(b *bundle, tg target) error {
				_, err := b.client.Move(ctx, testMailbox, tg.msgID, "Phish O'Reports")
				return err
			},
			path:  func(tg target) string { return mb + "/mailFolders" },
			query: url.Values{"$filter": {"displayName eq 'Phish O''Reports'"}, "$select": {"id,displayName"}},
		},
		{
			name: "category patch", route: graphsim.RouteUpdateMessage, method: http.MethodPatch,
			call: func(b *bundle, tg target) error {
				return b.client.Categorize(ctx, testMailbox, tg.msgID, []string{"Archer 1"})
			},
			path:   func(tg target) string { return mb + "/messages/" + pathSegment(tg.msgID) },
			query:  url.Values{},
			prefer: []string{`IdType="ImmutableId"`},
		},
		{
			name: "move", route: graphsim.RouteMoveMessage, method: http.MethodPost,
			call: func(b *bundle, tg target) error {
				_, err := b.client.Move(ctx, testMailbox, tg.msgID, "archive")
				return err
			},
			path:   func(tg target) string { return mb + "/messages/" + pathSegment(tg.msgID) + "/move" },
			query:  url.Values{},
			prefer: []string{`IdType="ImmutableId"`},
		},
		{
			name: "create subscription", route: graphsim.RouteCreateSubscription, method: http.MethodPost,
			call: func(b *bundle, tg target) error {
				_, err := b.client.CreateSubscription(ctx, subscriptions.Request{Mailbox: testMailbox, Folder: "archive",
					NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour)})
				return err
			},
			path:   func(tg target) string { return "/v1.0/subscriptions" },
			query:  url.Values{},
			prefer: []string{`IdType="ImmutableId"`},
		},
		{
			name: "list subscriptions", route: graphsim.RouteListSubscriptions, method: http.MethodGet,
			call:  func(b *bundle, tg target) error { _, err := b.client.ListSubscriptions(ctx); return err },
			path:  func(tg target) string { return "/v1.0/subscriptions" },
			query: url.Values{},
		},
		{
			name: "renew subscription", route: graphsim.RouteUpdateSubscription, method: http.MethodPatch,
			call: func(b *bundle, tg target) error {
				_, err := b.client.RenewSubscription(ctx, tg.subID, b.sim.Now().Add(2*time.Hour))
				return err
			},
			path:  func(tg target) string { return "/v1.0/subscriptions/" + pathSegment(tg.subID) },
			query: url.Values{},
		},
		{
			name: "reauthorize subscription", route: graphsim.RouteReauthorize, method: http.MethodPost,
			call:  func(b *bundle, tg target) error { return b.client.ReauthorizeSubscription(ctx, tg.subID) },
			path:  func(tg target) string { return "/v1.0/subscriptions/" + pathSegment(tg.subID) + "/reauthorize" },
			query: url.Values{},
		},
		{
			name: "delete subscription", route: graphsim.RouteDeleteSubscription, method: http.MethodDelete,
			call:  func(b *bundle, tg target) error { return b.client.DeleteSubscription(ctx, tg.subID) },
			path:  func(tg target) string { return "/v1.0/subscriptions/" + pathSegment(tg.subID) },
			query: url.Values{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Options{})
			tg := target{msgID: deliver(t, b).ImmutableID, subID: b.subscribe(t).ID}
			b.sim.SetFaults(graphsim.Fault{Route: tt.route, Status: http.StatusTeapot, Times: 1})
			err := tt.call(b, tg)
			var ge *Error
			if !errors.As(err, &ge) || ge.Status != http.StatusTeapot {
				t.Fatalf("the simulator did not route the request to %q: %v", tt.route, err)
			}
			r := lastRequest(t, b.sim)
			if r.Method != tt.method || r.Path != tt.path(tg) {
				t.Errorf("sent %s %s\nwant %s %s", r.Method, r.Path, tt.method, tt.path(tg))
			}
			if !reflect.DeepEqual(r.Query, tt.query) {
				t.Errorf("query %v\nwant  %v", r.Query, tt.query)
			}
			// The SDK keeps headers in a map: their order varies.
			got := slices.Sorted(slices.Values(r.Header.Values("Prefer")))
			if want := slices.Sorted(slices.Values(tt.prefer)); len(want) > 0 && !slices.Equal(got, want) {
				t.Errorf("Prefer %q, want %q", got, want)
			}
		})
	}
}

// TestPagingLinksAreFollowedVerbatim checks the raw-URL builders: a delta
// link and a subscription nextLink are requested exactly as Graph gave them.
func TestPagingLinksAreFollowedVerbatim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, graphsim.Options{PageSize: 1})
	deliver(t, b)
	page, err := b.client.Delta(ctx, testMailbox, "inbox", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for page.DeltaLink == "" {
		if page, err = b.client.Delta(ctx, testMailbox, "inbox", page.NextLink, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteDelta, Status: http.StatusTeapot, Times: 1})
	if _, err := b.client.Delta(ctx, testMailbox, "inbox", page.DeltaLink, time.Time{}); ClassOf(err) != ClassPermanent {
		t.Fatalf("delta link: %v", err)
	}
	if r, want := lastRequest(t, b.sim), mustParse(t, page.DeltaLink); r.Path != want.EscapedPath() || !reflect.DeepEqual(r.Query, want.Query()) {
		t.Errorf("followed %s?%s, want %s", r.Path, r.Query.Encode(), page.DeltaLink)
	}

	b.subscribe(t)
	if _, err := b.client.CreateSubscription(ctx, subscriptions.Request{Mailbox: testMailbox, Folder: "archive",
		NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The nextLink of the first page, read without the client.
	req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/v1.0/subscriptions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.sim.IssueToken())
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var first struct {
		NextLink string `json:"@odata.nextLink"`
	}
	err = json.NewDecoder(resp.Body).Decode(&first)
	_ = resp.Body.Close()
	if err != nil || first.NextLink == "" {
		t.Fatalf("first page: %v, nextLink %q", err, first.NextLink)
	}
	b.sim.ResetRequests()
	list, err := b.client.ListSubscriptions(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d subscriptions, %v", len(list), err)
	}
	var gets []graphsim.Request
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodGet && r.Path == "/v1.0/subscriptions" {
			gets = append(gets, r)
		}
	}
	want := mustParse(t, first.NextLink)
	if len(gets) != 2 || len(gets[0].Query) != 0 || !reflect.DeepEqual(gets[1].Query, want.Query()) {
		t.Errorf("list requests %+v, want a plain GET then %s", gets, first.NextLink)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestEmptyIDsAreRefused: an empty id would address the collection (PATCH
// /subscriptions/, POST /users/x/messages//move); nothing is sent.
func TestEmptyIDsAreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, graphsim.Options{})
	calls := map[string]func() error{
		"fetch":       func() error { _, err := b.client.FetchMessage(ctx, testMailbox, " ", io.Discard); return err },
		"categorize":  func() error { return b.client.Categorize(ctx, testMailbox, "", []string{"x"}) },
		"move":        func() error { _, err := b.client.Move(ctx, testMailbox, "", "archive"); return err },
		"renew":       func() error { _, err := b.client.RenewSubscription(ctx, "", time.Now().Add(time.Hour)); return err },
		"reauthorize": func() error { return b.client.ReauthorizeSubscription(ctx, "") },
		"delete":      func() error { return b.client.DeleteSubscription(ctx, "") },
	}
	for name, call := range calls {
		err := call()
		if e := asError(t, err); e.Class != ClassPermanent || !strings.Contains(e.Message, "id is empty") {
			t.Errorf("%s with an empty id: %v", name, err)
		}
	}
	for _, r := range b.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") {
			t.Errorf("a request was sent: %s %s", r.Method, r.Path)
		}
	}
}

// TestRetriedWritesKeepTheirBody is the regression test of kiota-http-go's
// compression with retries (kiota-http-go#183): a PATCH or POST retried
// after a 503 went out with a gzip header over a plain body, and Graph
// refused it with 400.
func TestRetriedWritesKeepTheirBody(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{}, func(c *Config) { c.MaxRetries = 1 })
	id, err := b.sim.Deliver(testMailbox, "Inbox", []byte("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteUpdateMessage, Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	if err := b.client.Categorize(ctx, testMailbox, id, []string{"Archer 1"}); err != nil {
		t.Fatalf("categorize after one 503: %v", err)
	}
	b.sim.SetFaults(graphsim.Fault{Route: graphsim.RouteMoveMessage, Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	if _, err := b.client.Move(ctx, testMailbox, id, "archive"); err != nil {
		t.Fatalf("move after one 503: %v", err)
	}
}
