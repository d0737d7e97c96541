package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/mail2archer/mail2archer/internal/jobs"
)

// Completion is what a message job's success stores: the email's Archer
// record, and the write-back job to queue after it (nil for none).
type Completion struct {
	RecordID  int64
	WriteBack *jobs.WriteBack
}

// CompleteMessage stores the record id of the job's email, forgets the
// email's earlier ended jobs, queues the write-back and completes the job,
// in one transaction: either all of it is stored or none. It must be called
// from within the job's Work (the queue client and the job's recorded
// output come from ctx).
func (s *Store) CompleteMessage(ctx context.Context, job *river.Job[jobs.ProcessMessage], c Completion) error {
	a := job.Args
	return s.inTxErr(ctx, fmt.Sprintf("complete message %s/%s", a.Mailbox, a.MessageID), func(tx *sql.Tx) error {
		if err := s.SaveRecordTx(ctx, tx, a.Mailbox, a.MessageID, c.RecordID); err != nil {
			return err
		}
		// Earlier jobs of this email that ended (discarded after their
		// attempts, cancelled) are done with now.
		if _, err := s.ForgetEndedJobsTx(ctx, tx, a.Mailbox, a.MessageID); err != nil {
			return err
		}
		if c.WriteBack != nil {
			client := river.ClientFromContext[*sql.Tx](ctx)
			if _, err := client.InsertTx(ctx, tx, *c.WriteBack, nil); err != nil {
				return fmt.Errorf("queue write-back: %w", err)
			}
		}
		if _, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("complete job %d: %w", job.ID, err)
		}
		return nil
	})
}

// inTxErr runs fn in a transaction and wraps a failure with op.
func (s *Store) inTxErr(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	if err := s.inTx(ctx, fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
