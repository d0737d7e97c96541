package subscriptions_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestThirtyDaysTheSubscriptionNeverExpires(t *testing.T) {
	t.Parallel()
	// A long lease keeps the number of wake-ups small; renewals and the
	// 15-minute resync run on their real schedule.
	b := setup(t, func(c *subscriptions.Config) { c.LeaseTTL = 6 * time.Hour })
	b.run(t, b.mgr)
	b.settle(t)
	first := b.liveSub(t, mailbox)
	if got := first.ExpiresAt.Sub(t0); got != subscriptions.DefaultMaxLifetime {
		t.Fatalf("requested lifetime %s, want %s", got, subscriptions.DefaultMaxLifetime)
	}
	end := t0.Add(30 * 24 * time.Hour)
	minLeft := first.ExpiresAt.Sub(t0)
	for b.clock.Now().Before(end) {
		b.settle(t)
		b.clock.AdvanceToNext()
		b.settle(t)
		sub := b.liveSub(t, mailbox) // fails if it expired or was duplicated
		if sub.ID != first.ID {
			t.Fatalf("at %s the subscription was replaced (%s → %s)", b.clock.Now(), first.ID, sub.ID)
		}
		minLeft = min(minLeft, sub.ExpiresAt.Sub(b.clock.Now()))
	}
	if n := b.graph.Calls("CreateSubscription"); n != 1 {
		t.Errorf("%d creations in 30 days, want 1", n)
	}
	// Renewing at about half the remaining life of ~6.9 days means one
	// renewal every ~3.5 days.
	touches := b.graph.Touches(first.ID)
	if len(touches) < 7 || len(touches) > 11 {
		t.Errorf("%d renewals in 30 days, want about 8: %v", len(touches), touches)
	}
	for i := 1; i < len(touches); i++ {
		if gap := touches[i].Sub(touches[i-1]); gap < 3*24*time.Hour || gap > 4*24*time.Hour {
			t.Errorf("renewal gap %s, want 3-4 days (half the life, with jitter)", gap)
		}
	}
	if minLeft < 3*24*time.Hour {
		t.Errorf("the subscription came within %s of expiring", minLeft)
	}
	if err := b.mgr.Ready(); err != nil {
		t.Errorf("not ready: %v", err)
	}
	// 30 days of 15-minute backstop resyncs.
	if n := b.events.count(subscriptions.KindResync, mailbox, subscriptions.OutcomeOK); n < 2870 || n > 2890 {
		t.Errorf("%d resyncs in 30 days, want about 2,880", n)
	}
	if n := b.events.count(subscriptions.KindRenew, mailbox, subscriptions.OutcomeOK); n != len(touches) {
		t.Errorf("%d renewal events, Graph saw %d", n, len(touches))
	}
}

func TestCreatesOneSubscriptionPerMailboxWithItsSecretStored(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) {
		c.Mailboxes = []string{"a@contoso.com", "B@contoso.com"}
		c.Folder = "Phishing"
	})
	b.run(t, b.mgr)
	b.settle(t)
	subs := b.graph.Subscriptions()
	if len(subs) != 2 {
		t.Fatalf("%d subscriptions, want 2", len(subs))
	}
	stored := b.stored(t)
	secrets := map[string]bool{}
	for _, s := range subs {
		rec, ok := stored[s.ID]
		if !ok {
			t.Fatalf("secret of %s not stored", s.ID)
		}
		if rec.ClientState != s.ClientState || len(rec.ClientState) != 43 {
			t.Errorf("stored clientState %q, Graph has %q; want 43 characters (32 random bytes)", rec.ClientState, s.ClientState)
		}
		secrets[rec.ClientState] = true
		if s.NotificationURL != notifyURL || s.LifecycleNotificationURL != lifeURL || s.ChangeType != "created" {
			t.Errorf("subscription %+v", s)
		}
		if want := "users/" + rec.Mailbox + "/mailFolders('Phishing')/messages"; s.Resource != want || rec.Folder != "Phishing" {
			t.Errorf("resource %q, want %q", s.Resource, want)
		}
	}
	if len(secrets) != 2 {
		t.Error("two subscriptions share a clientState")
	}
	st := b.mgr.Status()
	if len(st) != 2 || !st[0].Healthy || !st[1].Healthy || !st[0].Leader || st[0].SecondsToExpiry != int64(subscriptions.DefaultMaxLifetime/time.Second) {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(b.mgr.Summary(), "leader; a@contoso.com: ok, 600000 s to expiry") {
		t.Errorf("summary %q", b.mgr.Summary())
	}
	if st[1].Mailbox != "B@contoso.com" || st[1].SecondsToExpiry != 600000 {
		t.Errorf("status of B@contoso.com %+v", st[1])
	}
	if !b.events.leader() {
		t.Error("no leadership event")
	}
	for _, mb := range []string{"a@contoso.com", "B@contoso.com"} {
		if n := b.events.count(subscriptions.KindCreate, mb, subscriptions.OutcomeOK); n != 1 {
			t.Errorf("%d creation events for %s, want 1", n, mb)
		}
	}
}

func TestRenewal404CreatesANewSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	old := b.liveSub(t, mailbox)
	b.graph.Remove(old.ID) // Graph forgot it; nobody told us
	missed := b.graph.Deliver(mailbox, "Inbox")

	b.advance(t, 4*24*time.Hour) // past the first renewal
	sub := b.liveSub(t, mailbox)
	if sub.ID == old.ID {
		t.Fatal("no new subscription after the 404")
	}
	stored := b.stored(t)
	if _, ok := stored[old.ID]; ok {
		t.Error("the lost subscription's secret is still stored")
	}
	if stored[sub.ID].ClientState != sub.ClientState {
		t.Error("the new subscription's secret is not stored")
	}
	if n := b.events.count(subscriptions.KindRenew, mailbox, subscriptions.OutcomeNotFound); n != 1 {
		t.Errorf("%d not_found renewals, want 1", n)
	}
	if n := b.events.count(subscriptions.KindCreate, mailbox, subscriptions.OutcomeOK); n != 2 {
		t.Errorf("%d creations, want 2", n)
	}
	// The backstop resync found the mail the silent subscription missed.
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != missed {
		t.Errorf("queued %v, want [%s]", ids, missed)
	}
}

func TestSubscriptionRemovedIsRecreatedAndTheMailMeanwhileIsQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	old := b.liveSub(t, mailbox)
	before := b.graph.Deliver(mailbox, "Inbox") // announced
	b.graph.Remove(old.ID)
	during := b.graph.Deliver(mailbox, "Inbox") // nobody is subscribed

	if err := b.mgr.HandleLifecycle(context.Background(), old.ID, subscriptions.EventSubscriptionRemoved); err != nil {
		t.Fatal(err)
	}
	sub := b.liveSub(t, mailbox)
	if sub.ID == old.ID {
		t.Fatal("not recreated")
	}
	after := b.graph.Deliver(mailbox, "Inbox") // announced by the new one
	jobs := b.queue.Jobs()
	want := []struct{ id, source string }{{before, "notification"}, {during, "resync"}, {after, "notification"}}
	if len(jobs) != len(want) {
		t.Fatalf("jobs %+v", jobs)
	}
	for i, w := range want {
		if jobs[i].MessageID != w.id || jobs[i].Source != w.source {
			t.Errorf("job %d = %+v, want %s from %s", i, jobs[i], w.id, w.source)
		}
	}
	// A repeat of the event for the replaced subscription changes nothing.
	if err := b.mgr.HandleLifecycle(context.Background(), old.ID, subscriptions.EventSubscriptionRemoved); err != nil {
		t.Fatal(err)
	}
	if b.liveSub(t, mailbox).ID != sub.ID {
		t.Error("a stale event replaced the subscription again")
	}
}

func TestBackstopResyncQueuesEveryDroppedMessageOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	b.graph.SetDropping(true)
	var dropped []string
	for range 5 {
		dropped = append(dropped, b.graph.Deliver(mailbox, "Inbox"))
		b.advance(t, time.Minute)
	}
	b.graph.SetDropping(false)
	announced := b.graph.Deliver(mailbox, "Inbox")
	if ids := b.queue.IDs(mailbox); len(ids) != 1 {
		t.Fatalf("before the resync %v are queued, want only the announced one", ids)
	}

	b.advance(t, 15*time.Minute)
	attempts := b.queue.Attempts(mailbox)
	for _, id := range dropped {
		if attempts[id] != 1 {
			t.Errorf("dropped %s offered %d times, want 1", id, attempts[id])
		}
	}
	if len(b.queue.IDs(mailbox)) != 6 {
		t.Errorf("queued %v, want 6", b.queue.IDs(mailbox))
	}
	if attempts[announced] != 2 {
		t.Errorf("announced message offered %d times (notification + resync), want 2", attempts[announced])
	}
	if _, queued := b.events.resynced(); queued != 5 {
		t.Errorf("resyncs queued %d new messages, want 5", queued)
	}
	// Later rounds start from the stored delta link and find nothing again.
	b.advance(t, time.Hour)
	if found, _ := b.events.resynced(); found != 6 {
		t.Errorf("resyncs found %d messages in all, want 6", found)
	}
}

func TestReauthorizationRequiredIsAnsweredOnceWithinTenMinutes(t *testing.T) {
	t.Parallel()
	// A one-hour lifetime puts the renewal at about 30 minutes.
	b := setup(t, func(c *subscriptions.Config) { c.MaxLifetime = time.Hour })
	b.run(t, b.mgr)
	b.settle(t)
	sub := b.liveSub(t, mailbox)
	b.advance(t, 25*time.Minute)
	for range 3 { // Graph repeats the event
		if err := b.mgr.HandleLifecycle(context.Background(), sub.ID, subscriptions.EventReauthorizationRequired); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.graph.Calls("ReauthorizeSubscription"); got != 1 {
		t.Fatalf("%d reauthorizations, want 1", got)
	}
	b.advance(t, 3*time.Hour)
	touches := b.graph.Touches(sub.ID)
	if len(touches) < 4 {
		t.Fatalf("touches %v", touches)
	}
	if !touches[0].Equal(t0.Add(25 * time.Minute)) {
		t.Errorf("reauthorized at %s, want at once", touches[0])
	}
	for i := 1; i < len(touches); i++ {
		if gap := touches[i].Sub(touches[i-1]); gap < subscriptions.ReauthorizeGap {
			t.Errorf("reauthorizing calls %s apart, Graph asks for 10 minutes", gap)
		}
	}
	if b.liveSub(t, mailbox).ID != sub.ID {
		t.Error("subscription replaced")
	}
}

func TestReauthorizeOfAGoneSubscriptionRecreatesIt(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	old := b.liveSub(t, mailbox)
	b.graph.Remove(old.ID)
	b.clock.Advance(time.Hour)
	b.settle(t)
	if err := b.mgr.HandleLifecycle(context.Background(), old.ID, subscriptions.EventReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	if b.liveSub(t, mailbox).ID == old.ID {
		t.Fatal("not recreated")
	}
}

func TestMissedEventResyncs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	sub := b.liveSub(t, mailbox)
	b.graph.SetDropping(true)
	id := b.graph.Deliver(mailbox, "Inbox")
	if err := b.mgr.HandleLifecycle(context.Background(), sub.ID, subscriptions.EventMissed); err != nil {
		t.Fatal(err)
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != id {
		t.Errorf("queued %v, want [%s]", ids, id)
	}
}

func TestLifecycleEventsThatChangeNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	if err := b.mgr.HandleLifecycle(ctx, "sub-1", subscriptions.EventMissed); !errors.Is(err, subscriptions.ErrNotLeader) {
		t.Fatalf("before Run: %v, want ErrNotLeader", err)
	}
	b.run(t, b.mgr)
	b.settle(t)
	sub := b.liveSub(t, mailbox)
	cases := []struct{ id, event string }{
		{"unknown-subscription", subscriptions.EventSubscriptionRemoved},
		{"", subscriptions.EventMissed},
		{sub.ID, "somethingNew"},
		{sub.ID, ""},
		{strings.Repeat("x", 10000), subscriptions.EventReauthorizationRequired},
	}
	for _, c := range cases {
		if err := b.mgr.HandleLifecycle(ctx, c.id, c.event); err != nil {
			t.Errorf("HandleLifecycle(%.20q, %q) = %v", c.id, c.event, err)
		}
	}
	if b.graph.Calls("CreateSubscription") != 1 || b.graph.Calls("ReauthorizeSubscription") != 0 || b.graph.Calls("DeleteSubscription") != 0 {
		t.Error("an ignored event reached Graph")
	}
}

func TestFailedCreationRetriesWithBackoffAndSaysWhatToCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.graph.FailAlways("CreateSubscription", errors.New("400 InvalidRequest: Subscription validation request timed out."))
	b.run(t, b.mgr)
	b.settle(t)
	err := b.mgr.Ready()
	if err == nil || !strings.Contains(err.Error(), "validation request timed out") {
		t.Fatalf("Ready() = %v, want the creation error", err)
	}
	if !strings.Contains(b.logs.String(), "reverse proxy") || !strings.Contains(b.logs.String(), notifyURL) {
		t.Errorf("the log does not say what to check: %s", b.logs.String())
	}
	// Attempts back off: 30 s, 60 s, 120 s, ... (less up to 20 % jitter)
	// up to 15 minutes: 6 or 7 attempts in the first 20 minutes, then
	// one every 12 to 15 minutes.
	b.advance(t, 20*time.Minute)
	if calls := b.graph.Calls("CreateSubscription"); calls < 6 || calls > 7 {
		t.Errorf("%d attempts in 20 minutes, want 6 or 7", calls)
	}
	before := b.graph.Calls("CreateSubscription")
	b.advance(t, time.Hour)
	if n := b.graph.Calls("CreateSubscription") - before; n < 4 || n > 5 {
		t.Errorf("%d attempts in the next hour, want 4 or 5", n)
	}
	calls := b.graph.Calls("CreateSubscription")
	b.graph.FailAlways("CreateSubscription", nil)
	b.advance(t, subscriptions.DefaultRetryMax)
	b.liveSub(t, mailbox)
	if err := b.mgr.Ready(); err != nil {
		t.Errorf("Ready() after recovery = %v", err)
	}
	if n := b.events.count(subscriptions.KindCreate, mailbox, subscriptions.OutcomeError); n != calls {
		t.Errorf("%d failed creation events, want %d", n, calls)
	}
}

func TestUnstoredSecretTakesTheSubscriptionBack(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.mem.FailNext("SaveSubscription", errBoom)
	b.run(t, b.mgr)
	b.settle(t)
	if subs := b.graph.Subscriptions(); len(subs) != 0 {
		t.Fatalf("a subscription whose secret was not stored is live: %+v", subs)
	}
	b.advance(t, time.Minute)
	sub := b.liveSub(t, mailbox)
	if b.stored(t)[sub.ID].ClientState != sub.ClientState {
		t.Error("secret not stored on retry")
	}
}

func TestStartReconcilesWithTheConfiguration(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.Mailboxes = []string{"kept@contoso.com", "lost@contoso.com"} })
	ctx := context.Background()
	exp := t0.Add(3 * 24 * time.Hour)
	add := func(mb, url, secret string, held bool) string {
		id := b.graph.AddSubscription(subscriptions.Subscription{
			Resource: "users/" + mb + "/mailFolders('Inbox')/messages", ChangeType: "created",
			NotificationURL: url, LifecycleNotificationURL: lifeURL, ClientState: secret, ExpiresAt: exp,
		})
		if held {
			if err := b.store.SaveSubscription(ctx, subscriptions.Record{ID: id, Mailbox: mb, Folder: "Inbox", ClientState: secret, ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	kept := add("kept@contoso.com", notifyURL, "s1", true)
	unheld := add("lost@contoso.com", notifyURL, "s2", false)                    // secret lost with the database
	removed := add("removed@contoso.com", notifyURL, "s3", true)                 // mailbox taken out of the configuration
	removedUnheld := add("gone@contoso.com", notifyURL, "s4", false)             // ditto, secret unknown
	otherDeployment := add("kept@contoso.com", "https://staging/x", "s5", false) // same app, another URL
	if err := b.store.SaveSubscription(ctx, subscriptions.Record{ID: "vanished", Mailbox: "kept@contoso.com", Folder: "Inbox", ClientState: "s6", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}

	b.run(t, b.mgr)
	b.settle(t)
	live := map[string]subscriptions.Subscription{}
	for _, s := range b.graph.Subscriptions() {
		live[s.ID] = s
	}
	for _, c := range []struct {
		id   string
		live bool
	}{{kept, true}, {unheld, false}, {removed, false}, {removedUnheld, false}, {otherDeployment, true}} {
		if _, ok := live[c.id]; ok != c.live {
			t.Errorf("subscription %s live = %v, want %v", c.id, ok, c.live)
		}
	}
	if len(live) != 3 {
		t.Errorf("live subscriptions %+v, want kept, other deployment's and a new one for lost@", live)
	}
	replacement := b.liveSub(t, "lost@contoso.com")
	stored := b.stored(t)
	if len(stored) != 2 || stored[kept].ClientState != "s1" || stored[replacement.ID].ClientState != replacement.ClientState {
		t.Errorf("stored %+v", stored)
	}
	if b.graph.Calls("CreateSubscription") != 1 {
		t.Errorf("%d creations, want 1 (only lost@)", b.graph.Calls("CreateSubscription"))
	}
	if st := b.mgr.Status(); st[0].SubscriptionID != kept || !st[0].ExpiresAt.Equal(exp) {
		t.Errorf("status %+v", st[0])
	}
}

func TestReconcileFailureIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.graph.FailNext("ListSubscriptions", errBoom)
	b.run(t, b.mgr)
	b.settle(t)
	if b.graph.Calls("CreateSubscription") != 0 {
		t.Fatal("created before the reconcile succeeded")
	}
	if err := b.mgr.Ready(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Ready() = %v", err)
	}
	b.advance(t, time.Minute)
	b.liveSub(t, mailbox)
}

func TestRenewalFailureIsRetriedBeforeExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.LeaseTTL = time.Hour })
	b.run(t, b.mgr)
	b.settle(t)
	sub := b.liveSub(t, mailbox)
	b.graph.FailAlways("RenewSubscription", errors.New("503 ServiceUnavailable"))
	b.advance(t, 4*24*time.Hour)
	if err := b.mgr.Ready(); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Ready() = %v, want the renewal error", err)
	}
	b.graph.FailAlways("RenewSubscription", nil)
	b.advance(t, 20*time.Minute)
	if err := b.mgr.Ready(); err != nil {
		t.Fatalf("Ready() after recovery = %v", err)
	}
	if got := b.liveSub(t, mailbox); got.ID != sub.ID || got.ExpiresAt.Sub(b.clock.Now()) < 6*24*time.Hour {
		t.Errorf("after recovery %+v", got)
	}
}

func TestRunTwiceAndStop(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	stop := b.run(t, b.mgr)
	b.settle(t)
	if err := b.mgr.Run(context.Background()); !errors.Is(err, subscriptions.ErrRunning) {
		t.Fatalf("second Run = %v", err)
	}
	if _, err := b.mgr.ReconcileOnce(context.Background()); !errors.Is(err, subscriptions.ErrRunning) {
		t.Fatalf("ReconcileOnce while running = %v", err)
	}
	stop()
	if h := b.mem.LeaseHolder(subscriptions.LeaseName); h != "" {
		t.Errorf("lease still held by %q after Run returned", h)
	}
	if b.events.leader() {
		t.Error("the last leadership event after stop says leader")
	}
	// It may run again.
	b.run(t, b.mgr)
	b.settle(t)
	if b.graph.Calls("CreateSubscription") != 1 {
		t.Error("the restart replaced a kept subscription")
	}
}

func TestRenewalsFailingUntilExpiryEndInANewSubscription(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.LeaseTTL = 6 * time.Hour })
	b.run(t, b.mgr)
	b.settle(t)
	old := b.liveSub(t, mailbox)
	b.graph.FailAlways("RenewSubscription", errors.New("503 ServiceUnavailable"))
	b.advance(t, 7*24*time.Hour) // past the expiry
	sub := b.liveSub(t, mailbox)
	if sub.ID == old.ID {
		t.Fatal("still the old subscription after its expiry")
	}
	if !strings.Contains(b.logs.String(), "expired before it was renewed") {
		t.Error("no log line about the expiry")
	}
	if n := b.graph.Calls("RenewSubscription"); n < 10 {
		t.Errorf("only %d renewal attempts in 3.5 days of failures", n)
	}
	if err := b.mgr.Ready(); err != nil {
		t.Errorf("Ready() = %v", err)
	}
}

func TestReconcileDeleteFailureIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *subscriptions.Config) { c.Mailboxes = []string{"kept@contoso.com"} })
	stale := b.graph.AddSubscription(subscriptions.Subscription{Resource: "users/gone@contoso.com/mailFolders('Inbox')/messages",
		ChangeType: "created", NotificationURL: notifyURL, LifecycleNotificationURL: lifeURL, ExpiresAt: t0.Add(time.Hour)})
	b.graph.FailNext("DeleteSubscription", errBoom)
	b.run(t, b.mgr)
	b.settle(t)
	if b.graph.Calls("CreateSubscription") != 0 {
		t.Fatal("acted on a reconcile that failed")
	}
	b.advance(t, time.Minute)
	for _, s := range b.graph.Subscriptions() {
		if s.ID == stale {
			t.Fatal("not deleted on retry")
		}
	}
	b.liveSub(t, "kept@contoso.com")
}
