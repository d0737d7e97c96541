package sandbox

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/pgdb"
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

func TestSamplesBecomeIncidents(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	samples := Samples()
	if len(samples) != 5 {
		t.Fatalf("%d samples", len(samples))
	}
	for _, s := range samples {
		if _, err := sb.Deliver(s.MIME); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := sb.WaitRecords(ctx, len(samples))
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = WriteTable(&table, recs)
	t.Log("\n" + table.String())
	if len(recs) != len(samples) {
		t.Errorf("%d records for %d emails", len(recs), len(samples))
	}
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
