package subscriptions_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
	"github.com/mail2archer/mail2archer/subscriptions/subscriptionstest"
)

const (
	mailbox   = "phish@contoso.com"
	notifyURL = "https://m2a.example.com/webhooks/graph"
	lifeURL   = "https://m2a.example.com/webhooks/graph/lifecycle"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// bundle is one test's Manager with its fakes.
type bundle struct {
	clock  *subscriptionstest.Clock
	graph  *subscriptionstest.Graph
	store  subscriptions.Store
	mem    *subscriptionstest.Store
	queue  *subscriptionstest.Queue
	events *eventLog
	logs   *syncBuffer
	mgr    *subscriptions.Manager
	cfg    subscriptions.Config

	mu      sync.Mutex
	running map[*subscriptions.Manager]bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func baseConfig() subscriptions.Config {
	return subscriptions.Config{
		Mailboxes:       []string{mailbox},
		NotificationURL: notifyURL,
		LifecycleURL:    lifeURL,
	}
}

// setup builds a bundle; edit changes the configuration first. The Graph
// fake announces notifications to the queue, as the webhook would.
func setup(t *testing.T, edit func(*subscriptions.Config)) *bundle {
	t.Helper()
	b := &bundle{
		clock:  subscriptionstest.NewClock(t0),
		mem:    subscriptionstest.NewStore(),
		queue:  subscriptionstest.NewQueue(),
		events: &eventLog{},
		logs:   &syncBuffer{},
		cfg:    baseConfig(),

		running: map[*subscriptions.Manager]bool{},
	}
	b.store = b.mem
	b.graph = subscriptionstest.NewGraph(b.clock)
	b.graph.OnNotify(func(mb, id string) { b.queue.Notify(mb, id) })
	if edit != nil {
		edit(&b.cfg)
	}
	b.mgr = b.newManager(t, "replica-a")
	return b
}

// newManager returns a Manager of the bundle's configuration under holder,
// logging into b.logs and recording its events in b.events.
func (b *bundle) newManager(t *testing.T, holder string) *subscriptions.Manager {
	t.Helper()
	cfg := b.cfg
	cfg.Holder = holder
	m, err := subscriptions.New(cfg, b.graph, b.store, b.queue, subscriptions.Options{
		Clock:   b.clock,
		Logger:  slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent: b.events.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run starts m.Run and stops it when the test ends, failing the test if Run
// returned an error. The returned function stops it earlier.
func (b *bundle) run(t *testing.T, m *subscriptions.Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.mu.Lock()
	b.running[m] = true
	b.mu.Unlock()
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			b.mu.Lock()
			delete(b.running, m)
			b.mu.Unlock()
		})
	}
	t.Cleanup(stop)
	return stop
}

// sleepers is the number of timers the running managers sleep on when
// idle: the work loop's, and the lease keeper's while leading.
func (b *bundle) sleepers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for m := range b.running {
		n++
		if m.Status()[0].Leader {
			n++
		}
	}
	return n
}

// settle waits until every running manager sleeps on the clock.
func (b *bundle) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.clock.WaitFor(ctx, func(timers int) bool { return timers == b.sleepers() }); err != nil {
		t.Fatalf("managers did not go to sleep: %d timers, want %d", b.clock.Timers(), b.sleepers())
	}
}

// advance moves the clock by d in steps, letting the managers act at each
// due time in between, and settles.
func (b *bundle) advance(t *testing.T, d time.Duration) {
	t.Helper()
	end := b.clock.Now().Add(d)
	for {
		b.settle(t)
		if !b.nextTimerBefore(end) {
			break
		}
		b.clock.AdvanceToNext()
	}
	if rest := end.Sub(b.clock.Now()); rest > 0 {
		b.clock.Advance(rest)
	}
	b.settle(t)
}

func (b *bundle) nextTimerBefore(end time.Time) bool {
	next, ok := b.clock.NextTimer()
	return ok && !next.After(end)
}

// liveSub returns the single live subscription Graph holds for mailbox.
func (b *bundle) liveSub(t *testing.T, mb string) subscriptions.Subscription {
	t.Helper()
	var found []subscriptions.Subscription
	for _, s := range b.graph.Subscriptions() {
		if s.Resource == "users/"+mb+"/mailFolders('Inbox')/messages" {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d live subscriptions for %s at %s, want 1: %+v", len(found), mb, b.clock.Now(), found)
	}
	return found[0]
}

// stored returns the store's records by id.
func (b *bundle) stored(t *testing.T) map[string]subscriptions.Record {
	t.Helper()
	recs, err := b.store.Subscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]subscriptions.Record{}
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// eventLog records the events of the bundle's managers, in order.
type eventLog struct {
	mu     sync.Mutex
	events []subscriptions.Event
}

func (l *eventLog) record(e subscriptions.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// all returns a copy of the recorded events.
func (l *eventLog) all() []subscriptions.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]subscriptions.Event(nil), l.events...)
}

// count returns how many events of kind with outcome (any outcome when "")
// were recorded for mailbox (any mailbox when "").
func (l *eventLog) count(kind subscriptions.Kind, mailbox string, outcome subscriptions.Outcome) int {
	n := 0
	for _, e := range l.all() {
		if e.Kind == kind && (mailbox == "" || e.Mailbox == mailbox) && (outcome == "" || e.Outcome == outcome) {
			n++
		}
	}
	return n
}

// resynced returns the messages all recorded resync rounds found and
// queued.
func (l *eventLog) resynced() (found, queued int) {
	for _, e := range l.all() {
		if e.Kind == subscriptions.KindResync {
			found += e.Found
			queued += e.Queued
		}
	}
	return found, queued
}

// leader returns the Leader of the last leadership event, false when none
// was recorded.
func (l *eventLog) leader() bool {
	evs := l.all()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == subscriptions.KindLeadership {
			return evs[i].Leader
		}
	}
	return false
}

var errBoom = errors.New("boom")
