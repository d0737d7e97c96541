package subscriptions_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// openSQL opens the service's state store, which is a subscriptions.Store
// as it is.
func openSQL(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestTwoManagersOnOneDatabaseOnlyOneActs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.store = openSQL(t)
	a := b.newManager(t, "replica-a")
	c := b.newManager(t, "replica-b")
	stopA := b.run(t, a)
	b.settle(t)
	b.run(t, c)
	b.settle(t)
	b.advance(t, 2*time.Hour)

	if n := b.graph.Calls("CreateSubscription"); n != 1 {
		t.Fatalf("%d creations by two managers, want 1", n)
	}
	if n := b.graph.Calls("ListSubscriptions"); n != 1 {
		t.Errorf("%d start-up reconciles, want 1", n)
	}
	leaders := 0
	for _, m := range []*subscriptions.Manager{a, c} {
		st := m.Status()[0]
		if st.Leader {
			leaders++
		}
		// The standby follows the stored subscription for readiness.
		if st.SubscriptionID != b.liveSub(t, mailbox).ID {
			t.Errorf("%s sees subscription %q", m.Holder(), st.SubscriptionID)
		}
		if err := m.Ready(); err != nil {
			t.Errorf("%s not ready: %v", m.Holder(), err)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	if err := c.HandleLifecycle(context.Background(), b.liveSub(t, mailbox).ID, subscriptions.EventMissed); !errors.Is(err, subscriptions.ErrNotLeader) {
		t.Errorf("standby handled a lifecycle event: %v", err)
	}
	// Every resync ran on the leader only: 8 in two hours.
	if n := b.graph.Calls("Delta"); n < 8 || n > 10 {
		t.Errorf("%d delta calls in two hours, want 8 or 9 (one manager every 15 minutes)", n)
	}

	// The leader stops: it releases the lease and the standby takes over
	// at its next try, keeping the subscription.
	sub := b.liveSub(t, mailbox)
	stopA()
	b.advance(t, subscriptions.DefaultLeaseTTL/3)
	if !c.Status()[0].Leader {
		t.Fatal("the standby did not take over")
	}
	if got := b.liveSub(t, mailbox); got.ID != sub.ID || b.graph.Calls("CreateSubscription") != 1 {
		t.Errorf("the takeover replaced the subscription: %+v", got)
	}
	if err := c.HandleLifecycle(context.Background(), sub.ID, subscriptions.EventMissed); err != nil {
		t.Errorf("new leader: %v", err)
	}
}

func TestAStandbyTakesOverWhenTheLeaderDies(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.store = openSQL(t)
	// The dead leader's lease is in the table, never released.
	ok, err := b.store.TryAcquireLease(context.Background(), subscriptions.LeaseName, "crashed", t0, subscriptions.DefaultLeaseTTL)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	m := b.newManager(t, "replica-b")
	b.run(t, m)
	b.settle(t)
	if m.Status()[0].Leader || b.graph.Calls("CreateSubscription") != 0 {
		t.Fatal("acted while another replica's lease runs")
	}
	if err := m.Ready(); err == nil {
		t.Error("ready without a subscription")
	}
	b.advance(t, subscriptions.DefaultLeaseTTL+subscriptions.DefaultLeaseTTL/3)
	if !m.Status()[0].Leader {
		t.Fatal("did not take over after the lease ended")
	}
	b.liveSub(t, mailbox)
}

func TestLeaderStepsDownWhenTheLeaseCannotBeConfirmed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	// The database fails the keeper's two extensions and the first try to
	// take the lease again.
	for range 3 {
		b.mem.FailNext("TryAcquireLease", errBoom)
	}
	b.advance(t, subscriptions.DefaultLeaseTTL/3)
	if !b.mgr.Status()[0].Leader {
		t.Fatal("stepped down after one failed extension, while the lease still runs")
	}
	b.advance(t, subscriptions.DefaultLeaseTTL/3)
	if b.mgr.Status()[0].Leader {
		t.Fatal("still acting after the lease went unconfirmed for two thirds of its TTL")
	}
	if !strings.Contains(b.logs.String(), "lease not confirmed in time") {
		t.Error("no log line about the lost lease")
	}
	b.advance(t, subscriptions.DefaultLeaseTTL/3)
	if !b.mgr.Status()[0].Leader {
		t.Fatal("did not step up again once the database answered")
	}
	if b.graph.Calls("CreateSubscription") != 1 {
		t.Error("the new leadership replaced the subscription")
	}
}

func TestLosingTheLeaseToAnotherReplicaStopsActing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	// Another replica took the lease (its clock ran ahead, say).
	if err := b.store.ReleaseLease(context.Background(), subscriptions.LeaseName, "replica-a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.store.TryAcquireLease(context.Background(), subscriptions.LeaseName, "replica-z", b.clock.Now(), 3*time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	b.advance(t, subscriptions.DefaultLeaseTTL/3)
	if b.mgr.Status()[0].Leader {
		t.Fatal("still leading after another replica took the lease")
	}
	if err := b.mgr.HandleLifecycle(context.Background(), b.liveSub(t, mailbox).ID, subscriptions.EventMissed); !errors.Is(err, subscriptions.ErrNotLeader) {
		t.Errorf("HandleLifecycle = %v, want ErrNotLeader", err)
	}
	delta := b.graph.Calls("Delta")
	b.advance(t, time.Hour)
	if b.graph.Calls("Delta") != delta {
		t.Error("a standby resynced")
	}
}
