package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// The subscriptions package is public and depends on small interfaces with
// its own types; these adapters connect it to the service's store, Graph
// client and queue.

// subscriptionsConfig is the manager's configuration from the service's.
func subscriptionsConfig(cfg *config.Config) subscriptions.Config {
	since, _ := cfg.InitialSync() // validated with the configuration
	return subscriptions.Config{
		Mailboxes: cfg.MailboxList(), Folder: cfg.MailFolder,
		NotificationURL: cfg.WebhookURL(), LifecycleURL: cfg.LifecycleURL(),
		AllowHTTP: cfg.AllowInsecurePublicURL, MaxLifetime: cfg.SubscriptionLifetime,
		ResyncInterval: cfg.ResyncInterval, InitialSyncSince: since, FullResyncWindow: cfg.FullResyncWindow,
	}
}

// subsStore stores the manager's subscriptions and tells changed (the
// webhook's in-memory index) after each change.
type subsStore struct {
	*store.Store
	changed func()
}

func (s subsStore) SaveSubscription(ctx context.Context, r subscriptions.Record) error {
	err := s.Store.SaveSubscription(ctx, store.Subscription(r))
	if s.changed != nil {
		s.changed()
	}
	return err
}

func (s subsStore) DeleteSubscription(ctx context.Context, id string) error {
	err := s.Store.DeleteSubscription(ctx, id)
	if s.changed != nil {
		s.changed()
	}
	return err
}

func (s subsStore) Subscriptions(ctx context.Context) ([]subscriptions.Record, error) {
	subs, err := s.Store.Subscriptions(ctx)
	out := make([]subscriptions.Record, len(subs))
	for i, x := range subs {
		out[i] = subscriptions.Record(x)
	}
	return out, err
}

type subsGraph struct{ c *graph.Client }

// as404 marks an answer whose HTTP status is 404 with the sentinel: for
// subscriptions, Graph answers 404 with codes that otherwise mean a
// permission problem (ExtensionError), so the status decides.
func as404(err, sentinel error) error {
	var ge *graph.Error
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	return err
}

func (g subsGraph) CreateSubscription(ctx context.Context, r subscriptions.Request) (subscriptions.Subscription, error) {
	s, err := g.c.CreateSubscription(ctx, graph.SubscriptionRequest(r))
	return subscriptions.Subscription(s), err
}

func (g subsGraph) RenewSubscription(ctx context.Context, id string, t time.Time) (subscriptions.Subscription, error) {
	s, err := g.c.RenewSubscription(ctx, id, t)
	return subscriptions.Subscription(s), as404(err, subscriptions.ErrNotFound)
}

func (g subsGraph) ReauthorizeSubscription(ctx context.Context, id string) error {
	return as404(g.c.ReauthorizeSubscription(ctx, id), subscriptions.ErrNotFound)
}

func (g subsGraph) DeleteSubscription(ctx context.Context, id string) error {
	return as404(g.c.DeleteSubscription(ctx, id), subscriptions.ErrNotFound)
}

func (g subsGraph) ListSubscriptions(ctx context.Context) ([]subscriptions.Subscription, error) {
	l, err := g.c.ListSubscriptions(ctx)
	out := make([]subscriptions.Subscription, len(l))
	for i, s := range l {
		out[i] = subscriptions.Subscription(s)
	}
	return out, err
}

func (g subsGraph) Delta(ctx context.Context, mailbox, folder, link string, since time.Time) (subscriptions.DeltaPage, error) {
	p, err := g.c.Delta(ctx, mailbox, folder, link, since)
	if err != nil {
		if graph.ClassOf(err) == graph.ClassNotFound {
			err = fmt.Errorf("%w: %w", subscriptions.ErrDeltaExpired, err)
		}
		return subscriptions.DeltaPage{}, err
	}
	out := subscriptions.DeltaPage{NextLink: p.NextLink, DeltaLink: p.DeltaLink, Items: make([]subscriptions.DeltaItem, len(p.Items))}
	for i, it := range p.Items {
		out.Items[i] = subscriptions.DeltaItem(it)
	}
	return out, nil
}

// resyncQueue queues the messages a resync found, skipping those that are
// already incidents; the unique job dedupes the rest.
type resyncQueue struct {
	queue *river.Client[*sql.Tx]
	store *store.Store
}

func (q resyncQueue) Enqueue(ctx context.Context, mailbox string, ids []string) (int, error) {
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		m, err := q.store.Message(ctx, mailbox, id)
		switch {
		case err == nil && m.RecordID != 0:
			continue
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return 0, fmt.Errorf("check message %s: %w", id, err)
		}
		params = append(params, river.InsertManyParams{Args: jobs.ProcessMessage{Mailbox: mailbox, MessageID: id, Source: "resync"}})
	}
	if len(params) == 0 {
		return 0, nil
	}
	res, err := q.queue.InsertMany(ctx, params)
	if err != nil {
		return 0, fmt.Errorf("queue %d messages of %s: %w", len(params), mailbox, err)
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

// lifecycleWorker hands Graph's lifecycle events to the subscriptions
// manager. A standby replica snoozes the job until the leader takes it.
type lifecycleWorker struct {
	river.WorkerDefaults[jobs.Lifecycle]
	subs *subscriptions.Manager
}

func (w *lifecycleWorker) Work(ctx context.Context, job *river.Job[jobs.Lifecycle]) error {
	err := w.subs.HandleLifecycle(ctx, job.Args.SubscriptionID, job.Args.Event)
	if errors.Is(err, subscriptions.ErrNotLeader) {
		return river.JobSnooze(15 * time.Second)
	}
	return err
}

// Subscriptions runs `mail2archer subscriptions list|sync|delete ID…`
// against the tenant, with the service's own configuration. sync reconciles
// the subscriptions as a start would and resyncs every mailbox once.
func Subscriptions(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options, args []string, w io.Writer) error {
	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	gc, err := graph.New(graphConfig(cfg, opts.GraphHTTPClient), log)
	if err != nil {
		return fmt.Errorf("graph client: %w", err)
	}
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		return err
	}
	m, err := subscriptions.New(subscriptionsConfig(cfg), subsGraph{gc}, subsStore{Store: st}, resyncQueue{q, st},
		subscriptions.Options{Logger: log})
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		list, err := m.List(ctx)
		if err != nil {
			return err
		}
		return subscriptions.WriteList(w, list, time.Now())
	case "sync":
		rep, err := m.SyncOnce(ctx)
		if err != nil {
			return err
		}
		if rep.Managed {
			_, _ = fmt.Fprintln(w, "subscriptions reconciled")
		} else {
			_, _ = fmt.Fprintln(w, "a running service manages the subscriptions; only the resync ran")
		}
		for mb, n := range rep.Queued {
			_, _ = fmt.Fprintf(w, "%s: %d message(s) queued by the resync\n", mb, n)
		}
		return nil
	case "delete":
		if len(args) < 2 {
			return errors.New("usage: mail2archer subscriptions delete ID [ID ...]")
		}
		for _, id := range args[1:] {
			if err := m.Delete(ctx, id); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(w, "deleted subscription %s\n", id)
		}
		return nil
	}
	return fmt.Errorf("unknown subscriptions command %q; use list, sync or delete", args[0])
}
