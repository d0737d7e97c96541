package graphsim

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// laggingHook answers validations at once and notifications after lag (or
// never, when lag is zero).
func laggingHook(t *testing.T, lag time.Duration) *endpoint {
	t.Helper()
	e := &endpoint{got: make(chan []byte, 100)}
	e.srv = newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("validationToken") {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
			return
		}
		body, _ := io.ReadAll(r.Body)
		wait := time.NewTimer(lag)
		defer wait.Stop()
		if lag == 0 {
			<-r.Context().Done()
			return
		}
		select {
		case <-wait.C:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusAccepted)
		e.got <- body
	}))
	return e
}

func deliverEach(t *testing.T, b *bundle, n int) {
	t.Helper()
	for range n {
		if _, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.sim.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEndpointDropStateSendsMissed(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{EndpointStates: true, EndpointWindow: time.Minute, DeliveryTimeout: 20 * time.Millisecond,
		RetryTimeout: 20 * time.Millisecond, RetryWindow: 200 * time.Millisecond, RetryBackoff: 5 * time.Millisecond})
	dead := laggingHook(t, 0)
	lc := newEndpoint(t, nil)
	sub := b.subscribe(t, dead, map[string]any{"lifecycleNotificationUrl": lc.srv.URL})
	deliverEach(t, b, minEndpointSample)

	before := len(b.sim.Deliveries())
	deliverEach(t, b, 2)
	n := notes(t, lc.next(t))[0]
	if n["lifecycleEvent"] != EventMissed || n["subscriptionId"] != sub["id"] {
		t.Errorf("lifecycle = %v", n)
	}
	after := b.sim.Deliveries()[before:]
	discarded := 0
	for _, a := range after {
		if a.URL == dead.srv.URL+"/webhooks/graph?tenant=a" {
			if a.Attempt != 0 || !a.Dropped {
				t.Errorf("an endpoint in drop state was posted to: %+v", a)
			}
			discarded++
		}
	}
	if discarded != 2 {
		t.Errorf("discarded %d notifications, want 2", discarded)
	}
	select {
	case body := <-lc.got:
		t.Errorf("missed sent twice in one drop period: %s", body)
	default:
	}
}

func TestEndpointSlowStateDelaysNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{EndpointStates: true, EndpointWindow: time.Minute, SlowDelay: 300 * time.Millisecond,
		DeliveryTimeout: 20 * time.Millisecond, RetryTimeout: 2 * time.Second, RetryBackoff: time.Millisecond})
	slow := laggingHook(t, 40*time.Millisecond)
	b.subscribe(t, slow, nil)
	deliverEach(t, b, minEndpointSample)
	start := time.Now()
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	// Earlier notifications may still trickle in: a handler can finish after
	// its client gave up. Wait for this message's.
	for {
		n := notes(t, slow.next(t))[0]
		if n["resourceData"].(map[string]any)["id"] == id {
			break
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("a slow endpoint got its notification after %v, want at least the 300ms slow delay", d)
	}
}
