package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
)

// Copying the state of one installation into a new database: the move from
// the single-container SQLite store to PostgreSQL and its replicas. The
// source is read under the lock a serving process takes, the target is
// written in one transaction, so the copy is all or nothing and no service
// runs on the source while it is made.

// OpenCopySource opens the existing SQLite database rawURL as the source of
// a copy. It takes the lock OpenService takes and holds it until Close: it
// fails with ErrLocked while a service runs on the database, and no service
// can start on it until the copy is done. The database must exist (a
// missing file is refused rather than created empty) and pass SQLite's
// quick integrity check. Pending migrations are applied, as the service of
// this version would at its start.
func OpenCopySource(ctx context.Context, rawURL string, log zerolog.Logger) (*Store, error) {
	if IsPostgres(rawURL) {
		return nil, errors.New("copy source: only a SQLite database (sqlite://PATH) can be copied")
	}
	path, err := sqlitePath(rawURL)
	if err != nil {
		return nil, fmt.Errorf("copy source: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("copy source %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("copy source %s: not a database file", path)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	s, err := openSQLite(ctx, rawURL, log)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	s.unlock = unlock
	if err := s.quickCheck(ctx, path); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// TableCount is how many rows one of the application's tables holds or had
// copied.
type TableCount struct {
	Table string
	Rows  int64
}

// Requeue turns a job of the source that still has work to do into the job
// to insert into the target: its arguments, decoded into their job type so
// that the type's unique options apply, and its insert options. An error
// stops the copy, which then changes nothing.
type Requeue func(job *rivertype.JobRow) (river.InsertManyParams, error)

// CopyResult is what CopyTo copied.
type CopyResult struct {
	// Tables are the rows copied per table, in copy order.
	Tables []TableCount
	// Requeued counts the jobs re-queued in the target, by kind.
	Requeued map[string]int
	// Duplicates counts the jobs the target's queue did not insert because
	// an equal unique job was already queued there.
	Duplicates int
	// Ended counts the source's ended jobs, by state (completed,
	// cancelled, discarded): they are not copied.
	Ended map[string]int
}

// NotEmptyError is CopyTo's refusal of a target that already holds state.
type NotEmptyError struct {
	// Tables are the non-empty tables with their row counts.
	Tables []TableCount
}

// Error names the tables that hold rows and what to do.
func (e *NotEmptyError) Error() string {
	parts := make([]string, 0, len(e.Tables))
	for _, t := range e.Tables {
		parts = append(parts, fmt.Sprintf("%d row(s) in %s", t.Rows, t.Table))
	}
	return "the target database already holds state (" + strings.Join(parts, ", ") +
		"): a copy goes only into a database no service has used; create a new one"
}

// copyTable describes one application table that a copy carries.
type copyTable struct {
	name    string
	columns []copyColumn
	orderBy string
}

// copyColumn is one column of a copied table and how its value is read.
type copyColumn struct {
	name string
	kind columnKind
}

type columnKind int

const (
	textColumn columnKind = iota
	timeColumn
	nullIntColumn
	intColumn
)

// stateTables are the tables whose rows decide whether a target holds state:
// a service that ran on it has stored at least one of them.
var stateTables = []string{"m2a_subscription", "m2a_message", "m2a_delta_link", "m2a_campaign"}

// copiedTables are the application's tables a copy carries, in order: the
// subscriptions with their clientState secrets (Graph's subscriptions stay
// valid, with no new handshake), the processed messages and intents, the
// delta links, and the write-once settings (first-seen times). Leases, the
// heartbeat and the migration rows belong to the database itself.
var copiedTables = []copyTable{
	{name: "m2a_subscription", orderBy: "id", columns: []copyColumn{
		{"id", textColumn}, {"mailbox", textColumn}, {"folder", textColumn}, {"client_state", textColumn},
		{"expires_at", timeColumn}, {"created_at", timeColumn}, {"updated_at", timeColumn}}},
	{name: "m2a_message", orderBy: "mailbox, message_id", columns: []copyColumn{
		{"mailbox", textColumn}, {"message_id", textColumn}, {"internet_message_id", textColumn},
		{"record_key", textColumn}, {"record_id", nullIntColumn}, {"skipped_by", textColumn},
		{"reporter", textColumn}, {"subject", textColumn}, {"received_at", intColumn}, {"rule", textColumn},
		{"created_at", timeColumn}, {"updated_at", timeColumn}}},
	{name: "m2a_delta_link", orderBy: "mailbox, folder", columns: []copyColumn{
		{"mailbox", textColumn}, {"folder", textColumn}, {"link", textColumn}, {"updated_at", timeColumn}}},
	{name: "m2a_setting", orderBy: "name", columns: []copyColumn{
		{"name", textColumn}, {"value", textColumn}, {"created_at", timeColumn}}},
	// Campaigns: grouped reports keep their records. Their writers' holds
	// belong to the source's processes and are not carried.
	{name: "m2a_campaign", orderBy: "id", columns: []copyColumn{
		{"id", textColumn}, {"first_at", intColumn}, {"record_key", textColumn}, {"record_id", nullIntColumn},
		{"applied", intColumn}, {"state", textColumn}}},
	{name: "m2a_campaign_key", orderBy: "campaign_key", columns: []copyColumn{
		{"campaign_key", textColumn}, {"campaign_id", textColumn}, {"first_at", intColumn}}},
	{name: "m2a_campaign_report", orderBy: "mailbox, message_id", columns: []copyColumn{
		{"mailbox", textColumn}, {"message_id", textColumn}, {"campaign_id", textColumn},
		{"reporter", textColumn}, {"reported_at", intColumn}}},
}

// unfinishedStates are the states of a job that still has work to do.
var unfinishedStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled,
	rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStatePending}

// requeuePage is how many source jobs are read and inserted at a time.
const requeuePage = 500

// CopyTo copies the state of s, a SQLite store opened with OpenCopySource,
// into dst, a PostgreSQL store whose migrations Open has run, in one
// transaction on dst: the rows of m2a_subscription, m2a_message,
// m2a_delta_link and m2a_setting, and every job of s that still has work to
// do (available, scheduled, retryable, running, pending), re-queued through
// requeue with River's InsertManyTx. Ended jobs are not copied. A target
// that already holds a subscription, a message or a delta link is refused
// with a *NotEmptyError; those tables stay locked against writers from that
// check to the commit. On any error nothing is written to dst. s is only
// read.
func (s *Store) CopyTo(ctx context.Context, dst *Store, requeue Requeue) (CopyResult, error) {
	if s.sqlite == nil {
		return CopyResult{}, errors.New("copy: the source must be a SQLite database")
	}
	if s.unlock == nil {
		return CopyResult{}, errors.New("copy: the source must be opened with OpenCopySource, which keeps services off it")
	}
	if dst == nil || dst.pg == nil {
		return CopyResult{}, errors.New("copy: the target must be a PostgreSQL database")
	}
	if requeue == nil {
		return CopyResult{}, errors.New("copy: no way to re-queue jobs given")
	}
	res := CopyResult{Requeued: map[string]int{}, Ended: map[string]int{}}
	counts, err := s.JobCounts(ctx)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy: %w", err)
	}
	for _, st := range []rivertype.JobState{rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded} {
		if n := counts[string(st)]; n > 0 {
			res.Ended[string(st)] = n
		}
	}

	tx, err := dst.pg.pool.Begin(ctx)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy: begin a transaction on the target: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := checkEmpty(ctx, tx); err != nil {
		return CopyResult{}, err
	}
	for _, t := range copiedTables {
		n, err := s.copyTableTo(ctx, tx, t)
		if err != nil {
			return CopyResult{}, fmt.Errorf("copy %s: %w", t.name, err)
		}
		res.Tables = append(res.Tables, TableCount{Table: t.name, Rows: n})
	}
	if err := s.requeueJobs(ctx, tx, dst, requeue, &res); err != nil {
		return CopyResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return CopyResult{}, fmt.Errorf("copy: commit on the target: %w", err)
	}
	return res, nil
}

// checkEmpty locks the target's state tables against writers until the
// transaction ends, then refuses them when they hold a row.
func checkEmpty(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(stateTables, ", ")+` IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("copy: lock the target's tables: %w", err)
	}
	var full []TableCount
	for _, name := range stateTables {
		var n int64
		// The names are constants of this file.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n); err != nil {
			return fmt.Errorf("copy: count the target's %s: %w", name, err)
		}
		if n > 0 {
			full = append(full, TableCount{Table: name, Rows: n})
		}
	}
	if len(full) > 0 {
		return &NotEmptyError{Tables: full}
	}
	return nil
}

// copyTableTo streams the rows of one table from s into the target
// transaction and returns how many it copied. Settings a target already
// has (written by a service that started on it before any subscription
// was stored) are replaced by the source's, which are older.
func (s *Store) copyTableTo(ctx context.Context, tx pgx.Tx, t copyTable) (int64, error) {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+t.name+` ORDER BY `+t.orderBy)
	if err != nil {
		return 0, fmt.Errorf("read the source: %w", err)
	}
	defer func() { _ = rows.Close() }()
	next := func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		return scanCopyRow(rows, t.columns)
	}
	if t.name == "m2a_setting" {
		return upsertRows(ctx, tx, t.name, names, next)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, names, pgx.CopyFromFunc(next))
	if err != nil {
		return n, fmt.Errorf("write the target: %w", err)
	}
	return n, nil
}

// scanCopyRow reads one source row as the values to write: times in UTC
// (the columns are TIMESTAMP without zone, written in UTC by the service),
// a NULL integer as nil.
func scanCopyRow(rows *sql.Rows, columns []copyColumn) ([]any, error) {
	dest := make([]any, len(columns))
	for i, c := range columns {
		switch c.kind {
		case timeColumn:
			dest[i] = new(time.Time)
		case nullIntColumn:
			dest[i] = new(sql.NullInt64)
		case intColumn:
			dest[i] = new(int64)
		default:
			dest[i] = new(string)
		}
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("read the source: %w", err)
	}
	out := make([]any, len(columns))
	for i, d := range dest {
		switch v := d.(type) {
		case *time.Time:
			out[i] = v.UTC()
		case *sql.NullInt64:
			if v.Valid {
				out[i] = v.Int64
			}
		case *int64:
			out[i] = *v
		case *string:
			out[i] = *v
		}
	}
	return out, nil
}

// upsertRows writes each row next returns into table, replacing a row with
// the same first column (its primary key).
func upsertRows(ctx context.Context, tx pgx.Tx, table string, names []string, next func() ([]any, error)) (int64, error) {
	marks := make([]string, len(names))
	sets := make([]string, 0, len(names)-1)
	for i, n := range names {
		marks[i] = fmt.Sprintf("$%d", i+1)
		if i > 0 {
			sets = append(sets, n+" = excluded."+n)
		}
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `) VALUES (` + strings.Join(marks, ", ") +
		`) ON CONFLICT (` + names[0] + `) DO UPDATE SET ` + strings.Join(sets, ", ")
	var n int64
	for {
		row, err := next()
		if err != nil {
			return n, err
		}
		if row == nil {
			return n, nil
		}
		if _, err := tx.Exec(ctx, q, row...); err != nil {
			return n, fmt.Errorf("write the target: %w", err)
		}
		n++
	}
}

// requeueJobs reads the source's unfinished jobs page by page and inserts
// what requeue makes of them into the target transaction.
func (s *Store) requeueJobs(ctx context.Context, tx pgx.Tx, dst *Store, requeue Requeue, res *CopyResult) error {
	source, err := river.NewClient(s.sqlite, &river.Config{})
	if err != nil {
		return fmt.Errorf("copy jobs: source queue: %w", err)
	}
	target, err := river.NewClient(dst.pg.driver, &river.Config{})
	if err != nil {
		return fmt.Errorf("copy jobs: target queue: %w", err)
	}
	params := river.NewJobListParams().States(unfinishedStates...).First(requeuePage)
	for {
		page, err := source.JobList(ctx, params)
		if err != nil {
			return fmt.Errorf("copy jobs: list the source's jobs: %w", err)
		}
		batch := make([]river.InsertManyParams, 0, len(page.Jobs))
		for _, j := range page.Jobs {
			p, err := requeue(j)
			if err != nil {
				return fmt.Errorf("copy job %d (%s, %s): %w", j.ID, j.Kind, j.State, err)
			}
			batch = append(batch, p)
		}
		if len(batch) > 0 {
			inserted, err := target.InsertManyTx(ctx, tx, batch)
			if err != nil {
				return fmt.Errorf("copy jobs: queue them in the target: %w", err)
			}
			for _, r := range inserted {
				if r.UniqueSkippedAsDuplicate {
					res.Duplicates++
				} else {
					res.Requeued[r.Job.Kind]++
				}
			}
		}
		if len(page.Jobs) < requeuePage || page.LastCursor == nil {
			return nil
		}
		params = params.After(page.LastCursor)
	}
}

// RedactURL returns a database URL without its password, for what an
// operator command prints.
func RedactURL(rawURL string) string {
	if !IsPostgres(rawURL) {
		return rawURL
	}
	return redactURL(rawURL)
}
