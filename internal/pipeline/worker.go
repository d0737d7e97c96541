// Package pipeline holds the queue's workers: the one that turns a reported
// email into exactly one Archer incident, and the one that writes the
// record's id back to the mailbox.
//
// Exactly once: before the Archer create the worker stores an intent with
// the record's key; an attempt that finds an intent without a record id
// (an earlier attempt crashed or timed out around the create) first looks
// the record up in Archer by its key field and adopts it. The record id is
// stored and the job completed in one database transaction.
package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

// Graph is the part of the Graph client the workers use.
type Graph interface {
	FetchMessage(ctx context.Context, mailbox, id string) (*graph.Message, error)
	Categorize(ctx context.Context, mailbox, id string, categories []string) error
	Move(ctx context.Context, mailbox, id, folder string) (string, error)
}

// Archer is the part of the Archer client the workers use.
type Archer interface {
	UploadAttachment(ctx context.Context, name string, r io.Reader) (int64, error)
	CreateRecord(ctx context.Context, r *archer.Record) (int64, error)
	FindByField(ctx context.Context, app *archer.Application, level *archer.Level, f archer.Field, value string) ([]int64, error)
}

// Store is the part of the state database the workers use.
type Store interface {
	DB() *sql.DB
	Message(ctx context.Context, mailbox, messageID string) (store.Message, error)
	SaveIntent(ctx context.Context, m store.Message) (store.Message, error)
	SaveRecordTx(ctx context.Context, tx *sql.Tx, mailbox, messageID string, recordID int64) error
}

// Options configures the message worker.
type Options struct {
	Graph   Graph
	Archer  Archer
	Store   Store
	Mapping *incident.Compiled
	// Email bounds and internal domains for the analysis.
	Email email.Options
	// WriteBack says what to write to the mailbox after the record exists;
	// nothing when both parts are empty.
	WriteBack WriteBackOptions
	// Timeout bounds one attempt. Default 10 minutes.
	Timeout time.Duration
	Metrics *Metrics
	Logger  zerolog.Logger
	Now     func() time.Time
	// AfterCreate, when set, runs right after Archer returned the new
	// record's id and before it is stored. Tests use it to crash the
	// process at the worst moment.
	AfterCreate func(recordID int64)
}

// MessageWorker processes jobs.ProcessMessage.
type MessageWorker struct {
	river.WorkerDefaults[jobs.ProcessMessage]
	opts Options
}

// NewMessageWorker builds the worker.
func NewMessageWorker(opts Options) *MessageWorker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	return &MessageWorker{opts: opts}
}

// Timeout bounds one attempt; a timed-out attempt is retried.
func (w *MessageWorker) Timeout(*river.Job[jobs.ProcessMessage]) time.Duration { return w.opts.Timeout }

// Work processes one reported email. Transient failures return the error
// (River retries with backoff); Graph's Retry-After snoozes the job; a
// message that is gone, a report that cannot be rendered and Archer's
// validation errors cancel the job with a reason an operator can read.
func (w *MessageWorker) Work(ctx context.Context, job *river.Job[jobs.ProcessMessage]) error {
	a := job.Args
	log := w.opts.Logger.With().Str("component", "worker").Int64("job_id", job.ID).
		Str("mailbox", a.Mailbox).Str("message_id", a.MessageID).Int("attempt", job.Attempt).Logger()
	recordID, adopted, err := w.process(ctx, job, log)
	if err != nil {
		out := w.outcome(err)
		reason := reasonOf(out, err)
		w.opts.Metrics.outcome(reason)
		var cancel *river.JobCancelError
		if errors.As(out, &cancel) {
			// The reason leads the error, so `jobs list` shows it first.
			out = river.JobCancel(fmt.Errorf("%s: %w", reason, err))
			log.Error().Err(err).Str("reason", reason).Msg("job ended")
		} else {
			log.Warn().Err(err).Msg("attempt failed; will retry")
		}
		return out
	}
	if recordID == 0 {
		w.opts.Metrics.outcome("already_done")
		return nil
	}
	w.opts.Metrics.outcome(map[bool]string{true: "adopted", false: "created"}[adopted])
	w.opts.Metrics.latency.Observe(w.opts.Now().Sub(job.CreatedAt).Seconds())
	log.Info().Int64("record_id", recordID).Bool("adopted", adopted).
		Dur("since_notification", w.opts.Now().Sub(job.CreatedAt)).Msg("incident recorded")
	return nil
}

// process returns the record id (0 when the job had nothing left to do) and
// whether an existing record was adopted.
func (w *MessageWorker) process(ctx context.Context, job *river.Job[jobs.ProcessMessage], log zerolog.Logger) (int64, bool, error) {
	a := job.Args
	prior, err := w.opts.Store.Message(ctx, a.Mailbox, a.MessageID)
	hasIntent := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, false, err
	}
	if hasIntent && prior.RecordID != 0 && a.Replay == "" {
		log.Info().Int64("record_id", prior.RecordID).Msg("record already exists; nothing to do")
		return 0, false, nil
	}

	msg, err := w.opts.Graph.FetchMessage(ctx, a.Mailbox, a.MessageID)
	if err != nil {
		return 0, false, fmt.Errorf("fetch: %w", err)
	}
	rep, err := email.Analyze(msg.MIME, email.Metadata{
		Mailbox: a.Mailbox, MessageID: a.MessageID, InternetMessageID: msg.InternetMessageID,
		Subject: msg.Subject, WebLink: msg.WebLink, ReceivedAt: msg.ReceivedAt,
		From:   email.Address{Name: msg.From.Name, Address: msg.From.Address},
		Sender: email.Address{Name: msg.Sender.Name, Address: msg.Sender.Address},
	}, w.opts.Email)
	if err != nil {
		if rep == nil || rep.Suspect == nil {
			return 0, false, &permanentError{reason: "unreadable_email", err: fmt.Errorf("analyse: %w", err)}
		}
		// A bound was hit: the report holds what could be read, and the
		// incident is still worth creating, with the reason on record.
		rep.Warnings = append(rep.Warnings, err.Error())
		log.Warn().Err(err).Msg("email only partly analysed; creating the incident from what was read")
	}
	inc, err := w.opts.Mapping.Render(rep, msg.MIME, w.opts.Now())
	if err != nil {
		return 0, false, &permanentError{reason: "render_failed", err: err}
	}

	intent, err := w.opts.Store.SaveIntent(ctx, store.Message{Mailbox: a.Mailbox, MessageID: a.MessageID,
		InternetMessageID: msg.InternetMessageID, RecordKey: inc.Key})
	if err != nil {
		return 0, false, err
	}
	var recordID int64
	adopted := false
	if hasIntent || a.Replay != "" {
		// An earlier attempt may have created the record before it failed.
		ids, err := w.opts.Archer.FindByField(ctx, w.opts.Mapping.App, w.opts.Mapping.Level, w.opts.Mapping.KeyField, intent.RecordKey)
		if err != nil {
			return 0, false, fmt.Errorf("look up record by key: %w", err)
		}
		if len(ids) > 0 {
			recordID, adopted = ids[0], true
			if len(ids) > 1 {
				log.Warn().Interface("record_ids", ids).Msg("several Archer records carry this email's key; adopting the first")
			}
		}
	}
	if recordID == 0 {
		recordID, err = w.create(ctx, inc)
		if err != nil {
			return 0, false, err
		}
		if w.opts.AfterCreate != nil {
			w.opts.AfterCreate(recordID)
		}
	}
	if err := w.commit(ctx, job, recordID, msg.Categories); err != nil {
		return 0, false, err
	}
	return recordID, adopted, nil
}

func (w *MessageWorker) create(ctx context.Context, inc *incident.Incident) (int64, error) {
	ids := make([]int64, 0, len(inc.Files))
	for _, f := range inc.Files {
		id, err := w.opts.Archer.UploadAttachment(ctx, f.Name, bytes.NewReader(f.Data))
		if err != nil {
			return 0, fmt.Errorf("upload %s: %w", f.Name, err)
		}
		ids = append(ids, id)
	}
	if err := inc.AttachFiles(ids); err != nil {
		return 0, &permanentError{reason: "render_failed", err: err}
	}
	id, err := w.opts.Archer.CreateRecord(ctx, inc.Record)
	if err != nil {
		return 0, fmt.Errorf("create record: %w", err)
	}
	return id, nil
}

// commit stores the record id, completes the job and queues the write-back,
// in one transaction.
func (w *MessageWorker) commit(ctx context.Context, job *river.Job[jobs.ProcessMessage], recordID int64, categories []string) error {
	tx, err := w.opts.Store.DB().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin commit: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := w.opts.Store.SaveRecordTx(ctx, tx, job.Args.Mailbox, job.Args.MessageID, recordID); err != nil {
		return err
	}
	if w.opts.WriteBack.enabled() {
		client := river.ClientFromContext[*sql.Tx](ctx)
		if _, err := client.InsertTx(ctx, tx, jobs.WriteBack{Mailbox: job.Args.Mailbox, MessageID: job.Args.MessageID,
			RecordID: recordID, Categories: categories}, nil); err != nil {
			return fmt.Errorf("queue write-back: %w", err)
		}
	}
	if _, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit record %d: %w", recordID, err)
	}
	return nil
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// outcome is the one place where a failure becomes a queue decision.
func (w *MessageWorker) outcome(err error) error {
	var perm *permanentError
	if errors.As(err, &perm) {
		return river.JobCancel(err)
	}
	var verr *archer.ValidationError
	if errors.As(err, &verr) {
		return river.JobCancel(err)
	}
	var gerr *graph.Error
	if errors.As(err, &gerr) {
		switch gerr.Class {
		case graph.ClassRetryAfter:
			return river.JobSnooze(gerr.RetryAfter)
		case graph.ClassNotFound, graph.ClassPermanent:
			return river.JobCancel(err)
		}
		return err
	}
	// Everything else (Archer 5xx and timeouts, database errors, and
	// configuration problems an operator may fix meanwhile) is retried with
	// backoff until the attempts run out.
	return err
}

// reasonOf names an outcome for metrics and logs.
func reasonOf(out, err error) string {
	var perm *permanentError
	var verr *archer.ValidationError
	var gerr *graph.Error
	var snooze *river.JobSnoozeError
	switch {
	case errors.As(out, &snooze):
		return "throttled"
	case errors.As(err, &perm):
		return perm.reason
	case errors.As(err, &verr):
		return "archer_validation"
	case errors.As(err, &gerr) && gerr.Class == graph.ClassNotFound:
		return "message_gone"
	case errors.As(err, &gerr):
		return "graph_" + strings.ReplaceAll(gerr.Class.String(), "-", "_")
	case archer.IsTransient(err):
		return "archer_transient"
	}
	return "error"
}
