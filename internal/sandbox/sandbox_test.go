package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// storeEnv runs the sandbox suite on PostgreSQL when set to "postgres"
// (with M2A_TEST_POSTGRES_URL naming the server): the same tests, the other
// store.
const storeEnv = "M2A_TEST_SANDBOX_STORE"

func onPostgres() bool { return os.Getenv(storeEnv) == "postgres" }

func start(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if onPostgres() {
		dbURL := pgdb.Database(t)
		configure := opts.Configure
		opts.Configure = func(c *config.Config) {
			c.DatabaseURL = config.Secret(dbURL)
			if configure != nil {
				configure(c)
			}
		}
	}
	if opts.Logger.GetLevel() == zerolog.TraceLevel {
		opts.Logger = zerolog.Nop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if err := sb.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestSamplesBecomeIncidents delivers the default samples: nine reports
// of seven emails, the campaign sample's one original reported by three
// people and a training simulation that the example mapping's rule skips.
// Every other report lands (a record counts its reports), and no two
// emails share a record; TestTheDefaultSamplesFormACampaign checks the
// campaign, TestTheSimulationSampleIsSkippedAndAcknowledged the skip.
func TestSamplesBecomeIncidents(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	samples := Samples()
	if len(samples) != 9 {
		t.Fatalf("%d samples, want 9", len(samples))
	}
	for _, s := range samples {
		if _, err := sb.Deliver(s.MIME); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := sb.WaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = WriteTable(&table, recs)
	t.Log("\n" + table.String())
	reports := map[string]int{} // reports per reported subject
	for _, r := range recs {
		reports[fmt.Sprint(r.Fields["Reported Subject"])] += Reports(r)
	}
	if total := totalReports(recs); total != len(samples)-1 || len(reports) != 6 {
		t.Errorf("%d reports of %d emails in %d records, want 8 reports of 6 emails", total, len(reports), len(recs))
	}
	if got := reports["Please DocuSign: Northwind_Invoice_INV-58813.pdf"]; got != 3 {
		t.Errorf("the campaign sample counts %d reports, want 3: %v", got, reports)
	}
}

// totalReports is the number of reports records stand for.
func totalReports(recs []archersim.Record) int {
	n := 0
	for _, r := range recs {
		n += Reports(r)
	}
	return n
}

func TestDeliverThroughTheControlAPI(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	ctl := httptest.NewServer(sb.ControlHandler())
	t.Cleanup(ctl.Close)
	addr := strings.TrimPrefix(ctl.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := DeliverTo(ctx, addr, Samples()[0].MIME)
	if err != nil || id == "" {
		t.Fatalf("deliver: %q %v", id, err)
	}
	if _, err := sb.WaitRecords(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := DeliverTo(ctx, addr, nil); err == nil || !strings.Contains(err.Error(), "raw email") {
		t.Errorf("an empty email was accepted: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	if _, err := DeliverTo(ctx, dead, []byte("x")); err == nil || !strings.Contains(err.Error(), "mail2archer-sandbox") {
		t.Errorf("no sandbox running: %v", err)
	}
}
