package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Campaign is a group of reports of the same email, on one Archer record.
type Campaign struct {
	ID string
	// FirstAt is the time of the first report; the window counts from it.
	FirstAt time.Time
	// RecordKey is the key of the campaign's record in Archer; RecordID
	// is zero until the record exists.
	RecordKey string
	RecordID  int64
	// Applied is the number of reports the record shows.
	Applied int
	// Append holds, by field id, the text of the fields that grow with
	// each report; Attachments the attachment ids of the fields that take
	// each report's original.
	Append      map[int64]string
	Attachments map[int64][]int64
	// Done lists the reports ("mailbox/message id") whose lines and files
	// the record holds, so that a job running again adds them once.
	Done []string
}

// CampaignReport is one report of a campaign.
type CampaignReport struct {
	Mailbox, MessageID string
	Reporter           string
	At                 time.Time
}

// campaignState is the JSON of m2a_campaign.state.
type campaignState struct {
	Append      map[int64]string  `json:"append,omitempty"`
	Attachments map[int64][]int64 `json:"attachments,omitempty"`
	Done        []string          `json:"done,omitempty"`
}

// errCampaignRace means that another report created a campaign with one of
// the same keys at the same moment; joining again finds it.
var errCampaignRace = errors.New("another report opened a campaign with the same key")

// JoinCampaign puts report r in the campaign that one of its keys names,
// if that campaign's window (counted from its first report) has not passed
// at now, or else in a new campaign whose record will carry recordKey. It
// returns the campaign and whether r opened it. Joining is idempotent: a
// report already in a campaign stays in it, so a job that runs again counts
// once. Two reports of one email joining at the same moment, on one process
// or on replicas, end in one campaign: each key names one campaign at a
// time, and the loser of a race joins the winner's.
func (s *Store) JoinCampaign(ctx context.Context, keys []string, window time.Duration, now time.Time, r CampaignReport, recordKey string) (Campaign, bool, error) {
	op := fmt.Sprintf("join campaign for %s/%s", r.Mailbox, r.MessageID)
	for attempt := 0; ; attempt++ {
		var c Campaign
		var opened bool
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			c, opened, err = s.joinTx(ctx, tx, keys, window, now, r, recordKey)
			return err
		})
		if errors.Is(err, errCampaignRace) && attempt < 5 {
			continue
		}
		if err != nil {
			return Campaign{}, false, fmt.Errorf("%s: %w", op, err)
		}
		return c, opened, nil
	}
}

func (s *Store) joinTx(ctx context.Context, tx *sql.Tx, keys []string, window time.Duration, now time.Time, r CampaignReport, recordKey string) (Campaign, bool, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT campaign_id FROM m2a_campaign_report WHERE mailbox = $1 AND message_id = $2`,
		r.Mailbox, r.MessageID).Scan(&id)
	switch {
	case err == nil:
		c, err := campaignTx(ctx, tx, id)
		return c, false, err
	case !errors.Is(err, sql.ErrNoRows):
		return Campaign{}, false, err
	}
	cutoff := now.Add(-window).UnixMilli()
	// The open campaign one of the keys names; the oldest if several.
	var openID string
	var openFirst int64
	for _, k := range keys {
		var cid string
		var first int64
		err := tx.QueryRowContext(ctx, `SELECT campaign_id, first_at FROM m2a_campaign_key WHERE campaign_key = $1`, k).Scan(&cid, &first)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return Campaign{}, false, err
		}
		if first >= cutoff && (openID == "" || first < openFirst) {
			openID, openFirst = cid, first
		}
	}
	opened := openID == ""
	if opened {
		openID, openFirst = newCampaignID(), now.UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO m2a_campaign (id, first_at, record_key) VALUES ($1, $2, $3)`,
			openID, openFirst, recordKey); err != nil {
			return Campaign{}, false, err
		}
	}
	// Each key now names this campaign, unless it names another one that
	// is still open: a race lost (when opening), or two campaigns met.
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO m2a_campaign_key (campaign_key, campaign_id, first_at) VALUES ($1, $2, $3)
			ON CONFLICT (campaign_key) DO UPDATE SET campaign_id = excluded.campaign_id, first_at = excluded.first_at
			WHERE m2a_campaign_key.first_at < $4`, k, openID, openFirst, cutoff); err != nil {
			return Campaign{}, false, err
		}
		var holder string
		if err := tx.QueryRowContext(ctx, `SELECT campaign_id FROM m2a_campaign_key WHERE campaign_key = $1`, k).Scan(&holder); err != nil {
			return Campaign{}, false, err
		}
		if holder != openID && opened {
			return Campaign{}, false, errCampaignRace
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO m2a_campaign_report (mailbox, message_id, campaign_id, reporter, reported_at) VALUES ($1, $2, $3, $4, $5)`,
		r.Mailbox, r.MessageID, openID, r.Reporter, r.At.UnixMilli()); err != nil {
		return Campaign{}, false, err
	}
	c, err := campaignTx(ctx, tx, openID)
	return c, opened, err
}

func newCampaignID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// querier is a database or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func campaignTx(ctx context.Context, q querier, id string) (Campaign, error) {
	var c Campaign
	var first int64
	var record sql.NullInt64
	var state string
	err := q.QueryRowContext(ctx, `SELECT id, first_at, record_key, record_id, applied, state FROM m2a_campaign WHERE id = $1`, id).
		Scan(&c.ID, &first, &c.RecordKey, &record, &c.Applied, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return Campaign{}, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Campaign{}, fmt.Errorf("read campaign %s: %w", id, err)
	}
	c.FirstAt, c.RecordID = time.UnixMilli(first).UTC(), record.Int64
	var st campaignState
	if err := json.Unmarshal([]byte(state), &st); err != nil {
		return Campaign{}, fmt.Errorf("read campaign %s: state: %w", id, err)
	}
	c.Append, c.Attachments, c.Done = st.Append, st.Attachments, st.Done
	return c, nil
}

// CampaignReports returns the campaign and its reports in the order they
// came.
func (s *Store) CampaignReports(ctx context.Context, id string) (Campaign, []CampaignReport, error) {
	c, err := campaignTx(ctx, s.db, id)
	if err != nil {
		return Campaign{}, nil, err
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT mailbox, message_id, reporter, reported_at FROM m2a_campaign_report
		WHERE campaign_id = $1 ORDER BY reported_at, mailbox, message_id`, id)
	if err != nil {
		return Campaign{}, nil, fmt.Errorf("read the reports of campaign %s: %w", id, err)
	}
	defer func() { _ = rows.Close() }()
	var out []CampaignReport
	for rows.Next() {
		var r CampaignReport
		var at int64
		if err := rows.Scan(&r.Mailbox, &r.MessageID, &r.Reporter, &at); err != nil {
			return Campaign{}, nil, fmt.Errorf("read the reports of campaign %s: %w", id, err)
		}
		r.At = time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return Campaign{}, nil, fmt.Errorf("read the reports of campaign %s: %w", id, err)
	}
	return c, out, nil
}

// HoldCampaign makes holder the campaign's only writer to Archer until
// now+ttl, and reports whether it is. It succeeds when nobody holds the
// campaign, when holder already does (a job running again), or when the
// other holder's time has passed (its process died).
func (s *Store) HoldCampaign(ctx context.Context, id, holder string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx, `
		UPDATE m2a_campaign SET holder = $1, held_until = $2
		WHERE id = $3 AND (holder = '' OR holder = $1 OR held_until < $4)`,
		holder, now.Add(ttl).UnixMilli(), id, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("hold campaign %s for %s: %w", id, holder, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("hold campaign %s for %s: %w", id, holder, err)
	}
	return n == 1, nil
}

// ReleaseCampaign lets the next writer take the campaign, if holder holds
// it.
func (s *Store) ReleaseCampaign(ctx context.Context, id, holder string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE m2a_campaign SET holder = '', held_until = 0 WHERE id = $1 AND holder = $2`,
		id, holder); err != nil {
		return fmt.Errorf("release campaign %s for %s: %w", id, holder, err)
	}
	return nil
}

// SaveCampaignRecord stores what the campaign's record shows after a
// create or an update: its id, the number of reports and the text and
// attachments of the fields that grow. Only the holder writes it.
func (s *Store) SaveCampaignRecord(ctx context.Context, c Campaign, holder string) error {
	state, err := json.Marshal(campaignState{Append: c.Append, Attachments: c.Attachments, Done: c.Done})
	if err != nil {
		return fmt.Errorf("save campaign %s: %w", c.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `
		UPDATE m2a_campaign SET record_id = $1, applied = $2, state = $3 WHERE id = $4 AND holder = $5`,
		c.RecordID, c.Applied, string(state), c.ID, holder)
	if err != nil {
		return fmt.Errorf("save campaign %s: %w", c.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("save campaign %s: %s no longer holds it", c.ID, holder)
	}
	return nil
}
