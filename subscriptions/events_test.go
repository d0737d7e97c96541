package subscriptions_test

import (
	"context"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestEventsReportWhatTheManagerDid(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	stop := b.run(t, b.mgr)
	b.settle(t)
	old := b.liveSub(t, mailbox)

	// A missed event whose resync fails, then one whose resync finds the
	// message no notification announced.
	b.graph.SetDropping(true)
	b.graph.Deliver(mailbox, "Inbox")
	b.graph.FailNext("Delta", errBoom)
	if err := b.mgr.HandleLifecycle(ctx, old.ID, subscriptions.EventMissed); err == nil {
		t.Fatal("a failed resync was hidden")
	}
	if err := b.mgr.HandleLifecycle(ctx, old.ID, subscriptions.EventMissed); err != nil {
		t.Fatal(err)
	}
	// Graph forgot the subscription; the reauthorization finds out.
	b.graph.Remove(old.ID)
	b.clock.Advance(subscriptions.ReauthorizeGap + time.Minute)
	b.settle(t)
	if err := b.mgr.HandleLifecycle(ctx, old.ID, subscriptions.EventReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	stop()

	ok, failed, gone := subscriptions.OutcomeOK, subscriptions.OutcomeError, subscriptions.OutcomeNotFound
	want := []subscriptions.Event{
		{Kind: subscriptions.KindLeadership, Leader: true},
		{Kind: subscriptions.KindCreate, Mailbox: mailbox, Outcome: ok},
		{Kind: subscriptions.KindResync, Mailbox: mailbox, Outcome: ok},
		{Kind: subscriptions.KindLifecycle, Mailbox: mailbox, LifecycleEvent: subscriptions.EventMissed},
		{Kind: subscriptions.KindResync, Mailbox: mailbox, Outcome: failed},
		{Kind: subscriptions.KindLifecycle, Mailbox: mailbox, LifecycleEvent: subscriptions.EventMissed},
		{Kind: subscriptions.KindResync, Mailbox: mailbox, Outcome: ok, Found: 1, Queued: 1},
		{Kind: subscriptions.KindLifecycle, Mailbox: mailbox, LifecycleEvent: subscriptions.EventReauthorizationRequired},
		{Kind: subscriptions.KindReauthorize, Mailbox: mailbox, Outcome: gone},
		{Kind: subscriptions.KindCreate, Mailbox: mailbox, Outcome: ok},
		{Kind: subscriptions.KindResync, Mailbox: mailbox, Outcome: ok},
		{Kind: subscriptions.KindLeadership, Leader: false},
	}
	got := b.events.all()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAResyncCutShortIsReportedAsCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.mgr.ReconcileOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The context ends while Graph answers the first page.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.graph.FailNext("Delta", context.Canceled)
	if _, err := b.mgr.Resync(ctx, mailbox); err == nil {
		t.Fatal("a resync with an ended context succeeded")
	}
	evs := b.events.all()
	last := evs[len(evs)-1]
	if last.Kind != subscriptions.KindResync || last.Outcome != subscriptions.OutcomeCanceled {
		t.Errorf("last event %+v, want a canceled resync", last)
	}
	if n := b.events.count(subscriptions.KindResync, mailbox, subscriptions.OutcomeError); n != 0 {
		t.Errorf("%d resyncs reported as errors", n)
	}
}

func TestNoEventsWithoutACallback(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	m, err := subscriptions.New(b.cfg, b.graph, b.store, b.queue, subscriptions.Options{Clock: b.clock})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.ReconcileOnce(context.Background())
	if err != nil || !rep.Managed {
		t.Fatalf("ReconcileOnce = %+v, %v", rep, err)
	}
	b.liveSub(t, mailbox)
}
