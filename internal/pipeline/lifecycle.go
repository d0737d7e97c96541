package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// Lifecycle is the part of the subscriptions manager the lifecycle worker
// uses.
type Lifecycle interface {
	HandleLifecycle(ctx context.Context, subscriptionID, event string) error
}

// LifecycleWorker processes jobs.Lifecycle: it hands Graph's lifecycle
// event to the subscriptions manager. A replica that does not manage the
// subscriptions snoozes the job until the one that does takes it.
type LifecycleWorker struct {
	river.WorkerDefaults[jobs.Lifecycle]
	subs Lifecycle
}

// NewLifecycleWorker builds the worker.
func NewLifecycleWorker(subs Lifecycle) *LifecycleWorker { return &LifecycleWorker{subs: subs} }

// standbySnooze is how long a replica that does not manage the
// subscriptions puts a lifecycle event back: short, because any replica
// may take it next, and on average one in N is the one that acts.
const standbySnooze = 2 * time.Second

// Work acts on one lifecycle event.
func (w *LifecycleWorker) Work(ctx context.Context, job *river.Job[jobs.Lifecycle]) error {
	err := w.subs.HandleLifecycle(ctx, job.Args.SubscriptionID, job.Args.Event)
	if errors.Is(err, subscriptions.ErrNotLeader) {
		return river.JobSnooze(standbySnooze)
	}
	return err
}

// Inserter inserts jobs, all of them or none.
type Inserter interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Processed tells whether an email already has its record.
type Processed interface {
	Message(ctx context.Context, mailbox, messageID string) (store.Message, error)
}

// ResyncQueue queues the messages a resync found as message jobs, skipping
// those that already have their record; the jobs' uniqueness dedupes the
// rest. It is the subscriptions manager's Queue.
type ResyncQueue struct {
	Jobs  Inserter
	Store Processed
}

// Enqueue queues ids of mailbox and returns how many jobs are new.
func (q ResyncQueue) Enqueue(ctx context.Context, mailbox string, ids []string) (int, error) {
	params := make([]river.InsertManyParams, 0, len(ids))
	for _, id := range ids {
		m, err := q.Store.Message(ctx, mailbox, id)
		switch {
		case err == nil && m.Processed():
			continue
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return 0, fmt.Errorf("check message %s: %w", id, err)
		}
		params = append(params, river.InsertManyParams{Args: jobs.ProcessMessage{Mailbox: mailbox, MessageID: id, Source: "resync"}})
	}
	if len(params) == 0 {
		return 0, nil
	}
	res, err := q.Jobs.InsertMany(ctx, params)
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
