package subscriptionstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func request(exp time.Duration) subscriptions.Request {
	return subscriptions.Request{Mailbox: "a@b.c", Folder: "Inbox", NotificationURL: "https://x/y",
		ClientState: "secret", ExpiresAt: t0.Add(exp)}
}

func TestGraphBehavesLikeGraph(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := subscriptionstest.NewClock(t0)
	g := subscriptionstest.NewGraph(clock)

	if _, err := g.CreateSubscription(ctx, request(10071*time.Minute)); err == nil || !strings.Contains(err.Error(), "10070 minutes") {
		t.Errorf("over the maximum: %v", err)
	}
	long := request(time.Hour)
	long.ClientState = strings.Repeat("x", 129)
	if _, err := g.CreateSubscription(ctx, long); err == nil {
		t.Error("accepted a 129-character clientState")
	}
	s, err := g.CreateSubscription(ctx, request(time.Minute))
	if err != nil || !s.ExpiresAt.Equal(t0.Add(45*time.Minute)) {
		t.Fatalf("short expiry not raised to 45 minutes: %+v %v", s, err)
	}
	if _, err := g.CreateSubscription(ctx, request(time.Hour)); !errors.Is(err, subscriptionstest.ErrConflict) {
		t.Errorf("duplicate: %v, want ErrConflict", err)
	}
	list, _ := g.ListSubscriptions(ctx)
	if len(list) != 1 || list[0].ClientState != "" {
		t.Errorf("list %+v: clientState must be hidden", list)
	}
	clock.Advance(45 * time.Minute)
	if _, err := g.RenewSubscription(ctx, s.ID, t0.Add(2*time.Hour)); !errors.Is(err, subscriptions.ErrNotFound) {
		t.Errorf("renew after expiry: %v, want ErrNotFound", err)
	}
	for _, err := range []error{g.ReauthorizeSubscription(ctx, s.ID), g.DeleteSubscription(ctx, s.ID)} {
		if !errors.Is(err, subscriptions.ErrNotFound) {
			t.Errorf("%v, want ErrNotFound", err)
		}
	}
}

func TestGraphDeltaRounds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := subscriptionstest.NewClock(t0)
	g := subscriptionstest.NewGraph(clock)
	old := g.Deliver("a@b.c", "Inbox")
	clock.Advance(time.Hour)
	var ids []string
	for range 3 {
		ids = append(ids, g.Deliver("a@b.c", "Inbox"))
	}
	round := func(link string, since time.Time) ([]string, string) {
		var got []string
		for {
			p, err := g.Delta(ctx, "a@b.c", "Inbox", link, since)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range p.Items {
				if it.Removed {
					got = append(got, "-"+it.ID)
				} else {
					got = append(got, it.ID)
				}
			}
			if p.DeltaLink != "" {
				return got, p.DeltaLink
			}
			link, since = p.NextLink, time.Time{}
		}
	}
	got, link := round("", t0.Add(time.Minute))
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("first round %v, want %v without %s", got, ids, old)
	}
	g.RemoveMessage("a@b.c", "Inbox", ids[0])
	fresh := g.Deliver("a@b.c", "Inbox")
	got, link = round(link, time.Time{})
	if strings.Join(got, ",") != "-"+ids[0]+","+fresh {
		t.Errorf("second round %v", got)
	}
	g.ExpireDeltaLinks()
	if _, err := g.Delta(ctx, "a@b.c", "Inbox", link, time.Time{}); !errors.Is(err, subscriptions.ErrDeltaExpired) {
		t.Errorf("expired link: %v", err)
	}
	for _, bad := range []string{"x", "fake:1:2", "fake:a:b:c:d:e"} {
		if _, err := g.Delta(ctx, "a@b.c", "Inbox", bad, time.Time{}); err == nil {
			t.Errorf("malformed link %q accepted", bad)
		}
	}
}

func TestClockFiresTimersInOrder(t *testing.T) {
	t.Parallel()
	c := subscriptionstest.NewClock(t0)
	a, b := c.NewTimer(time.Minute), c.NewTimer(time.Second)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop must report true once")
	}
	if c.Timers() != 2 {
		t.Fatalf("%d timers", c.Timers())
	}
	if d, ok := c.AdvanceToNext(); !ok || d != time.Second {
		t.Fatalf("AdvanceToNext = %s %v", d, ok)
	}
	select {
	case <-b.C():
	default:
		t.Fatal("the earlier timer did not fire")
	}
	select {
	case <-a.C():
		t.Fatal("the later timer fired early")
	default:
	}
	c.Advance(time.Hour)
	if got := <-a.C(); !got.Equal(t0.Add(time.Second + time.Hour)) {
		t.Errorf("fired with %s", got)
	}
	if _, ok := c.AdvanceToNext(); ok {
		t.Error("no timer left, yet AdvanceToNext moved")
	}
	if now := <-c.NewTimer(0).C(); !now.Equal(c.Now()) {
		t.Error("a zero timer must fire at once")
	}
}

func TestStoreLeaseAndQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := subscriptionstest.NewStore()
	if ok, _ := s.TryAcquireLease(ctx, "l", "a", t0, time.Minute); !ok {
		t.Fatal("free lease not taken")
	}
	if ok, _ := s.TryAcquireLease(ctx, "l", "b", t0.Add(30*time.Second), time.Minute); ok {
		t.Fatal("running lease taken")
	}
	if ok, _ := s.TryAcquireLease(ctx, "l", "b", t0.Add(61*time.Second), time.Minute); !ok {
		t.Fatal("ended lease not taken")
	}
	q := subscriptionstest.NewQueue()
	if n, _ := q.Enqueue(ctx, "m", []string{"1", "2", "1"}); n != 2 {
		t.Errorf("queued %d, want 2", n)
	}
	if q.Notify("m", "2") || !q.Notify("m", "3") {
		t.Error("Notify dedupe")
	}
	if got := q.Attempts("m"); got["1"] != 2 || got["2"] != 2 || got["3"] != 1 {
		t.Errorf("attempts %v", got)
	}
}
