package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// Message is what the service remembers of one reported email: the intent
// to create its Archer record (the key written into the record), then the
// record's id.
type Message struct {
	Mailbox           string
	MessageID         string
	InternetMessageID string
	RecordKey         string
	// RecordID is 0 while only the intent exists.
	RecordID int64
	// SkippedBy names the triage rule that decided the report needs no
	// record.
	SkippedBy string
	// Reporter, Subject, ReceivedAt and Rule summarise the report for the
	// operator console: who reported it, the reported email's subject (cut
	// to 500 characters), when it arrived, the rule that matched.
	Reporter   string
	Subject    string
	ReceivedAt time.Time
	Rule       string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Processed reports whether the email is done with: it has its record, or
// a rule skipped it.
func (m Message) Processed() bool { return m.RecordID != 0 || m.SkippedBy != "" }

// Message returns what is stored for one email, or ErrNotFound.
func (s *Store) Message(ctx context.Context, mailbox, messageID string) (Message, error) {
	var m Message
	var rec sql.NullInt64
	var received int64
	err := s.db.QueryRowContext(ctx, `
		SELECT mailbox, message_id, internet_message_id, record_key, record_id, skipped_by,
			reporter, subject, received_at, rule, created_at, updated_at
		FROM m2a_message WHERE mailbox = $1 AND message_id = $2`, mailbox, messageID).
		Scan(&m.Mailbox, &m.MessageID, &m.InternetMessageID, &m.RecordKey, &rec, &m.SkippedBy,
			&m.Reporter, &m.Subject, &received, &m.Rule, &m.CreatedAt, &m.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("message %s/%s: %w", mailbox, messageID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("read message %s/%s: %w", mailbox, messageID, err)
	}
	m.RecordID = rec.Int64
	if received > 0 {
		m.ReceivedAt = time.UnixMilli(received).UTC()
	}
	return m, nil
}

// SaveIntent records that an Archer record with the given key is about to be
// created for the email. It returns the stored row: when an intent or a
// record already exists it is kept unchanged, so the caller learns that an
// earlier attempt got this far.
func (s *Store) SaveIntent(ctx context.Context, m Message) (Message, error) {
	now := s.now().UTC()
	var received int64
	if !m.ReceivedAt.IsZero() {
		received = m.ReceivedAt.UnixMilli()
	}
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO m2a_message (mailbox, message_id, internet_message_id, record_key, reporter, subject, received_at, rule, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
		ON CONFLICT (mailbox, message_id) DO NOTHING`,
		m.Mailbox, m.MessageID, m.InternetMessageID, m.RecordKey, clip.String(m.Reporter, 320), clip.String(m.Subject, 500),
		received, clip.String(m.Rule, 100), now); err != nil {
		return Message{}, fmt.Errorf("save intent for %s/%s: %w", m.Mailbox, m.MessageID, err)
	}
	return s.Message(ctx, m.Mailbox, m.MessageID)
}

// saveRecord stores the Archer record id of an email in the transaction
// exec runs in, so that the caller can complete the job in the same one.
func (s *Store) saveRecord(exec execFunc, mailbox, messageID string, recordID int64) error {
	n, err := exec(`
		UPDATE m2a_message SET record_id = $1, updated_at = $2 WHERE mailbox = $3 AND message_id = $4`,
		recordID, s.now().UTC(), mailbox, messageID)
	if err != nil {
		return fmt.Errorf("save record %d for %s/%s: %w", recordID, mailbox, messageID, err)
	}
	if n == 0 {
		return fmt.Errorf("save record %d for %s/%s: no intent stored", recordID, mailbox, messageID)
	}
	return nil
}

// saveSkipped marks the email as skipped by rule, in the transaction exec
// runs in.
func (s *Store) saveSkipped(exec execFunc, mailbox, messageID, rule string) error {
	n, err := exec(`
		UPDATE m2a_message SET skipped_by = $1, updated_at = $2 WHERE mailbox = $3 AND message_id = $4`,
		rule, s.now().UTC(), mailbox, messageID)
	if err != nil {
		return fmt.Errorf("save skip by %s for %s/%s: %w", rule, mailbox, messageID, err)
	}
	if n == 0 {
		return fmt.Errorf("save skip by %s for %s/%s: no intent stored", rule, mailbox, messageID)
	}
	return nil
}

// forgetEndedJobs deletes, in the transaction exec runs in, the ended
// (discarded or cancelled) jobs of an email that has just got its record:
// they no longer need an operator, and would otherwise stay in the
// discarded counts. It returns how many it deleted.
func forgetEndedJobs(exec execFunc, mailbox, messageID string) (int64, error) {
	n, err := exec(`
		DELETE FROM river_job WHERE kind = 'process_message' AND state IN ('discarded', 'cancelled')
		AND args->>'mailbox' = $1 AND args->>'message_id' = $2`, mailbox, messageID)
	if err != nil {
		return 0, fmt.Errorf("forget ended jobs of %s/%s: %w", mailbox, messageID, err)
	}
	return n, nil
}
