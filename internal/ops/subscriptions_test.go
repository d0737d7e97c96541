package ops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

var subsT0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// subsBundle is a subscriptions Manager over the in-memory fakes, as the
// subscriptions commands get it.
type subsBundle struct {
	clock *subscriptionstest.Clock
	graph *subscriptionstest.Graph
	store *subscriptionstest.Store
	queue *subscriptionstest.Queue
	mgr   *subscriptions.Manager
}

func setupSubs(t *testing.T) *subsBundle {
	t.Helper()
	b := &subsBundle{clock: subscriptionstest.NewClock(subsT0), store: subscriptionstest.NewStore(), queue: subscriptionstest.NewQueue()}
	b.graph = subscriptionstest.NewGraph(b.clock)
	m, err := subscriptions.New(subscriptions.Config{
		Mailboxes:       []string{"phish@contoso.com", "abuse@contoso.com"},
		NotificationURL: "https://m2a.example.com/webhooks/graph",
		LifecycleURL:    "https://m2a.example.com/webhooks/graph/lifecycle",
		Holder:          "command",
	}, b.graph, b.store, b.queue, subscriptions.Options{Clock: b.clock})
	if err != nil {
		t.Fatal(err)
	}
	b.mgr = m
	return b
}

// run runs one subscriptions command and returns what it printed.
func (b *subsBundle) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := Subscriptions(context.Background(), b.mgr, args, b.clock.Now(), &out)
	return out.String(), err
}

func TestSubscriptionsSyncListAndDelete(t *testing.T) {
	t.Parallel()
	b := setupSubs(t)
	b.graph.SetDropping(true)
	b.graph.Deliver("phish@contoso.com", "Inbox") // arrived before the first subscription

	out, err := b.run(t, "sync")
	if err != nil {
		t.Fatal(err)
	}
	if want := "subscriptions reconciled\n" +
		"abuse@contoso.com: 0 message(s) queued by the resync\n" +
		"phish@contoso.com: 1 message(s) queued by the resync\n"; out != want {
		t.Errorf("sync printed\n%s\nwant\n%s", out, want)
	}

	b.graph.AddSubscription(subscriptions.Subscription{Resource: "users/x@contoso.com/mailFolders('Inbox')/messages",
		NotificationURL: "https://staging.example.com/webhooks/graph", ExpiresAt: subsT0.Add(time.Hour)})
	b.clock.Advance(90 * time.Second)
	out, err = b.run(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	want := `ID     MAILBOX            FOLDER  EXPIRES               LEFT       STATE
sub-1  phish@contoso.com  Inbox   2026-12-05T10:40:00Z  166h38m0s  managed
sub-2  abuse@contoso.com  Inbox   2026-12-05T10:40:00Z  166h38m0s  managed
sub-3  x@contoso.com      Inbox   2026-11-28T13:00:00Z  58m0s      other deployment
`
	if sortedLines(out) != sortedLines(want) {
		t.Errorf("list printed\n%s\nwant\n%s", out, want)
	}

	out, err = b.run(t, "delete", "sub-1", "sub-2")
	if err != nil || out != "deleted subscription sub-1\ndeleted subscription sub-2\n" {
		t.Fatalf("delete printed %q, %v", out, err)
	}
	if n := len(b.graph.Subscriptions()); n != 1 {
		t.Errorf("%d subscriptions left in Graph, want the other deployment's", n)
	}
}

// sortedLines puts the table's lines after the header in order: Graph
// lists subscriptions in no particular order.
func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > 1 {
		slices.Sort(lines[1:])
	}
	return strings.Join(lines, "\n")
}

func TestSubscriptionsSyncBesideARunningServiceOnlyResyncs(t *testing.T) {
	t.Parallel()
	b := setupSubs(t)
	if _, err := b.run(t, "sync"); err != nil {
		t.Fatal(err)
	}
	// A service took the lease since.
	if ok, err := b.store.TryAcquireLease(context.Background(), subscriptions.LeaseName, "service", b.clock.Now(), time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	b.graph.SetDropping(true)
	b.graph.Deliver("abuse@contoso.com", "Inbox")
	out, err := b.run(t, "sync")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a running service manages the subscriptions; only the resync ran\n" +
		"abuse@contoso.com: 1 message(s) queued by the resync\n" +
		"phish@contoso.com: 0 message(s) queued by the resync\n"; out != want {
		t.Errorf("sync printed\n%s\nwant\n%s", out, want)
	}
	if n := b.graph.Calls("CreateSubscription"); n != 2 {
		t.Errorf("%d creations, want the 2 of the first sync", n)
	}
}

func TestSubscriptionsCommandErrors(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("graph is down")
	cases := []struct {
		name string
		fail string // the fake Graph call that fails
		args []string
		want string
	}{
		{name: "no command", want: "usage:"},
		{name: "unknown command", args: []string{"renew\x1b[2J"}, want: `unknown subscriptions command "renew\x1b[2J"`},
		{name: "list with an argument", args: []string{"list", "x"}, want: "takes no argument"},
		{name: "sync with an argument", args: []string{"sync", "x"}, want: "takes no argument"},
		{name: "delete without an id", args: []string{"delete"}, want: "usage: mail2archer subscriptions delete ID"},
		{name: "delete an empty id", args: []string{"delete", ""}, want: "empty id"},
		{name: "list fails", fail: "ListSubscriptions", args: []string{"list"}, want: "graph is down"},
		{name: "sync fails", fail: "ListSubscriptions", args: []string{"sync"}, want: "graph is down"},
		{name: "delete fails", fail: "DeleteSubscription", args: []string{"delete", "sub-1"}, want: "graph is down"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setupSubs(t)
			if c.fail != "" {
				b.graph.FailNext(c.fail, errBoom)
			}
			out, err := b.run(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(out, "deleted") || strings.Contains(out, "reconciled") {
				t.Errorf("a failed command printed a success: %q", out)
			}
		})
	}
}

func TestWriteSubscriptionsNeverPrintsSecretsOrControlCharacters(t *testing.T) {
	t.Parallel()
	exp := subsT0.Add(90*time.Hour + 30*time.Second)
	list := []subscriptions.Listed{
		{Subscription: subscriptions.Subscription{ID: "sub-1", ClientState: "TOP-SECRET", ExpiresAt: exp},
			Mailbox: "phish@contoso.com", Folder: "Inbox", SecretHeld: true, Ours: true, Configured: true},
		{Subscription: subscriptions.Subscription{ID: "sub-2\x1b[31m\tx", ExpiresAt: exp}, Mailbox: "old@contoso.com", Folder: "Inbox", Ours: true},
		{Subscription: subscriptions.Subscription{ID: "sub-3", ExpiresAt: exp}, Mailbox: "phish@contoso.com", Folder: "Inbox", Ours: true, Configured: true},
		{Subscription: subscriptions.Subscription{ID: "sub-4", ExpiresAt: exp}, Mailbox: "x@contoso.com", Folder: "Inbox"},
		{Subscription: subscriptions.Subscription{ID: strings.Repeat("é", 300), ExpiresAt: exp}, Mailbox: "x@contoso.com", Folder: "Inbox"},
	}
	var buf strings.Builder
	if err := WriteSubscriptions(&buf, list, subsT0); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 199) + "…"
	pad := strings.Repeat(" ", len([]rune(long))-len("ID"))
	want := "ID" + pad + "  MAILBOX            FOLDER  EXPIRES               LEFT     STATE\n" +
		"sub-1" + strings.Repeat(" ", 200-5) + "  phish@contoso.com  Inbox   2026-12-02T06:00:30Z  90h0m0s  managed\n" +
		"sub-2?[31m?x" + strings.Repeat(" ", 200-12) + "  old@contoso.com    Inbox   2026-12-02T06:00:30Z  90h0m0s  not configured (deleted at next start)\n" +
		"sub-3" + strings.Repeat(" ", 200-5) + "  phish@contoso.com  Inbox   2026-12-02T06:00:30Z  90h0m0s  secret unknown (replaced at next start)\n" +
		"sub-4" + strings.Repeat(" ", 200-5) + "  x@contoso.com      Inbox   2026-12-02T06:00:30Z  90h0m0s  other deployment\n" +
		long + "  x@contoso.com      Inbox   2026-12-02T06:00:30Z  90h0m0s  other deployment\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	if strings.Contains(buf.String(), "TOP-SECRET") {
		t.Error("a secret was printed")
	}
}

func TestWriteReconcileReportListsMailboxesInOrder(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	err := WriteReconcileReport(&buf, subscriptions.ReconcileReport{Managed: true,
		Queued: map[string]int{"c@contoso.com": 3, "a@contoso.com": 0, "b@contoso.com\n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := "subscriptions reconciled\n" +
		"a@contoso.com: 0 message(s) queued by the resync\n" +
		"b@contoso.com?: 1 message(s) queued by the resync\n" +
		"c@contoso.com: 3 message(s) queued by the resync\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}
