package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/store"
)

const (
	tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	subID  = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
	secret = "client-state-secret"
)

type running struct {
	app  *App
	base string
	stop func() error
}

func startApp(tb testing.TB) *running {
	tb.Helper()
	dir := tb.TempDir()
	dbURL := "sqlite://" + filepath.Join(dir, "state.db")
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.SaveSubscription(ctx, store.Subscription{ID: subID, Mailbox: "phish@contoso.com", Folder: "Inbox",
		ClientState: secret, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	_ = st.Close()
	cfg := &config.Config{
		ListenAddr: "127.0.0.1:0", PublicURL: "https://m2a.example.com", TenantID: tenant,
		DatabaseURL: config.Secret(dbURL), MaxBodyBytes: 1 << 20, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, ShutdownTimeout: 10 * time.Second, Workers: 4,
	}
	a, err := New(ctx, cfg, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	r := &running{app: a, base: "http://" + a.Addr()}
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	tb.Cleanup(func() { _ = r.stop() })
	// Wait until the queue has started and /readyz says so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("service never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

func notification(messageID string) []byte {
	b, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
		"subscriptionId": subID, "clientState": secret, "changeType": "created", "tenantId": tenant,
		"resource":     "users/x/messages/" + messageID,
		"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.Message", "id": messageID},
	}}})
	return b
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	t.Parallel()
	r := startApp(t)
	resp, err := http.Post(r.base+"/webhooks/graph", "application/json", bytes.NewReader(notification("AAMk-1")))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	m, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	_ = m.Body.Close()
	if !bytes.Contains(body, []byte(`m2a_queue_jobs{state=`)) {
		t.Errorf("queue depth metric missing:\n%s", body)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// BenchmarkWebhookIntake sends notifications at a fixed 200 per second to the
// running service (SQLite store, queue started with its workers) and reports
// the acknowledgement latency percentiles. Run it with a fixed count, e.g.
// -benchtime=3000x for 15 seconds of traffic.
func BenchmarkWebhookIntake(b *testing.B) {
	r := startApp(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rate = 200
	interval := time.Second / rate
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed sync.Map
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := notification(fmt.Sprintf("AAMk-bench-%d", i))
			t0 := time.Now()
			resp, err := client.Post(r.base+"/webhooks/graph", "application/json", bytes.NewReader(body))
			lat[i] = time.Since(t0)
			if err != nil {
				failed.Store(i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				failed.Store(i, resp.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	failed.Range(func(k, v any) bool { b.Fatalf("request %v failed: %v", k, v); return false })
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(rate, "req/s")
}
