package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkWebhookIntake sends change notifications at a fixed 200 per
// second to the running service (SQLite store, queue and workers running,
// subscription created through the simulator's handshake) and reports the
// acknowledgement latency percentiles. Run it with a fixed count, e.g.
// -benchtime=3000x for 15 seconds of traffic.
func BenchmarkWebhookIntake(b *testing.B) {
	sb := start(b, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subs, err := sb.App.Store().Subscriptions(ctx)
	for err == nil && len(subs) == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		subs, err = sb.App.Store().Subscriptions(ctx)
	}
	if err != nil || len(subs) == 0 {
		b.Fatalf("no subscription: %v", err)
	}
	sub := subs[0]
	body := func(i int) []byte {
		v, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
			"subscriptionId": sub.ID, "clientState": sub.ClientState, "changeType": "created", "tenantId": TenantID,
			"resource":     "users/x/messages/bench",
			"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.Message", "id": fmt.Sprintf("AAMk-bench-%d", i)},
		}}})
		return v
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const rate = 200
	interval := time.Second / rate
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed sync.Map
	b.ResetTimer()
	begin := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(begin.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			resp, err := client.Post(sb.ServiceURL()+"/webhooks/graph", "application/json", bytes.NewReader(body(i)))
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
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(rate, "req/s")
}
