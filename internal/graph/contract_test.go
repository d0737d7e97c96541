package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/rs/zerolog"
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

func (b *bundle) subscribe(t *testing.T) Subscription {
	t.Helper()
	sub, err := b.client.CreateSubscription(context.Background(), SubscriptionRequest{
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

	msg, err := b.client.FetchMessage(ctx, testMailbox, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.MIME, mime) {
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

	// The SDK compressed the subscription POST; the simulator decoded it.
	for _, r := range b.sim.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1.0/subscriptions" {
			if !r.Gzipped || r.Header.Get("Prefer") != `IdType="ImmutableId"` {
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
	second, err := b.client.CreateSubscription(ctx, SubscriptionRequest{
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
	if ClassOf(err) != ClassNotFound {
		t.Errorf("deleting twice: %v (%v)", err, ClassOf(err))
	}
	_, err = b.client.RenewSubscription(ctx, second.ID, want)
	if ClassOf(err) != ClassNotFound {
		t.Errorf("renewing a deleted subscription: %v", err)
	}
	_, err = b.client.CreateSubscription(ctx, SubscriptionRequest{
		Mailbox: testMailbox, Folder: "inbox", NotificationURL: b.hook.srv.URL, ExpiresAt: b.sim.Now().Add(time.Hour),
	})
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusConflict || ge.Class != ClassPermanent {
		t.Errorf("duplicate subscription: %v", err)
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

func TestSDKFallsBackWhenGzipIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	b.sim.Reject415(true)
	if _, err := b.client.CreateSubscription(context.Background(), SubscriptionRequest{
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
	if gz != 1 || plain != 1 {
		t.Errorf("POSTs: %d gzipped, %d plain; want one of each", gz, plain)
	}
}
