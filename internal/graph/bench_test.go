package graph

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/rs/zerolog"
)

// BenchmarkFetchMessage measures FetchMessage ($select + $value) through the
// SDK against the simulator over TLS, four callers on one mailbox.
func BenchmarkFetchMessage(b *testing.B) {
	sim := graphsim.New(graphsim.Options{TenantID: testTenant, AppID: testApp, Budget: 1 << 30})
	srv := httptest.NewTLSServer(sim)
	b.Cleanup(func() { sim.Close(); srv.Close() })
	sim.AddMailbox(testMailbox)
	data, err := os.ReadFile("testdata/report.eml")
	if err != nil {
		b.Fatal(err)
	}
	id, err := sim.Deliver(testMailbox, "inbox", bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")))
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{TenantID: testTenant, ClientID: testApp, ClientSecret: "x", BaseURL: srv.URL + "/v1.0",
		AuthorityHost: srv.URL, HTTPClient: srv.Client(), MailboxRequestsPerSecond: 1e6, MailboxBurst: 1e6}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.FetchMessage(ctx, testMailbox, id, io.Discard); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(2) // 2 × GOMAXPROCS(2) = 4 callers
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.FetchMessage(ctx, testMailbox, id, io.Discard); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fetches/s")
}
