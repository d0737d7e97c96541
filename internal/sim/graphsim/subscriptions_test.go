package graphsim

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCreateSubscriptionPerformsHandshake(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	sub := b.subscribe(t, e, map[string]any{"lifecycleNotificationUrl": e.srv.URL + "/webhooks/graph?tenant=a"}, "Prefer", `IdType="ImmutableId"`)
	for _, k := range []string{"id", "applicationId", "creatorId", "notificationContentType"} {
		if sub[k] == nil || sub[k] == "" {
			t.Errorf("201 body lacks %s: %v", k, sub)
		}
	}
	if sub["clientState"] != "s3cret" || sub["latestSupportedTlsVersion"] != "v1_2" {
		t.Errorf("201 body = %v", sub)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.validations) != 2 {
		t.Fatalf("same URL for notifications and lifecycle must be validated twice, got %d", len(e.validations))
	}
	if !strings.Contains(e.validations[0], " ") || !strings.Contains(e.validations[0], ":") {
		t.Errorf("validation token %q should contain spaces and colons", e.validations[0])
	}
	if subs := b.sim.Subscriptions(); len(subs) != 1 || !subs[0].ImmutableIDs {
		t.Errorf("subscriptions = %+v", subs)
	}
}

func TestHandshakeFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		validate http.HandlerFunc
		want     string
	}{
		{"wrong echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "something else")
		}, "failed"},
		{"encoded echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, url.QueryEscape(r.URL.Query().Get("validationToken")))
		}, "failed"},
		{"json content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
		}, "failed"},
		{"forbidden", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
		}, "HTTP status code is 'Forbidden'"},
		{"slow endpoint", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{ValidationTimeout: 300 * time.Millisecond})
			e := newEndpoint(t, tt.validate)
			r := b.do(t, "POST", "/v1.0/subscriptions", map[string]any{
				"changeType": "created", "notificationUrl": e.srv.URL, "resource": "users/phish@contoso.com/messages",
				"expirationDateTime": b.sim.Now().Add(time.Hour).Format(time.RFC3339),
			})
			if r.status != http.StatusBadRequest || r.errorCode(t) != "InvalidRequest" {
				t.Fatalf("got %d %s", r.status, r.body)
			}
			if !strings.Contains(string(r.body), tt.want) {
				t.Errorf("message %s lacks %q", r.body, tt.want)
			}
			if len(b.sim.Subscriptions()) != 0 {
				t.Error("a subscription was created despite the failed handshake")
			}
		})
	}
}

func TestCreateSubscriptionValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{MaxExpiry: 10070 * time.Minute})
	e := newEndpoint(t, nil)
	now := b.sim.Now()
	tests := []struct {
		name   string
		change map[string]any
		status int
		code   string
		msg    string
	}{
		{"missing changeType", map[string]any{"changeType": nil}, 400, "InvalidRequest", "changeType"},
		{"bad changeType", map[string]any{"changeType": "created,exploded"}, 400, "InvalidRequest", "changeType"},
		{"missing notificationUrl", map[string]any{"notificationUrl": nil}, 400, "InvalidRequest", "notificationUrl"},
		{"missing resource", map[string]any{"resource": nil}, 400, "InvalidRequest", "resource"},
		{"missing expiry", map[string]any{"expirationDateTime": nil}, 400, "InvalidRequest", "expirationDateTime"},
		{"garbage expiry", map[string]any{"expirationDateTime": "tomorrow"}, 400, "InvalidRequest", "DateTimeOffset"},
		{"past expiry", map[string]any{"expirationDateTime": now.Add(-time.Minute).Format(time.RFC3339)}, 400, "InvalidRequest", "future"},
		{"expiry over max", map[string]any{"expirationDateTime": now.Add(10080 * time.Minute).Format(time.RFC3339)}, 400, "ExtensionError", "Subscription expiration can only be 10070 minutes in the future."},
		{"long clientState", map[string]any{"clientState": strings.Repeat("x", 129)}, 400, "InvalidRequest", "128"},
		{"bad tls", map[string]any{"latestSupportedTlsVersion": "v9"}, 400, "InvalidRequest", "latestSupportedTlsVersion"},
		{"relative url", map[string]any{"notificationUrl": "/hook"}, 400, "InvalidRequest", "absolute"},
		{"me resource", map[string]any{"resource": "me/messages"}, 400, "BadRequest", "delegated"},
		{"odd resource", map[string]any{"resource": "users/phish@contoso.com/events"}, 400, "InvalidRequest", "not supported"},
		{"unknown user", map[string]any{"resource": "users/nobody@contoso.com/messages"}, 404, "ExtensionError", "nobody@contoso.com"},
		{"unknown folder", map[string]any{"resource": "users/phish@contoso.com/mailFolders('nope')/messages"}, 404, "ExtensionError", "folder"},
		{"rich notifications", map[string]any{"includeResourceData": true}, 400, "InvalidRequest", "encryptionCertificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{
				"changeType": "created", "notificationUrl": e.srv.URL, "resource": "users/phish@contoso.com/messages",
				"expirationDateTime": now.Add(time.Hour).Format(time.RFC3339),
			}
			for k, v := range tt.change {
				if v == nil {
					delete(body, k)
				} else {
					body[k] = v
				}
			}
			r := b.do(t, "POST", "/v1.0/subscriptions", body)
			if r.status != tt.status || r.errorCode(t) != tt.code || !strings.Contains(string(r.body), tt.msg) {
				t.Errorf("got %d %s, want %d %s containing %q", r.status, r.body, tt.status, tt.code, tt.msg)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("error content type %q", ct)
			}
		})
	}
	t.Run("malformed json", func(t *testing.T) {
		r := b.do(t, "POST", "/v1.0/subscriptions", "{not json")
		if r.status != 400 {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
}

func TestHTTPSRequiredUnlessAllowed(t *testing.T) {
	t.Parallel()
	sim := New(Options{})
	t.Cleanup(sim.Close)
	sim.AddMailbox("phish@contoso.com")
	b := &bundle{sim: sim, token: sim.IssueToken()}
	srv := newTestServer(t, sim)
	b.srv = srv
	r := b.do(t, "POST", "/v1.0/subscriptions", map[string]any{
		"changeType": "created", "notificationUrl": "http://127.0.0.1:1/hook", "resource": "users/phish@contoso.com/messages",
		"expirationDateTime": sim.Now().Add(time.Hour).Format(time.RFC3339),
	})
	if r.status != 400 || !strings.Contains(string(r.body), "HTTPS") {
		t.Errorf("got %d %s", r.status, r.body)
	}
}

func TestExpiryFloorRenewalAndExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	now := b.sim.Now()
	sub := b.subscribe(t, e, map[string]any{"expirationDateTime": now.Add(5 * time.Minute).Format(time.RFC3339)})
	id := sub["id"].(string)
	exp, _ := time.Parse(time.RFC3339Nano, sub["expirationDateTime"].(string))
	if !exp.Equal(now.Add(45 * time.Minute)) {
		t.Errorf("expiry %v, want raised to %v", exp, now.Add(45*time.Minute))
	}

	r := b.do(t, "PATCH", "/v1.0/subscriptions/"+id, map[string]any{"expirationDateTime": now.Add(3 * time.Hour).Format(time.RFC3339)})
	if r.status != 200 || r.json(t)["clientState"] != nil {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	r = b.do(t, "PATCH", "/v1.0/subscriptions/"+id, map[string]any{"lifecycleNotificationUrl": e.srv.URL})
	if r.status != 400 {
		t.Errorf("adding a lifecycle URL by PATCH: %d %s", r.status, r.body)
	}
	r = b.do(t, "PATCH", "/v1.0/subscriptions/"+id, map[string]any{"resource": "users/x/messages"})
	if r.status != 400 {
		t.Errorf("changing the resource by PATCH: %d %s", r.status, r.body)
	}

	b.sim.Advance(3*time.Hour + time.Second)
	r = b.do(t, "PATCH", "/v1.0/subscriptions/"+id, map[string]any{"expirationDateTime": b.sim.Now().Add(3 * time.Hour).Format(time.RFC3339)})
	if r.status != 404 {
		t.Errorf("renewing an expired subscription: %d %s", r.status, r.body)
	}
	if r := b.do(t, "POST", "/v1.0/subscriptions/"+id+"/reauthorize", nil); r.status != 404 {
		t.Errorf("reauthorize expired: %d", r.status)
	}
	if r := b.do(t, "DELETE", "/v1.0/subscriptions/"+id, nil); r.status != 404 {
		t.Errorf("delete expired: %d", r.status)
	}
	if len(b.sim.Subscriptions()) != 0 {
		t.Error("expired subscription still listed")
	}
	if r := b.do(t, "PATCH", "/v1.0/subscriptions/unknown", map[string]any{"expirationDateTime": now.Format(time.RFC3339)}); r.status != 404 {
		t.Errorf("unknown: %d", r.status)
	}
}

func TestDuplicateQuotaListDeleteReauthorize(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{MaxSubscriptionsPerMailbox: 3, PageSize: 2})
	e := newEndpoint(t, nil)
	first := b.subscribe(t, e, nil)
	r := b.do(t, "POST", "/v1.0/subscriptions", map[string]any{
		"changeType": "created", "notificationUrl": e.srv.URL, "resource": "Users/PHISH@contoso.com/mailFolders/Inbox/messages",
		"expirationDateTime": b.sim.Now().Add(time.Hour).Format(time.RFC3339),
	})
	if r.status != http.StatusConflict || !strings.Contains(string(r.body), first["id"].(string)) {
		t.Fatalf("duplicate: %d %s", r.status, r.body)
	}
	b.subscribe(t, e, map[string]any{"resource": "users/phish@contoso.com/messages"})
	b.subscribe(t, e, map[string]any{"changeType": "created,updated"})
	r = b.do(t, "POST", "/v1.0/subscriptions", map[string]any{
		"changeType": "deleted", "notificationUrl": e.srv.URL, "resource": "users/phish@contoso.com/messages",
		"expirationDateTime": b.sim.Now().Add(time.Hour).Format(time.RFC3339),
	})
	if r.status != http.StatusForbidden {
		t.Fatalf("quota: %d %s", r.status, r.body)
	}

	var ids []string
	next := "/v1.0/subscriptions"
	for next != "" {
		r := b.do(t, "GET", next, nil)
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		m := r.json(t)
		for _, v := range m["value"].([]any) {
			s := v.(map[string]any)
			if s["clientState"] != nil {
				t.Errorf("list returned clientState %v", s["clientState"])
			}
			ids = append(ids, s["id"].(string))
		}
		next, _ = m["@odata.nextLink"].(string)
		if next != "" && !strings.HasPrefix(next, b.srv.URL+"/v1.0/") {
			t.Fatalf("nextLink %q is not absolute", next)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("listed %d subscriptions, want 3", len(ids))
	}
	if r := b.do(t, "GET", "/v1.0/subscriptions?$top=1", nil); r.status != 400 {
		t.Errorf("OData query options on the list: %d", r.status)
	}
	if r := b.do(t, "POST", "/v1.0/subscriptions/"+ids[0]+"/reauthorize", nil); r.status != 204 {
		t.Errorf("reauthorize: %d %s", r.status, r.body)
	}
	if r := b.do(t, "DELETE", "/v1.0/subscriptions/"+ids[0], nil); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := b.do(t, "GET", "/v1.0/subscriptions/"+ids[0], nil); r.status != 404 {
		t.Errorf("get deleted: %d", r.status)
	}
}

func TestHandshakeOverHTTPSWithInjectedClient(t *testing.T) {
	t.Parallel()
	hook := httptestTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	sim := New(Options{HTTPClient: hook.Client()})
	t.Cleanup(sim.Close)
	sim.AddMailbox("phish@contoso.com")
	b := &bundle{sim: sim, srv: newTestServer(t, sim), token: sim.IssueToken()}
	r := b.do(t, "POST", "/v1.0/subscriptions", map[string]any{
		"changeType": "created", "notificationUrl": hook.URL + "/hook", "resource": "users/phish@contoso.com/messages",
		"expirationDateTime": sim.Now().Add(time.Hour).Format(time.RFC3339),
	})
	if r.status != http.StatusCreated {
		t.Fatalf("https handshake with the injected client: %d %s", r.status, r.body)
	}
}

func TestSubscriptionAPIBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{SubscriptionBudgetScale: 0.1})
	for i := range 2 {
		if r := b.do(t, "GET", "/v1.0/subscriptions", nil); r.status != 200 {
			t.Fatalf("list %d: %d", i, r.status)
		}
	}
	b.sim.Advance(5 * time.Second)
	r := b.do(t, "GET", "/v1.0/subscriptions", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "15" {
		t.Fatalf("third list within 20 s at 10%% of 25: %d %q", r.status, r.header.Get("Retry-After"))
	}
	b.sim.Advance(15 * time.Second)
	if r := b.do(t, "GET", "/v1.0/subscriptions", nil); r.status != 200 {
		t.Errorf("next window: %d", r.status)
	}
}
