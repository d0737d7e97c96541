package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// startUnready starts a sandbox without waiting for readiness.
func startUnready(t *testing.T, opts Options) *Sandbox {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
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
	return sb
}

type readinessBody struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status string `json:"status"`
		Detail string `json:"detail"`
	} `json:"components"`
}

// readiness reads /readyz.
func readiness(t *testing.T, sb *Sandbox) (int, readinessBody) {
	t.Helper()
	resp, err := http.Get("http://" + sb.App.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body readinessBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// logins counts the login requests Archer received.
func logins(sb *Sandbox) int {
	n := 0
	for _, r := range sb.Archer.Requests() {
		if strings.HasSuffix(strings.ToLower(r.Path), "/security/login") {
			n++
		}
	}
	return n
}

// endedJobs counts jobs that will never run again.
func endedJobs(t *testing.T, sb *Sandbox) int {
	t.Helper()
	counts, err := sb.App.Store().JobCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return counts[string(rivertype.JobStateCancelled)] + counts[string(rivertype.JobStateDiscarded)]
}

func TestARotatedArcherPasswordMakesJobsWaitNotEnd(t *testing.T) {
	t.Parallel()
	const backoff = 400 * time.Millisecond
	sb := start(t, Options{App: app.Options{RetryPolicy: quickRetry{}, ArcherLoginBackoff: backoff,
		ArcherCheckEvery: 50 * time.Millisecond, OperatorWait: time.Minute}})
	// Archer's administrator rotates the API user's password and its
	// session ends: every login is now refused.
	sb.Archer.SetPassword("mail2archer", "rotated-elsewhere")
	sb.Archer.ExpireSessions()
	before := logins(sb)
	refusedAt := time.Now()
	for _, p := range []string{"01-", "02-", "04-"} {
		if _, err := sb.Deliver(sample(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "readiness to name the refused login", func() bool {
		code, r := readiness(t, sb)
		a := r.Components["archer"]
		return code == http.StatusServiceUnavailable && a.Status == "fail" && strings.Contains(a.Detail, "M2A_ARCHER_PASSWORD")
	})
	waitFor(t, 15*time.Second, "a few backoffs of refused logins", func() bool { return logins(sb)-before >= 3 })
	// However often jobs, probes and checks ask, one login per backoff.
	for i := 0; i < 200; i++ {
		readiness(t, sb)
	}
	elapsed := time.Since(refusedAt)
	if n, most := logins(sb)-before, int(elapsed/backoff)+1; n > most {
		t.Errorf("%d logins in %s with a %s backoff; at most %d allowed", n, elapsed, backoff, most)
	}
	if n := len(sb.incidents()); n != 0 {
		t.Fatalf("%d incidents while every login is refused", n)
	}
	if n := endedJobs(t, sb); n != 0 {
		t.Fatalf("%d jobs ended because of a refused login", n)
	}

	// The password is set back: the next login works, and the waiting jobs
	// (snoozed for a minute) are woken at once.
	sb.Archer.SetPassword("mail2archer", "mail2archer-sandbox")
	if _, err := sb.WaitRecords(waitCtx(t, 20*time.Second), 3); err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.incidents()); n != 3 {
		t.Fatalf("%d incidents for 3 emails", n)
	}
	if n := endedJobs(t, sb); n != 0 {
		t.Fatalf("%d jobs ended", n)
	}
}

func TestIntakeWorksWhileArcherIsDownAtStart(t *testing.T) {
	t.Parallel()
	sb := startUnready(t, Options{ArcherStopped: true, App: app.Options{RetryPolicy: quickRetry{},
		PreflightRetry: 50 * time.Millisecond, ArcherCheckEvery: 50 * time.Millisecond, OperatorWait: time.Minute}})
	resp, err := http.Get("http://" + sb.App.Addr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	waitFor(t, 15*time.Second, "readiness to name Archer", func() bool {
		code, r := readiness(t, sb)
		return code == http.StatusServiceUnavailable && r.Components["archer"].Status == "fail" &&
			r.Components["mapping"].Status == "fail" && r.Components["queue"].Status == "ok"
	})
	if err := sb.WaitSubscribed(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	for _, p := range []string{"03-", "05-"} {
		if _, err := sb.Deliver(sample(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.Graph.WaitDelivered(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, d := range sb.Graph.Deliveries() {
		if d.Status == http.StatusAccepted {
			accepted.Add(1)
		}
	}
	if accepted.Load() < 2 {
		t.Fatalf("%d notifications acknowledged while Archer is down", accepted.Load())
	}
	counts, err := sb.App.Store().JobCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts["completed"] != 0 || counts["available"]+counts["scheduled"]+counts["running"]+counts["retryable"] < 2 {
		t.Fatalf("jobs while Archer is down: %v", counts)
	}
	if err := sb.StartArcher(); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.WaitRecords(waitCtx(t, 30*time.Second), 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "readiness", func() bool { code, _ := readiness(t, sb); return code == http.StatusOK })
	if n := endedJobs(t, sb); n != 0 {
		t.Fatalf("%d jobs ended because Archer was down", n)
	}
}

func TestEachArcherFailureEndsWhereTheTableSays(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		inject func(sb *Sandbox)
		heal   func(sb *Sandbox)
		// ended says the job must end with this reason; otherwise an
		// incident must be created once the fault is gone.
		ended string
	}{
		{"sign-on page", func(sb *Sandbox) { sb.Archer.HTMLRedirect(true) }, func(sb *Sandbox) { sb.Archer.HTMLRedirect(false) }, ""},
		{"429 with Retry-After: 1", func(sb *Sandbox) { sb.Archer.FailNextRetryAfter(2, http.StatusTooManyRequests, 1) }, nil, ""},
		{"503", func(sb *Sandbox) { sb.Archer.FailNext(2, http.StatusServiceUnavailable) }, nil, ""},
		// The create fails: the background check must not take the fault.
		{"501", func(sb *Sandbox) {
			sb.Archer.FailNextWith(1, archersim.Failure{Status: http.StatusNotImplemented, PathSuffix: "/core/content"})
		}, nil, "archer_http_501"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := start(t, Options{App: app.Options{RetryPolicy: quickRetry{}, ArcherLoginBackoff: 200 * time.Millisecond,
				ArcherCheckEvery: 50 * time.Millisecond, OperatorWait: time.Minute}})
			tc.inject(sb)
			id, err := sb.Deliver(sample(t, "04-"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ended != "" {
				m, _ := sb.Graph.Message(Mailbox, id)
				waitFor(t, 15*time.Second, "the job to end", func() bool {
					var b strings.Builder
					if err := ops.ListJobs(context.Background(), sb.App.Store(), "cancelled", 10, &b); err != nil {
						t.Fatal(err)
					}
					return strings.Contains(b.String(), m.ImmutableID[:20]) && strings.Contains(b.String(), tc.ended)
				})
				return
			}
			if tc.heal != nil {
				waitFor(t, 15*time.Second, "readiness to name Archer", func() bool {
					_, r := readiness(t, sb)
					return r.Components["archer"].Status == "fail"
				})
				if n := endedJobs(t, sb); n != 0 {
					t.Fatalf("%d jobs ended", n)
				}
				tc.heal(sb)
			}
			if _, err := sb.WaitRecords(waitCtx(t, 20*time.Second), 1); err != nil {
				t.Fatal(err)
			}
			if n := endedJobs(t, sb); n != 0 {
				t.Fatalf("%d jobs ended", n)
			}
		})
	}
}

func TestAnUntrustedArcherCertificateWaitsForTheOperator(t *testing.T) {
	t.Parallel()
	// Archer served over TLS with a certificate the service does not trust.
	var tlsURL string
	sb := startUnready(t, Options{
		ArcherSetup: func(s *archersim.Server) {
			srv := httptest.NewTLSServer(s)
			t.Cleanup(srv.Close)
			tlsURL = srv.URL
		},
		Configure: func(c *config.Config) { c.ArcherURL = tlsURL + "/RSAArcher" },
		App:       app.Options{PreflightRetry: 50 * time.Millisecond},
	})
	waitFor(t, 15*time.Second, "readiness to name the certificate", func() bool {
		_, r := readiness(t, sb)
		return strings.Contains(r.Components["archer"].Detail, "M2A_ARCHER_CA_FILE")
	})
}

func TestAForbiddenKeyLookupIsNamedByCheckAndReadiness(t *testing.T) {
	t.Parallel()
	sb := startUnready(t, Options{App: app.Options{PreflightRetry: 50 * time.Millisecond},
		ArcherSetup: func(s *archersim.Server) { s.ForbidContentAPI(true) }})
	var out bytes.Buffer
	cfg := *sb.Config
	cfg.DatabaseURL = config.Secret("sqlite://" + filepath.Join(t.TempDir(), "check.db"))
	if ok := ops.WriteCheck(&out, ops.Check(context.Background(), &cfg, sb.App.Logger(), ops.CheckOptions{GraphHTTPClient: sb.graphSrv.Client()})); ok {
		t.Fatalf("check passed while the Content API is forbidden:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "✘ archer record lookup") || !strings.Contains(out.String(), "read access") {
		t.Errorf("check does not name the lookup and its fix:\n%s", out.String())
	}
	waitFor(t, 15*time.Second, "readiness to name the lookup", func() bool {
		_, r := readiness(t, sb)
		return r.Components["mapping"].Status == "fail" && strings.Contains(r.Components["mapping"].Detail, "look up a record")
	})
}
