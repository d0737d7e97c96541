package subscriptions_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

// A Manager runs in the background of the service. Here the fakes stand in
// for Microsoft Graph, the database and the job queue, and a fake clock
// shows a week passing in an instant.
func ExampleManager_Run() {
	clock := subscriptionstest.NewClock(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	graph := subscriptionstest.NewGraph(clock)
	m, err := subscriptions.New(subscriptions.Config{
		Mailboxes:       []string{"phish@contoso.com"},
		NotificationURL: "https://m2a.example.com/webhooks/graph",
		LifecycleURL:    "https://m2a.example.com/webhooks/graph/lifecycle",
	}, graph, subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{Clock: clock})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()

	// Leading, the Manager sleeps on two timers: its work loop's and its
	// lease keeper's. Once both wait, it has created the subscription.
	_ = clock.WaitForTimers(ctx, 2)
	for _, s := range m.Status() {
		fmt.Printf("%s: %s expires %s\n", s.Mailbox, s.SubscriptionID, s.ExpiresAt.Format(time.DateTime))
	}
	for end := clock.Now().Add(7 * 24 * time.Hour); clock.Now().Before(end); {
		clock.AdvanceToNext()
		_ = clock.WaitForTimers(ctx, 2)
	}
	s := m.Status()[0]
	fmt.Printf("a week later: %s, healthy %v, more than 3 days left %v\n",
		s.SubscriptionID, s.Healthy, s.SecondsToExpiry > 3*24*3600)
	fmt.Println("ready:", m.Ready() == nil)

	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// phish@contoso.com: sub-1 expires 2026-12-05 07:40:00
	// a week later: sub-1, healthy true, more than 3 days left true
	// ready: true
	// stopped: <nil>
}

// Mail that arrives while Graph drops notifications is found by the next
// resync and queued once.
func ExampleManager_Resync() {
	clock := subscriptionstest.NewClock(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	graph := subscriptionstest.NewGraph(clock)
	queue := subscriptionstest.NewQueue()
	graph.OnNotify(func(mailbox, id string) { queue.Notify(mailbox, id) })
	m, err := subscriptions.New(subscriptions.Config{
		Mailboxes:       []string{"phish@contoso.com"},
		NotificationURL: "https://m2a.example.com/webhooks/graph",
		LifecycleURL:    "https://m2a.example.com/webhooks/graph/lifecycle",
	}, graph, subscriptionstest.NewStore(), queue, subscriptions.Options{Clock: clock})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if _, err := m.ReconcileOnce(ctx); err != nil { // subscribe and take the first delta link
		fmt.Println(err)
		return
	}
	graph.Deliver("phish@contoso.com", "Inbox") // announced
	graph.SetDropping(true)
	graph.Deliver("phish@contoso.com", "Inbox") // lost
	graph.Deliver("phish@contoso.com", "Inbox") // lost

	queued, err := m.Resync(ctx, "phish@contoso.com")
	fmt.Println("newly queued:", queued, err)
	for _, j := range queue.Jobs() {
		fmt.Println(j.MessageID, "from", j.Source)
	}
	// Output:
	// newly queued: 2 <nil>
	// msg-phish@contoso.com-1 from notification
	// msg-phish@contoso.com-2 from resync
	// msg-phish@contoso.com-3 from resync
}

// The service's lifecycle webhook queues a job per event; the job's worker
// hands the event to the Manager.
func ExampleManager_HandleLifecycle() {
	clock := subscriptionstest.NewClock(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	graph := subscriptionstest.NewGraph(clock)
	m, err := subscriptions.New(subscriptions.Config{
		Mailboxes:       []string{"phish@contoso.com"},
		NotificationURL: "https://m2a.example.com/webhooks/graph",
		LifecycleURL:    "https://m2a.example.com/webhooks/graph/lifecycle",
	}, graph, subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{Clock: clock})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	_ = clock.WaitForTimers(ctx, 2)

	// Graph removed the subscription and said so.
	graph.Remove("sub-1")
	err = m.HandleLifecycle(ctx, "sub-1", subscriptions.EventSubscriptionRemoved)
	fmt.Println("handled:", err)
	fmt.Println("now subscribed with:", m.Status()[0].SubscriptionID)
	// Output:
	// handled: <nil>
	// now subscribed with: sub-2
}

// A service counts what the Manager does, into Prometheus counters for
// instance, from Options.OnEvent. Here the events of one reconcile round
// are printed.
func ExampleEvent() {
	clock := subscriptionstest.NewClock(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	graph := subscriptionstest.NewGraph(clock)
	graph.Deliver("phish@contoso.com", "Inbox") // arrived before the first subscription
	m, err := subscriptions.New(subscriptions.Config{
		Mailboxes:       []string{"phish@contoso.com"},
		NotificationURL: "https://m2a.example.com/webhooks/graph",
		LifecycleURL:    "https://m2a.example.com/webhooks/graph/lifecycle",
	}, graph, subscriptionstest.NewStore(), subscriptionstest.NewQueue(), subscriptions.Options{
		Clock: clock,
		OnEvent: func(e subscriptions.Event) {
			switch e.Kind {
			case subscriptions.KindLeadership:
				fmt.Println("leader:", e.Leader)
			case subscriptions.KindResync:
				fmt.Printf("resync of %s: %s, %d found, %d queued\n", e.Mailbox, e.Outcome, e.Found, e.Queued)
			default:
				fmt.Printf("%s of %s: %s\n", e.Kind, e.Mailbox, e.Outcome)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := m.ReconcileOnce(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// leader: true
	// create of phish@contoso.com: ok
	// resync of phish@contoso.com: ok, 1 found, 1 queued
	// leader: false
}
