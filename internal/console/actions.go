package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/store"
)

// Attempt is one job of an email in its history: processing it, writing
// back to the mailbox or acknowledging the reporter.
type Attempt struct {
	JobID       int64      `json:"job_id"`
	Kind        string     `json:"kind"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	CreatedAt   time.Time  `json:"created_at"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	// Errors are the failed attempts, oldest first.
	Errors   []AttemptError `json:"errors"`
	Outcome  string         `json:"outcome,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	RecordID int64          `json:"record_id,omitempty"`
}

// AttemptError is the error of one failed attempt.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

// History returns one email's report and every job the queue holds for
// it, oldest first.
func (c *Console) History(ctx context.Context, mailbox, messageID string) (Report, []Attempt, error) {
	if err := checkIDs(mailbox, messageID); err != nil {
		return Report{}, nil, fmt.Errorf("history of %s/%s: %w", mailbox, messageID, err)
	}
	ids, err := c.opts.Store.JobsOf(ctx, mailbox, messageID)
	if err != nil {
		return Report{}, nil, fmt.Errorf("history of %s/%s: %w", mailbox, messageID, err)
	}
	k := store.MessageKey{Mailbox: mailbox, MessageID: messageID}
	sums, err := c.opts.Store.Summaries(ctx, []store.MessageKey{k})
	if err != nil {
		return Report{}, nil, fmt.Errorf("history of %s/%s: %w", mailbox, messageID, err)
	}
	sum, stored := sums[k]
	history := []Attempt{}
	var newest *rivertype.JobRow
	for _, id := range ids {
		j, err := c.opts.Queue.JobGet(ctx, id)
		if errors.Is(err, river.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return Report{}, nil, fmt.Errorf("history of %s/%s: job %d: %w", mailbox, messageID, id, err)
		}
		if j.Kind == (jobs.ProcessMessage{}).Kind() {
			newest = j
		}
		history = append(history, attemptOf(j))
	}
	if newest == nil && !stored {
		return Report{}, nil, fmt.Errorf("history of %s/%s: %w", mailbox, messageID, ErrNotFound)
	}
	return c.report(k, newest, sum, stored, c.module()), history, nil
}

func attemptOf(j *rivertype.JobRow) Attempt {
	o := outputOf(j)
	a := Attempt{JobID: j.ID, Kind: j.Kind, State: string(j.State), Attempt: j.Attempt,
		CreatedAt: j.CreatedAt.UTC(), Errors: []AttemptError{}, Outcome: o.Outcome, RecordID: o.RecordID}
	if j.FinalizedAt != nil {
		t := j.FinalizedAt.UTC()
		a.FinalizedAt = &t
	}
	for _, e := range j.Errors {
		a.Errors = append(a.Errors, AttemptError{At: e.At.UTC(), Attempt: e.Attempt, Error: e.Error})
	}
	switch {
	case j.State == rivertype.JobStateScheduled && o.WaitingFor != "":
		a.Reason = o.Reason
	case len(j.Errors) > 0 && (j.State == rivertype.JobStateCancelled || j.State == rivertype.JobStateDiscarded):
		a.Reason = reasonOf(j.Errors[len(j.Errors)-1].Error)
	}
	return a
}

// job returns the job, or ErrNotFound.
func (c *Console) job(ctx context.Context, op string, id int64) (*rivertype.JobRow, error) {
	j, err := c.opts.Queue.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, fmt.Errorf("%s job %d: %w", op, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s job %d: %w", op, id, err)
	}
	return j, nil
}

// Retry makes an ended or waiting job run again at once (the command
// `mail2archer jobs retry`), and says what it did.
func (c *Console) Retry(ctx context.Context, id int64) (string, error) {
	j, err := c.job(ctx, "retry", id)
	if err != nil {
		return "", err
	}
	if j.State == rivertype.JobStateRunning {
		return "", fmt.Errorf("retry job %d: it is running now: %w", id, ErrConflict)
	}
	var out bytes.Buffer
	if err := ops.RetryJob(ctx, c.opts.Store, id, &out); err != nil {
		return "", actionError(err)
	}
	return strings.TrimSpace(out.String()), nil
}

// cancellable are the states of a job that has not run to its end.
var cancellable = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateScheduled, rivertype.JobStateRetryable}

// Cancel stops a pending job from running again: it ends as cancelled and
// a retry or a replay brings it back.
func (c *Console) Cancel(ctx context.Context, id int64) (string, error) {
	j, err := c.job(ctx, "cancel", id)
	if err != nil {
		return "", err
	}
	if !slices.Contains(cancellable, j.State) {
		return "", fmt.Errorf("cancel job %d: it is %s; only a job waiting to run can be cancelled: %w", id, j.State, ErrConflict)
	}
	j, err = c.opts.Queue.JobCancel(ctx, id)
	if err != nil {
		return "", fmt.Errorf("cancel job %d: %w", id, err)
	}
	return fmt.Sprintf("job %d (%s) is %s", j.ID, j.Kind, j.State), nil
}

// Replay queues one email to be processed again (the command `mail2archer
// replay`): the record is looked up by its key first, so a replay never
// makes a second incident.
func (c *Console) Replay(ctx context.Context, mailbox, messageID string) (string, error) {
	if err := checkIDs(mailbox, messageID); err != nil {
		return "", fmt.Errorf("replay %s/%s: %w", mailbox, messageID, err)
	}
	if !c.configured(mailbox) {
		return "", fmt.Errorf("replay %s/%s: the mailbox is not one of M2A_MAILBOXES: %w", mailbox, messageID, ErrInvalid)
	}
	var out bytes.Buffer
	if err := ops.Replay(ctx, c.opts.Store, mailbox, messageID, &out); err != nil {
		return "", actionError(err)
	}
	return strings.TrimSpace(out.String()), nil
}

// actionError classifies an error of an operator command.
func actionError(err error) error {
	switch {
	case errors.Is(err, ops.ErrNoJob):
		return fmt.Errorf("%w: %w", err, ErrNotFound)
	case errors.Is(err, ops.ErrBusy):
		return fmt.Errorf("%w: %w", err, ErrConflict)
	}
	return err
}

func checkIDs(mailbox, messageID string) error {
	if mailbox == "" || messageID == "" {
		return fmt.Errorf("a mailbox and a message id are needed: %w", ErrInvalid)
	}
	if len(mailbox) > maxID || len(messageID) > maxID {
		return fmt.Errorf("the mailbox or message id is longer than %d bytes: %w", maxID, ErrInvalid)
	}
	return nil
}

// Subscription is one watched mailbox folder's subscription.
type Subscription struct {
	Mailbox          string     `json:"mailbox"`
	Folder           string     `json:"folder"`
	SubscriptionID   string     `json:"subscription_id,omitempty"`
	ExpiresAt        *time.Time `json:"expires_at,omitempty"`
	ExpiresInSeconds int64      `json:"expires_in_seconds"`
	LastRenewal      *time.Time `json:"last_renewal,omitempty"`
	LastResync       *time.Time `json:"last_resync,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	// Leader is true on the replica that manages the subscriptions.
	Leader  bool `json:"leader"`
	Healthy bool `json:"healthy"`
}

// Subscriptions returns the state of every watched mailbox, in
// configuration order.
func (c *Console) Subscriptions() []Subscription {
	out := []Subscription{}
	if c.opts.Subscriptions == nil {
		return out
	}
	for _, s := range c.opts.Subscriptions.Status() {
		out = append(out, Subscription{Mailbox: s.Mailbox, Folder: s.Folder, SubscriptionID: s.SubscriptionID,
			ExpiresAt: timeOrNil(s.ExpiresAt), ExpiresInSeconds: s.SecondsToExpiry,
			LastRenewal: timeOrNil(s.LastRenewal), LastResync: timeOrNil(s.LastResync),
			LastError: s.LastError, Leader: s.Leader, Healthy: s.Healthy})
	}
	return out
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (c *Console) configured(mailbox string) bool {
	for _, s := range c.Subscriptions() {
		if strings.EqualFold(s.Mailbox, mailbox) {
			return true
		}
	}
	return false
}

// Resync sweeps the mailbox's folder now and queues what it finds that
// is not queued yet. Any replica may run it.
func (c *Console) Resync(ctx context.Context, mailbox string) (string, error) {
	if mailbox == "" || len(mailbox) > maxID {
		return "", fmt.Errorf("resync %q: a mailbox is needed: %w", mailbox, ErrInvalid)
	}
	if !c.configured(mailbox) {
		return "", fmt.Errorf("resync %s: the mailbox is not one of M2A_MAILBOXES: %w", mailbox, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ResyncTimeout)
	defer cancel()
	n, err := c.opts.Subscriptions.Resync(ctx, mailbox)
	if err != nil {
		return "", fmt.Errorf("resync %s: %w", mailbox, err)
	}
	return fmt.Sprintf("resync of %s queued %d new message(s)", mailbox, n), nil
}

// QueueCounts returns the number of jobs in each queue state.
func (c *Console) QueueCounts(ctx context.Context) (map[string]int, error) {
	counts, err := c.opts.Store.JobCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range rivertype.JobStates() {
		if _, ok := counts[string(s)]; !ok {
			counts[string(s)] = 0
		}
	}
	return counts, nil
}
