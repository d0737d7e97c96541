package subscriptions_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

func TestInitialSyncNeverBackfillsTheMailbox(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	// History from before the first start.
	old := b.graph.Deliver(mailbox, "Inbox")
	b.clock.Advance(time.Hour)
	b.run(t, b.mgr)
	b.settle(t)
	if ids := b.queue.IDs(mailbox); len(ids) != 0 {
		t.Fatalf("the first start queued old mail: %v", ids)
	}
	b.graph.SetDropping(true)
	fresh := b.graph.Deliver(mailbox, "Inbox")
	b.advance(t, 15*time.Minute)
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != fresh {
		t.Errorf("queued %v, want only %s (not %s)", ids, fresh, old)
	}
}

func TestFirstSeenTimeSurvivesARestart(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	// The first start records when it first saw the mailbox, but the
	// folder's first round fails, so no delta link is stored.
	b.graph.FailAlways("Delta", errBoom)
	if _, err := b.mgr.Resync(ctx, mailbox); err == nil {
		t.Fatal("resync succeeded with a failing Graph")
	}
	b.graph.FailAlways("Delta", nil)
	b.clock.Advance(2 * time.Hour)
	between := b.graph.Deliver(mailbox, "Inbox")
	b.clock.Advance(time.Hour)
	// A new process (a new Manager) on the same store.
	m := b.newManager(t, "replica-b")
	if n, err := m.Resync(ctx, mailbox); err != nil || n != 1 {
		t.Fatalf("Resync = %d, %v", n, err)
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != between {
		t.Errorf("queued %v, want the message received after the first start", ids)
	}
}

func TestConfiguredInitialSyncSince(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.InitialSyncSince = t0.Add(-90 * time.Minute) })
	b.clock.Advance(-2 * time.Hour)
	tooOld := b.graph.Deliver(mailbox, "Inbox")
	b.clock.Advance(time.Hour)
	wanted := b.graph.Deliver(mailbox, "Inbox")
	b.clock.Advance(time.Hour)
	if _, err := b.mgr.Resync(context.Background(), mailbox); err != nil {
		t.Fatal(err)
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != wanted {
		t.Errorf("queued %v, want [%s] without %s", ids, wanted, tooOld)
	}
}

func TestExpiredDeltaLinkStartsABoundedFullRound(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.LeaseTTL = 6 * time.Hour })
	b.run(t, b.mgr)
	b.settle(t)
	b.graph.SetDropping(true)
	b.clock.Advance(time.Minute)
	early := b.graph.Deliver(mailbox, "Inbox")
	b.advance(t, 5*24*time.Hour) // the early one is queued, and older than the window
	recent := b.graph.Deliver(mailbox, "Inbox")
	b.advance(t, 15*time.Minute)
	latest := b.graph.Deliver(mailbox, "Inbox")
	b.graph.ExpireDeltaLinks()
	delta := b.graph.Calls("Delta")

	n, err := b.mgr.Resync(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("queued %d new messages, want 1 (%s)", n, latest)
	}
	att := b.queue.Attempts(mailbox)
	if att[early] != 1 {
		t.Errorf("message older than the full resync window offered %d times, want 1", att[early])
	}
	if att[recent] != 2 || att[latest] != 1 {
		t.Errorf("attempts %v: the full round must offer the recent ones again", att)
	}
	if got := b.graph.Calls("Delta") - delta; got != 2 {
		t.Errorf("%d delta calls, want 2 (the expired link, then one page of the full round)", got)
	}
	if !strings.Contains(b.logs.String(), "the delta link expired") {
		t.Error("no log line about the expired link")
	}
}

// endlessGraph never ends a delta round, or ends it malformed.
type endlessGraph struct {
	*subscriptionstest.Graph
	page subscriptions.DeltaPage
	err  error
}

func (g *endlessGraph) Delta(context.Context, string, string, string, time.Time) (subscriptions.DeltaPage, error) {
	return g.page, g.err
}

func TestHostileDeltaAnswersAreBounded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		page subscriptions.DeltaPage
		err  error
		want string
	}{
		{"endless next links", subscriptions.DeltaPage{Items: []subscriptions.DeltaItem{{ID: "m1"}}, NextLink: "next"}, nil, "within 50 pages"},
		{"neither link", subscriptions.DeltaPage{Items: []subscriptions.DeltaItem{{ID: "m1"}}}, nil, "neither a next link nor a delta link"},
		{"always expired", subscriptions.DeltaPage{}, subscriptions.ErrDeltaExpired, "delta link expired"},
		{"empty ids and removals", subscriptions.DeltaPage{Items: []subscriptions.DeltaItem{{ID: ""}, {ID: "gone", Removed: true}}, DeltaLink: "d"}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := subscriptionstest.NewClock(t0)
			g := &endlessGraph{Graph: subscriptionstest.NewGraph(clock), page: c.page, err: c.err}
			q := subscriptionstest.NewQueue()
			cfg := baseConfig()
			cfg.MaxDeltaPages = 50
			m, err := subscriptions.New(cfg, g, subscriptionstest.NewStore(), q, subscriptions.Options{Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			n, err := m.Resync(context.Background(), mailbox)
			if c.want == "" {
				if err != nil || n != 0 || len(q.Jobs()) != 0 {
					t.Fatalf("Resync = %d, %v; jobs %v", n, err, q.Jobs())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Resync error %v, want %q", err, c.want)
			}
			// The same message on every page is queued once.
			if len(q.Jobs()) > 1 {
				t.Errorf("jobs %v", q.Jobs())
			}
		})
	}
}

func TestQueueFailureKeepsTheDeltaLink(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	if _, err := b.mgr.Resync(ctx, mailbox); err != nil {
		t.Fatal(err)
	}
	link, _ := b.store.DeltaLink(ctx, mailbox, "Inbox")
	id := b.graph.Deliver(mailbox, "Inbox")
	b.queue.FailNext(errBoom)
	if _, err := b.mgr.Resync(ctx, mailbox); !errors.Is(err, errBoom) {
		t.Fatalf("Resync = %v, want the queue's error", err)
	}
	if now, _ := b.store.DeltaLink(ctx, mailbox, "Inbox"); now != link {
		t.Fatal("the delta link moved past messages that were not queued")
	}
	if n, err := b.mgr.Resync(ctx, mailbox); err != nil || n != 1 {
		t.Fatalf("retry = %d, %v", n, err)
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != id {
		t.Errorf("queued %v", ids)
	}
}

func TestResyncOfAnUnconfiguredMailbox(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, mb := range []string{"", "other@contoso.com", "../../admin"} {
		if _, err := b.mgr.Resync(context.Background(), mb); err == nil {
			t.Errorf("Resync(%q) succeeded", mb)
		}
	}
	// Mailboxes compare without case.
	if _, err := b.mgr.Resync(context.Background(), strings.ToUpper(mailbox)); err != nil {
		t.Errorf("Resync of the upper-case name: %v", err)
	}
}

// scriptedGraph answers delta requests from a fixed list of pages.
type scriptedGraph struct {
	*subscriptionstest.Graph
	pages []subscriptions.DeltaPage
	since []time.Time
}

func (g *scriptedGraph) Delta(_ context.Context, _, _, link string, since time.Time) (subscriptions.DeltaPage, error) {
	g.since = append(g.since, since)
	i := len(g.since) - 1
	if i >= len(g.pages) {
		return subscriptions.DeltaPage{}, errors.New("no more pages")
	}
	return g.pages[i], nil
}

func TestAFreshRoundIsBoundedOnEveryPageEvenIfGraphIgnoresTheFilter(t *testing.T) {
	t.Parallel()
	clock := subscriptionstest.NewClock(t0)
	old, fresh := t0.Add(-time.Hour), t0.Add(time.Minute)
	g := &scriptedGraph{Graph: subscriptionstest.NewGraph(clock), pages: []subscriptions.DeltaPage{
		{Items: []subscriptions.DeltaItem{{ID: "old-1", ReceivedAt: old}, {ID: "new-1", ReceivedAt: fresh}}, NextLink: "p2"},
		{Items: []subscriptions.DeltaItem{{ID: "old-2", ReceivedAt: old}, {ID: "new-2", ReceivedAt: fresh}, {ID: "new-1", ReceivedAt: fresh}}, DeltaLink: "d1"},
	}}
	q := subscriptionstest.NewQueue()
	st := subscriptionstest.NewStore()
	m, err := subscriptions.New(baseConfig(), g, st, q, subscriptions.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.Resync(context.Background(), mailbox)
	if err != nil || n != 2 {
		t.Fatalf("Resync = %d, %v", n, err)
	}
	if ids := q.IDs(mailbox); strings.Join(ids, ",") != "new-1,new-2" {
		t.Errorf("queued %v", ids)
	}
	if len(g.since) != 2 || !g.since[0].Equal(t0) || !g.since[1].IsZero() {
		t.Errorf("since sent %v: want the first-seen time on the first request only", g.since)
	}
	if link, _ := st.DeltaLink(context.Background(), mailbox, "Inbox"); link != "d1" {
		t.Errorf("stored link %q", link)
	}
}
