package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/mail2archer/mail2archer/internal/jobs"
)

// Completion is what a message job's success stores: the email's Archer
// record (or the rule that skipped it), and the jobs to queue after it:
// the write-back and the acknowledgment to the reporter (nil for none).
type Completion struct {
	RecordID  int64
	SkippedBy string
	WriteBack *jobs.WriteBack
	Ack       *jobs.Ack
}

// CompleteMessage stores the record id of the job's email, forgets the
// email's earlier ended jobs, queues the write-back and completes the job,
// in one transaction: either all of it is stored or none. It must be called
// from within the job's Work (the queue client and the job's recorded
// output come from ctx).
func (s *Store) CompleteMessage(ctx context.Context, job *river.Job[jobs.ProcessMessage], c Completion) error {
	a := job.Args
	op := fmt.Sprintf("complete message %s/%s", a.Mailbox, a.MessageID)
	if s.pg != nil {
		tx, err := s.pg.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		exec := func(q string, args ...any) (int64, error) { return pgExec(ctx, tx, q, args...) }
		if err := s.completeTx(ctx, exec, job, c, func() error {
			client := river.ClientFromContext[pgx.Tx](ctx)
			for _, j := range c.followUps() {
				if _, err := client.InsertTx(ctx, tx, j, nil); err != nil {
					return fmt.Errorf("queue %s: %w", j.Kind(), err)
				}
			}
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		}); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("%s: commit: %w", op, err)
		}
		return nil
	}
	return s.inTxErr(ctx, op, func(tx *sql.Tx) error {
		exec := func(q string, args ...any) (int64, error) { return sqlExec(ctx, tx, q, args...) }
		return s.completeTx(ctx, exec, job, c, func() error {
			client := river.ClientFromContext[*sql.Tx](ctx)
			for _, j := range c.followUps() {
				if _, err := client.InsertTx(ctx, tx, j, nil); err != nil {
					return fmt.Errorf("queue %s: %w", j.Kind(), err)
				}
			}
			_, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job)
			return err
		})
	})
}

// completeTx is CompleteMessage's work inside the transaction: exec runs
// the application's statements in it, queue the queue's part (the
// write-back and the job's completion).
func (s *Store) completeTx(_ context.Context, exec execFunc, job *river.Job[jobs.ProcessMessage], c Completion, queue func() error) error {
	a := job.Args
	if c.SkippedBy != "" {
		if err := s.saveSkipped(exec, a.Mailbox, a.MessageID, c.SkippedBy); err != nil {
			return err
		}
	} else if err := s.saveRecord(exec, a.Mailbox, a.MessageID, c.RecordID); err != nil {
		return err
	}
	// Earlier jobs of this email that ended (discarded after their
	// attempts, cancelled) are done with now.
	if _, err := forgetEndedJobs(exec, a.Mailbox, a.MessageID); err != nil {
		return err
	}
	if err := queue(); err != nil {
		return fmt.Errorf("complete job %d: %w", job.ID, err)
	}
	return nil
}

// followUps are the jobs a completion queues.
func (c Completion) followUps() []river.JobArgs {
	var out []river.JobArgs
	if c.WriteBack != nil {
		out = append(out, *c.WriteBack)
	}
	if c.Ack != nil {
		out = append(out, *c.Ack)
	}
	return out
}

// execFunc runs one statement in a transaction and returns the rows it
// affected.
type execFunc func(query string, args ...any) (int64, error)

// inTxErr runs fn in a transaction and wraps a failure with op.
func (s *Store) inTxErr(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	if err := s.inTx(ctx, fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
