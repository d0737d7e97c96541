package subscriptions_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestSyncOnceManagesWhenNoServiceRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	rep, err := b.mgr.SyncOnce(ctx)
	if err != nil || !rep.Managed {
		t.Fatalf("SyncOnce = %+v, %v", rep, err)
	}
	sub := b.liveSub(t, mailbox)
	if h := b.mem.LeaseHolder(subscriptions.LeaseName); h != "" {
		t.Errorf("lease kept by %q", h)
	}
	b.graph.SetDropping(true)
	id := b.graph.Deliver(mailbox, "Inbox")
	rep, err = b.mgr.SyncOnce(ctx)
	if err != nil || rep.Queued[mailbox] != 1 {
		t.Fatalf("second SyncOnce = %+v, %v", rep, err)
	}
	if b.liveSub(t, mailbox).ID != sub.ID {
		t.Error("the second sync replaced the subscription")
	}
	if ids := b.queue.IDs(mailbox); len(ids) != 1 || ids[0] != id {
		t.Errorf("queued %v", ids)
	}
}

func TestSyncOnceBesideARunningServiceOnlyResyncs(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.run(t, b.mgr)
	b.settle(t)
	cli := b.newManager(t, "cli", nil)
	b.graph.SetDropping(true)
	id := b.graph.Deliver(mailbox, "Inbox")
	rep, err := cli.SyncOnce(context.Background())
	if err != nil || rep.Managed || rep.Queued[mailbox] != 1 {
		t.Fatalf("SyncOnce = %+v, %v", rep, err)
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
	if _, err := b.mgr.SyncOnce(ctx); err != nil {
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
	if l := byID[ours]; !l.Ours || !l.SecretHeld || !l.Configured || l.Mailbox != mailbox || l.Folder != "Inbox" {
		t.Errorf("ours listed as %+v", l)
	}
	if l := byID[other]; l.Ours || l.SecretHeld || l.Configured || l.Mailbox != "x@contoso.com" {
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

func TestWriteListNeverPrintsSecretsOrControlCharacters(t *testing.T) {
	t.Parallel()
	exp := t0.Add(90*time.Hour + 30*time.Second)
	list := []subscriptions.Listed{
		{Subscription: subscriptions.Subscription{ID: "sub-1", ClientState: "TOP-SECRET", ExpiresAt: exp},
			Mailbox: "phish@contoso.com", Folder: "Inbox", SecretHeld: true, Ours: true, Configured: true},
		{Subscription: subscriptions.Subscription{ID: "sub-2\x1b[31m\tx", ExpiresAt: exp}, Mailbox: "old@contoso.com", Folder: "Inbox", Ours: true},
		{Subscription: subscriptions.Subscription{ID: "sub-3", ExpiresAt: exp}, Mailbox: "phish@contoso.com", Folder: "Inbox", Ours: true, Configured: true},
		{Subscription: subscriptions.Subscription{ID: "sub-4", ExpiresAt: exp}, Mailbox: "x@contoso.com", Folder: "Inbox"},
	}
	var buf strings.Builder
	if err := subscriptions.WriteList(&buf, list, t0); err != nil {
		t.Fatal(err)
	}
	want := `ID            MAILBOX            FOLDER  EXPIRES               LEFT     STATE
sub-1         phish@contoso.com  Inbox   2026-12-02T06:00:30Z  90h0m0s  managed
sub-2?[31m?x  old@contoso.com    Inbox   2026-12-02T06:00:30Z  90h0m0s  not configured (deleted at next start)
sub-3         phish@contoso.com  Inbox   2026-12-02T06:00:30Z  90h0m0s  secret unknown (replaced at next start)
sub-4         x@contoso.com      Inbox   2026-12-02T06:00:30Z  90h0m0s  other deployment
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if strings.Contains(buf.String(), "TOP-SECRET") {
		t.Error("a secret was printed")
	}
}
