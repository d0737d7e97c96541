package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// MessageKey names one reported email.
type MessageKey struct {
	Mailbox, MessageID string
}

// Summary is what the operator console shows of a stored email: its
// Message, and the campaign it joined with the campaign's size.
type Summary struct {
	Message
	// Campaign is the campaign's id, "" when the report joined none.
	Campaign string
	// CampaignReports is the number of reports of the campaign.
	CampaignReports int
}

// summaryBatch bounds the emails of one query (two parameters each).
const summaryBatch = 200

// Summaries returns what is stored of each of the given emails; an email
// the store does not know is absent from the map.
func (s *Store) Summaries(ctx context.Context, keys []MessageKey) (map[MessageKey]Summary, error) {
	out := make(map[MessageKey]Summary, len(keys))
	for start := 0; start < len(keys); start += summaryBatch {
		batch := keys[start:min(start+summaryBatch, len(keys))]
		if err := s.summaries(ctx, batch, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) summaries(ctx context.Context, keys []MessageKey, out map[MessageKey]Summary) error {
	var where strings.Builder
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		if i > 0 {
			where.WriteString(" OR ")
		}
		fmt.Fprintf(&where, "(m.mailbox = $%d AND m.message_id = $%d)", 2*i+1, 2*i+2)
		args = append(args, k.Mailbox, k.MessageID)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT m.mailbox, m.message_id, m.internet_message_id, m.record_key, m.record_id, m.skipped_by,
			m.reporter, m.subject, m.received_at, m.rule, m.created_at, m.updated_at,
			COALESCE(cr.campaign_id, ''),
			(SELECT count(*) FROM m2a_campaign_report c2 WHERE c2.campaign_id = cr.campaign_id)
		FROM m2a_message m
		LEFT JOIN m2a_campaign_report cr ON cr.mailbox = m.mailbox AND cr.message_id = m.message_id
		WHERE `+where.String(), args...)
	if err != nil {
		return fmt.Errorf("read report summaries: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var m Summary
		var rec sql.NullInt64
		var received int64
		if err := rows.Scan(&m.Mailbox, &m.MessageID, &m.InternetMessageID, &m.RecordKey, &rec, &m.SkippedBy,
			&m.Reporter, &m.Subject, &received, &m.Rule, &m.CreatedAt, &m.UpdatedAt,
			&m.Campaign, &m.CampaignReports); err != nil {
			return fmt.Errorf("read report summaries: %w", err)
		}
		m.RecordID = rec.Int64
		if received > 0 {
			m.ReceivedAt = time.UnixMilli(received).UTC()
		}
		out[MessageKey{m.Mailbox, m.MessageID}] = m
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read report summaries: %w", err)
	}
	return nil
}

// maxJobsOfMessage bounds the jobs JobsOf returns.
const maxJobsOfMessage = 100

// JobsOf returns the ids of the queue's jobs for one email — processing
// it, writing back to the mailbox, acknowledging the reporter — oldest
// first, at most 100.
func (s *Store) JobsOf(ctx context.Context, mailbox, messageID string) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id FROM river_job
		WHERE kind IN ('process_message', 'write_back', 'send_ack')
		AND args->>'mailbox' = $1 AND args->>'message_id' = $2
		ORDER BY id LIMIT $3`, mailbox, messageID, maxJobsOfMessage)
	if err != nil {
		return nil, fmt.Errorf("list jobs of %s/%s: %w", mailbox, messageID, err)
	}
	defer func() { _ = rows.Close() }()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list jobs of %s/%s: %w", mailbox, messageID, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs of %s/%s: %w", mailbox, messageID, err)
	}
	return ids, nil
}
