package incident_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

type sample struct {
	mime []byte
	meta email.Metadata
}

// benchSetup compiles the example mapping against the Archer simulator and
// reads the sandbox's sample reports.
func benchSetup(b *testing.B) (*incident.Compiled, []sample) {
	b.Helper()
	sim, err := archersim.New(archersim.Options{VirtualDir: "/RSAArcher", Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	client, err := archer.New(archer.Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default",
		Username: "mail2archer", Password: "mail2archer-sandbox"}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	m, err := incident.Load("../../api/mapping.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c, err := m.Compile(context.Background(), client)
	if err != nil {
		b.Fatal(err)
	}
	paths, err := filepath.Glob("../sandbox/samples/*.eml")
	if err != nil || len(paths) == 0 {
		b.Fatalf("no sample reports: %v", err)
	}
	var out []sample
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, sample{mime: raw, meta: email.Metadata{Mailbox: "phish@contoso.com",
			MessageID: "AAkALgAAAAAAHYQDEapmEc2byACqAC-" + filepath.Base(p), Subject: "FW: reported",
			ReceivedAt: time.Date(2026, 3, 12, 7, 45, 0, 0, time.UTC),
			From:       email.Address{Name: "Alice Smith", Address: "alice@contoso.com"}}})
	}
	return c, out
}

var benchOptions = email.Options{InternalDomains: []string{"contoso.com"}}

// BenchmarkRender renders each sandbox sample's analysed report into an
// Archer record with the example mapping (templates, values lists, files);
// one operation renders all samples.
func BenchmarkRender(b *testing.B) {
	c, samples := benchSetup(b)
	reps := make([]*email.Report, len(samples))
	for i, s := range samples {
		rep, err := email.Analyze(s.mime, s.meta, benchOptions)
		if err != nil {
			b.Fatal(err)
		}
		reps[i] = rep
	}
	now := time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for i, rep := range reps {
			if _, err := c.Render(rep, incident.FromBytes(samples[i].mime), now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(reps))/time.Since(start).Seconds(), "renders/s")
}

// BenchmarkAnalyzeAndRender is a worker's CPU work per email between the
// Graph fetch and the Archer calls: parse and analyse the MIME, then
// render the record; one operation handles all samples.
func BenchmarkAnalyzeAndRender(b *testing.B) {
	c, samples := benchSetup(b)
	var size int64
	for _, s := range samples {
		size += int64(len(s.mime))
	}
	now := time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC)
	b.SetBytes(size)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for _, s := range samples {
			rep, err := email.Analyze(s.mime, s.meta, benchOptions)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Render(rep, incident.FromBytes(s.mime), now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(samples))/time.Since(start).Seconds(), "emails/s")
}
