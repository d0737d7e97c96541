package sandbox

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/pgdb"
)

// TestStoreCopyRoundTripsASandboxInstallation moves an installation made by
// the sandbox on SQLite to PostgreSQL with `store copy`, as an operator
// moves to replicas: the service on PostgreSQL keeps the Graph subscription
// (no new subscription, so no new validation handshake), creates no second
// record for an email processed before the move, finishes the email whose
// job was still waiting, and turns a new email into exactly one incident.
func TestStoreCopyRoundTripsASandboxInstallation(t *testing.T) {
	t.Parallel()
	pgURL := pgdb.Database(t)
	ctx := waitCtx(t, 3*time.Minute)

	// The installation: one container on SQLite (whatever store the rest
	// of the suite runs on).
	first, err := Start(ctx, Options{Dir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := first.Stop(); err != nil {
			t.Errorf("stop the first sandbox: %v", err)
		}
	})
	if !strings.HasPrefix(first.Config.DatabaseURL.Reveal(), "sqlite://") {
		t.Fatalf("the first service is not on SQLite: %s", first.Config.DatabaseURL)
	}
	if err := first.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := first.WaitSubscribed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"01-", "02-"} {
		if _, err := first.Deliver(sample(t, prefix)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.WaitRecords(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := first.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	subsBefore := subscriptionIDs(first)
	if len(subsBefore) != 1 {
		t.Fatalf("subscriptions before the move: %v", subsBefore)
	}

	// One email still has work to do when the service stops: Archer does
	// not answer, and its first attempt fails.
	events, unsubscribe := first.App.Subscribe(river.EventKindJobFailed, river.EventKindJobSnoozed)
	first.StopArcher()
	if _, err := first.Deliver(sample(t, "03-")); err != nil {
		t.Fatal(err)
	}
	for waiting := false; !waiting; {
		select {
		case ev := <-events:
			waiting = ev.Job.Kind == (jobs.ProcessMessage{}).Kind()
		case <-ctx.Done():
			t.Fatal("the email's job did not fail while Archer was down")
		}
	}
	unsubscribe()
	// Its logout from Archer fails (Archer is down): the one error
	// expected from this stop.
	if err := first.StopService(); err != nil && !strings.HasPrefix(err.Error(), "archer logout:") {
		t.Fatalf("stop the first service: %v", err)
	}
	if err := first.StartArcher(); err != nil {
		t.Fatal(err)
	}

	// The move.
	var report strings.Builder
	if err := ops.StoreCopy(ctx, first.Config.DatabaseURL.Reveal(), pgURL, zerolog.Nop(), &report); err != nil {
		t.Fatalf("store copy: %v", err)
	}
	t.Log("\n" + report.String())
	for _, want := range []string{`m2a_subscription +1\n`, `jobs re-queued: 1 \(process_message 1\)`} {
		if !regexp.MustCompile(want).MatchString(report.String()) {
			t.Errorf("the copy's report lacks %q", want)
		}
	}

	// The service on PostgreSQL, on the same address (Graph's subscription
	// notifies it) and the same simulators. It trusts its local state, so
	// that it is the copied state, not a lookup in Archer, that keeps it
	// from creating a record twice.
	first.Graph.ResetRequests()
	second, err := Start(ctx, Options{Dir: t.TempDir(), Logger: zerolog.Nop(), Simulators: first,
		ListenAddr: first.Config.ListenAddr,
		Configure: func(c *config.Config) {
			c.DatabaseURL = config.Secret(pgURL)
			c.TrustLocalState = true
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := second.Stop(); err != nil {
			t.Errorf("stop the second sandbox: %v", err)
		}
	})
	if err := second.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := second.WaitRecords(ctx, 3); err != nil {
		t.Fatalf("the email that waited: %v", err)
	}
	if _, err := second.Deliver(sample(t, "04-")); err != nil {
		t.Fatal(err)
	}
	if _, err := second.WaitRecords(ctx, 4); err != nil {
		t.Fatalf("a new email after the move: %v", err)
	}
	if err := first.Graph.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}

	recs := second.incidents()
	keys := map[string]int{}
	for _, r := range recs {
		keys[fmt.Sprint(r.Fields["Reported Email Key"])]++
	}
	if len(recs) != 4 || len(keys) != 4 {
		t.Errorf("%d incidents for 4 emails, by key %v", len(recs), keys)
	}
	if got := subscriptionIDs(first); !slices.Equal(got, subsBefore) {
		t.Errorf("subscriptions after the move %v, before %v", got, subsBefore)
	}
	for _, r := range first.Graph.Requests() {
		if strings.Contains(r.Path, "/subscriptions") && (r.Method == http.MethodPost || r.Method == http.MethodDelete) {
			t.Errorf("the service on PostgreSQL changed the subscriptions: %s %s", r.Method, r.Path)
		}
	}
}

// subscriptionIDs are the ids of Graph's active subscriptions, sorted.
func subscriptionIDs(sb *Sandbox) []string {
	var ids []string
	for _, s := range sb.Graph.Subscriptions() {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}
