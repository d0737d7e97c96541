package subscriptions_test

import (
	"context"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestReconcileOnceManagesWhenNoServiceRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	rep, err := b.mgr.ReconcileOnce(ctx)
	if err != nil || !rep.Managed {
		t.Fatalf("ReconcileOnce = %+v, %v", rep, err)
	}
	sub := b.liveSub(t, mailbox)
	if h := b.mem.LeaseHolder(subscriptions.LeaseName); h != "" {
		t.Errorf("lease kept by %q", h)
	}
	b.graph.SetDropping(true)
	id := b.graph.Deliver(mailbox, "Inbox")
	rep, err = b.mgr.ReconcileOnce(ctx)
	if err != nil || rep.Queued[mailbox] != 1 {
		t.Fatalf("second ReconcileOnce = %+v, %v", rep, err)
	}
	if b.liveSub(t, mailbox).ID != sub.ID {
		t.Error("the second sync replaced the subscription")
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != id {
		t.Errorf("queued %v", ids)
	}
}

func TestReconcileOnceBesideARunningServiceOnlyResyncs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	cli := b.newManager(t, "cli")
	b.graph.SetDropping(true)
	id := b.graph.Deliver(mailbox, "Inbox")
	rep, err := cli.ReconcileOnce(context.Background())
	if err != nil || rep.Managed || rep.Queued[mailbox] != 1 {
		t.Fatalf("ReconcileOnce = %+v, %v", rep, err)
	}
	if b.graph.Calls("ListSubscriptions") != 1 || b.graph.Calls("CreateSubscription") != 1 {
		t.Error("the command line changed subscriptions beside the leader")
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != id {
		t.Errorf("queued %v", ids)
	}
}

func TestListAndDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	if _, err := b.mgr.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	other := b.graph.AddSubscription(subscriptions.Subscription{Resource: "users/x@contoso.com/mailFolders('Inbox')/messages",
		NotificationURL: "https://staging.example.com/webhooks/graph", ExpiresAt: t0.Add(time.Hour)})
	ours := b.liveSub(t, mailbox).ID
	list, err := b.mgr.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	byID := map[string]subscriptions.Listed{}
	for _, l := range list {
		byID[l.ID] = l
		if l.ClientState != "" {
			t.Error("List shows a clientState")
		}
	}
	if l := byID[ours]; !l.Managed() || l.Mailbox != mailbox || l.Folder != "Inbox" {
		t.Errorf("ours listed as %+v", l)
	}
	if l := byID[other]; l.Ours || l.SecretHeld || l.Configured || l.Managed() || l.Mailbox != "x@contoso.com" {
		t.Errorf("other listed as %+v", l)
	}
	if err := b.mgr.Delete(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.stored(t)[ours]; ok {
		t.Error("secret kept after delete")
	}
	if err := b.mgr.Delete(ctx, ours); err != nil {
		t.Errorf("deleting a deleted subscription: %v", err)
	}
	if err := b.mgr.Delete(ctx, ""); err == nil {
		t.Error("deleting an empty id succeeded")
	}
	b.graph.FailNext("DeleteSubscription", errBoom)
	if err := b.mgr.Delete(ctx, other); err == nil {
		t.Error("a Graph failure was hidden")
	}
	b.graph.FailNext("ListSubscriptions", errBoom)
	if _, err := b.mgr.List(ctx); err == nil {
		t.Error("a Graph failure was hidden")
	}
}
