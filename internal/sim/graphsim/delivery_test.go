package graphsim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func notes(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	list, ok := m["value"].([]any)
	if !ok {
		t.Fatalf("no value array in %v", m)
	}
	var out []map[string]any
	for _, v := range list {
		out = append(out, v.(map[string]any))
	}
	return out
}

func TestDeliverSendsExactNotification(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	sub := b.subscribe(t, e, nil, "Prefer", `IdType="ImmutableId"`)
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.sim.Message("phish@contoso.com", id)
	if err != nil {
		t.Fatal(err)
	}
	got := notes(t, e.next(t))
	if len(got) != 1 {
		t.Fatalf("got %d notifications", len(got))
	}
	n := got[0]
	userID := b.sim.AddMailbox("phish@contoso.com")
	want := map[string]any{
		"subscriptionId": sub["id"], "clientState": "s3cret", "changeType": "created",
		"tenantId": b.sim.TenantID(),
		"resource": "users/" + userID + "@" + b.sim.TenantID() + "/messages/" + stored.ImmutableID,
	}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%s = %v, want %v", k, n[k], v)
		}
	}
	rd := n["resourceData"].(map[string]any)
	if rd["id"] != stored.ImmutableID || rd["@odata.type"] != "#Microsoft.Graph.Message" || !strings.HasPrefix(rd["@odata.etag"].(string), `W/"`) {
		t.Errorf("resourceData = %v", rd)
	}
	if _, err := time.Parse(time.RFC3339Nano, n["subscriptionExpirationDateTime"].(string)); err != nil {
		t.Errorf("subscriptionExpirationDateTime: %v", err)
	}
	if err := b.sim.WaitDelivered(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := b.sim.Deliveries()
	if len(d) != 1 || !d[0].Delivered || !strings.HasSuffix(d[0].URL, "?tenant=a") {
		t.Errorf("deliveries = %+v", d)
	}
}

func TestDeliveryRetriesThenDrops(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{RetryBackoff: 5 * time.Millisecond, RetryWindow: 200 * time.Millisecond})
	e := newEndpoint(t, nil)
	b.subscribe(t, e, nil)
	e.setStatus(http.StatusInternalServerError)
	if _, err := b.sim.Deliver("phish@contoso.com", "", readTestdata(t, "report.eml")); err != nil {
		t.Fatal(err)
	}
	e.next(t)
	e.next(t)
	e.setStatus(http.StatusAccepted)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.sim.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	d := b.sim.Deliveries()
	last := d[len(d)-1]
	if !last.Delivered || last.Attempt < 3 {
		t.Errorf("expected delivery after retries, got %+v", last)
	}

	e.setStatus(http.StatusServiceUnavailable)
	if _, err := b.sim.Deliver("phish@contoso.com", "", readTestdata(t, "report.eml")); err != nil {
		t.Fatal(err)
	}
	if err := b.sim.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	d = b.sim.Deliveries()
	if last := d[len(d)-1]; !last.Dropped || last.Delivered {
		t.Errorf("expected a drop after the retry window, got %+v", last)
	}
}

func TestDeliveryTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{DeliveryTimeout: 50 * time.Millisecond, RetryTimeout: 50 * time.Millisecond, RetryWindow: 30 * time.Millisecond})
	release := make(chan struct{})
	slow := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("validationToken") {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(r.URL.Query().Get("validationToken")))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	b.subscribe(t, &endpoint{srv: slow}, nil)
	if _, err := b.sim.Deliver("phish@contoso.com", "", readTestdata(t, "report.eml")); err != nil {
		t.Fatal(err)
	}
	if err := b.sim.WaitDelivered(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := b.sim.Deliveries()
	if len(d) == 0 || d[0].Delivered || !strings.Contains(d[0].Err, "no answer within") {
		t.Errorf("deliveries = %+v", d)
	}
}

func TestBatchingDuplicatesReorderDrop(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Seed: 7})
	e := newEndpoint(t, nil)
	inboxSub := b.subscribe(t, e, nil)["id"]
	b.subscribe(t, e, map[string]any{"resource": "users/phish@contoso.com/messages", "changeType": "created,updated"})
	mime := readTestdata(t, "report.eml")

	if _, err := b.sim.DeliverBatch([]DeliverItem{{Mailbox: "phish@contoso.com", MIME: mime}, {Mailbox: "phish@contoso.com", MIME: mime}}); err != nil {
		t.Fatal(err)
	}
	if got := notes(t, e.next(t)); len(got) != 4 {
		t.Fatalf("two messages × two subscriptions in one POST: got %d", len(got))
	}

	b.sim.SetBehavior(Behavior{DuplicatePairs: true})
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	got := notes(t, e.next(t))
	var kinds []string
	for _, n := range got {
		kinds = append(kinds, n["changeType"].(string))
	}
	if strings.Join(kinds, ",") != "created,created,created,updated" {
		t.Errorf("duplicate pairs: %v", kinds)
	}

	b.sim.SetBehavior(Behavior{Redeliver: true})
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	a, c := notes(t, e.next(t)), notes(t, e.next(t))
	if a[0]["id"] != c[0]["id"] {
		t.Errorf("redelivery should repeat the same notification")
	}

	b.sim.SetBehavior(Behavior{Reorder: true})
	items := make([]DeliverItem, 6)
	for i := range items {
		items[i] = DeliverItem{Mailbox: "phish@contoso.com", MIME: mime}
	}
	ids, err := b.sim.DeliverBatch(items)
	if err != nil {
		t.Fatal(err)
	}
	reordered := false
	var seen []string
	for _, n := range notes(t, e.next(t)) {
		if n["subscriptionId"] == inboxSub {
			seen = append(seen, n["resourceData"].(map[string]any)["id"].(string))
		}
	}
	pos := map[string]int{}
	for i, id := range ids {
		pos[id] = i
	}
	last := -1
	for _, id := range seen {
		if pos[id] < last {
			reordered = true
		}
		last = pos[id]
	}
	if !reordered {
		t.Errorf("reorder switch kept delivery order: %v", seen)
	}

	b.sim.SetBehavior(Behavior{Drop: true})
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	if err := b.sim.WaitDelivered(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-e.got:
		t.Errorf("drop switch delivered %s", body)
	default:
	}
}

func TestLifecycleEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	lc := newEndpoint(t, nil)
	sub := b.subscribe(t, e, map[string]any{"lifecycleNotificationUrl": lc.srv.URL + "/lifecycle"})
	id := sub["id"].(string)

	if err := b.sim.Lifecycle(id, EventReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	n := notes(t, lc.next(t))[0]
	if n["lifecycleEvent"] != "reauthorizationRequired" || n["subscriptionId"] != id || n["clientState"] != "s3cret" || n["resource"] != nil {
		t.Errorf("lifecycle notification = %v", n)
	}
	mime := readTestdata(t, "report.eml")
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	if err := b.sim.WaitDelivered(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.got:
		t.Fatal("delivery should pause until reauthorization")
	default:
	}
	if r := b.do(t, "POST", "/v1.0/subscriptions/"+id+"/reauthorize", nil); r.status != 204 {
		t.Fatalf("reauthorize: %d", r.status)
	}
	if got := notes(t, e.next(t)); got[0]["changeType"] != "created" {
		t.Errorf("held notification = %v", got)
	}

	if err := b.sim.Lifecycle(id, EventMissed); err != nil {
		t.Fatal(err)
	}
	if n := notes(t, lc.next(t))[0]; n["lifecycleEvent"] != "missed" {
		t.Errorf("missed = %v", n)
	}
	if err := b.sim.Lifecycle(id, EventSubscriptionRemoved); err != nil {
		t.Fatal(err)
	}
	if n := notes(t, lc.next(t))[0]; n["lifecycleEvent"] != "subscriptionRemoved" {
		t.Errorf("removed = %v", n)
	}
	if r := b.do(t, "GET", "/v1.0/subscriptions/"+id, nil); r.status != 404 {
		t.Errorf("removed subscription still answers %d", r.status)
	}
	if err := b.sim.Lifecycle("nope", EventMissed); err == nil {
		t.Error("lifecycle on an unknown subscription should fail")
	}
}

func TestLifecycleFallsBackToNotificationURL(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	id := b.subscribe(t, e, nil)["id"].(string)
	if err := b.sim.Lifecycle(id, EventMissed); err != nil {
		t.Fatal(err)
	}
	if n := notes(t, e.next(t))[0]; n["lifecycleEvent"] != "missed" {
		t.Errorf("got %v", n)
	}
}

func TestDeliverRejectsMalformedInput(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	for name, mime := range map[string][]byte{
		"empty":          nil,
		"no headers":     []byte("\r\n\r\nbody only"),
		"garbage":        []byte("\x00\x01\x02 not a header"),
		"leading indent": []byte(" folded: before any header\r\n\r\n"),
	} {
		if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err == nil {
			t.Errorf("%s: Deliver accepted malformed MIME", name)
		}
	}
	if _, err := b.sim.Deliver("nobody@contoso.com", "inbox", readTestdata(t, "report.eml")); err == nil {
		t.Error("Deliver to an unknown mailbox succeeded")
	}
	if _, err := b.sim.Deliver("phish@contoso.com", "Nowhere", readTestdata(t, "report.eml")); err == nil {
		t.Error("Deliver to an unknown folder succeeded")
	}
}

func TestCloseStopsDeliveries(t *testing.T) {
	t.Parallel()
	sim := New(Options{AllowHTTP: true, RetryBackoff: time.Hour})
	srv := newTestServer(t, sim)
	sim.AddMailbox("phish@contoso.com")
	b := &bundle{sim: sim, srv: srv, token: sim.IssueToken()}
	e := newEndpoint(t, nil)
	b.subscribe(t, e, nil)
	e.setStatus(http.StatusInternalServerError)
	if _, err := sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml")); err != nil {
		t.Fatal(err)
	}
	e.next(t)
	done := make(chan struct{})
	go func() { sim.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop a delivery waiting for its backoff")
	}
	if _, err := sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml")); err == nil {
		t.Error("Deliver after Close succeeded")
	}
}
