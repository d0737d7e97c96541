package graphsim

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// BenchmarkDeliverNotifyFetch measures the simulator's own throughput for
// one email: store the MIME, post the notification to a webhook, then serve
// the message and its $value.
func BenchmarkDeliverNotifyFetch(b *testing.B) {
	sim := New(Options{AllowHTTP: true, Budget: 1 << 30})
	srv := newBenchServer(b, sim)
	sim.AddMailbox("phish@contoso.com")
	token := sim.IssueToken()
	hook := newBenchServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("validationToken") {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	sub := map[string]any{"changeType": "created", "notificationUrl": hook.URL, "resource": "users/phish@contoso.com/messages",
		"expirationDateTime": sim.Now().Add(time.Hour).Format(time.RFC3339)}
	if status := benchDo(b, srv.URL, token, "POST", "/v1.0/subscriptions", sub); status != 201 {
		b.Fatalf("subscribe: %d", status)
	}
	mime := benchMIME(b)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id, err := sim.Deliver("phish@contoso.com", "inbox", mime)
		if err != nil {
			b.Fatal(err)
		}
		p := "/v1.0/users/phish@contoso.com/messages/" + url.PathEscape(id)
		if s := benchDo(b, srv.URL, token, "GET", p+"?$select=subject,internetMessageHeaders", nil); s != 200 {
			b.Fatalf("get: %d", s)
		}
		if s := benchDo(b, srv.URL, token, "GET", p+"/$value", nil); s != 200 {
			b.Fatalf("$value: %d", s)
		}
	}
	if err := sim.WaitDelivered(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "emails/s")
	b.StopTimer()
	sim.Close()
}
