package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

// StoreCopyUsage is the usage line of the store copy command.
const StoreCopyUsage = "usage: mail2archer store copy --from sqlite://PATH --to postgres://USER:PASSWORD@HOST:PORT/DATABASE"

// StoreCopy copies the state of the installation whose SQLite database is
// from into the new PostgreSQL database to, and writes to w what it copied
// and the next step: the move from the single container to replicas. It
// refuses while a service runs on from (and keeps one from starting until
// it is done), when to already holds state, when both name the same
// database, and in any other direction than SQLite to PostgreSQL. The
// subscriptions with their clientState secrets, the processed messages and
// intents, the delta links and the settings are copied, and the jobs that
// still have work to do are queued again in to, all in one transaction on
// to; from is only read, and stays as a backup.
func StoreCopy(ctx context.Context, from, to string, log zerolog.Logger, w io.Writer) error {
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if from == "" || to == "" {
		return errors.New(StoreCopyUsage)
	}
	if sameDatabase(from, to) {
		return errors.New("--from and --to name the same database: copy into a new PostgreSQL database")
	}
	if !isSQLiteURL(from) {
		return fmt.Errorf("--from must be the SQLite database of the installation (sqlite://PATH), not %s: "+
			"store copy moves an installation from SQLite to PostgreSQL, and no other direction", store.RedactURL(from))
	}
	if !store.IsPostgres(to) {
		return fmt.Errorf("--to must be a PostgreSQL database (postgres://…), not %s: "+
			"store copy moves an installation from SQLite to PostgreSQL, and no other direction", store.RedactURL(to))
	}
	src, err := store.OpenCopySource(ctx, from, log)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("store copy: %w", err)
	}
	if err != nil {
		return fmt.Errorf("open the source database: %w", err)
	}
	defer func() { _ = src.Close() }()
	dst, err := store.Open(ctx, to, log)
	if err != nil {
		return fmt.Errorf("open the target database: %w", err)
	}
	defer func() { _ = dst.Close() }()
	now := time.Now()
	res, err := src.CopyTo(ctx, dst, func(j *rivertype.JobRow) (river.InsertManyParams, error) { return requeueJob(j, now) })
	if err != nil {
		return err
	}
	return writeCopyReport(w, from, to, res)
}

// isSQLiteURL reports whether rawURL names a SQLite database.
func isSQLiteURL(rawURL string) bool {
	scheme, _, ok := strings.Cut(rawURL, "://")
	return ok && strings.EqualFold(scheme, "sqlite")
}

// sameDatabase reports whether two database URLs name one database: the
// same string, or the same SQLite file spelled differently.
func sameDatabase(a, b string) bool {
	if a == b {
		return true
	}
	if isSQLiteURL(a) && isSQLiteURL(b) {
		_, pa, _ := strings.Cut(a, "://")
		_, pb, _ := strings.Cut(b, "://")
		return filepath.Clean(pa) == filepath.Clean(pb)
	}
	return false
}

// requeueJob turns a source job that still has work to do into the job to
// queue in the target. Its arguments are decoded into their type in
// internal/jobs, so that the type's unique options apply, strictly: a kind
// or a field this version does not know stops the copy rather than lose
// part of a job. The job keeps its queue, priority, tags, metadata (what it
// waits for, how often it snoozed) and limit of attempts, and its retry or
// schedule time when that is still ahead of now; a job that was running
// (its process is gone) or was due runs at once. A pending job stays
// pending. Its attempts start again from zero.
func requeueJob(j *rivertype.JobRow, now time.Time) (river.InsertManyParams, error) {
	args, err := decodeArgs(j.Kind, j.EncodedArgs)
	if err != nil {
		return river.InsertManyParams{}, err
	}
	opts := &river.InsertOpts{
		MaxAttempts: j.MaxAttempts,
		Priority:    j.Priority,
		Queue:       j.Queue,
		Tags:        j.Tags,
		Metadata:    j.Metadata,
		Pending:     j.State == rivertype.JobStatePending,
	}
	if (j.State == rivertype.JobStateScheduled || j.State == rivertype.JobStateRetryable) && j.ScheduledAt.After(now) {
		opts.ScheduledAt = j.ScheduledAt
	}
	return river.InsertManyParams{Args: args, InsertOpts: opts}, nil
}

// decodeArgs decodes a job's arguments into the type of its kind and checks
// the fields its worker needs.
func decodeArgs(kind string, raw []byte) (river.JobArgs, error) {
	switch kind {
	case jobs.ProcessMessage{}.Kind():
		var a jobs.ProcessMessage
		if err := strictJSON(raw, &a); err != nil {
			return nil, err
		}
		if a.Mailbox == "" || a.MessageID == "" {
			return nil, errors.New("its arguments lack the mailbox or the message id")
		}
		return a, nil
	case jobs.WriteBack{}.Kind():
		var a jobs.WriteBack
		if err := strictJSON(raw, &a); err != nil {
			return nil, err
		}
		if a.Mailbox == "" || a.MessageID == "" || a.RecordID <= 0 {
			return nil, errors.New("its arguments lack the mailbox, the message id or the record id")
		}
		return a, nil
	case jobs.Lifecycle{}.Kind():
		var a jobs.Lifecycle
		if err := strictJSON(raw, &a); err != nil {
			return nil, err
		}
		if a.SubscriptionID == "" || a.Event == "" {
			return nil, errors.New("its arguments lack the subscription id or the event")
		}
		return a, nil
	}
	return nil, fmt.Errorf("this version of mail2archer does not know the job kind %q: copy with the version that wrote the source database", printable(kind))
}

// strictJSON decodes one JSON object into v, refusing fields v does not
// have and anything after the object.
func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode its arguments: %w", err)
	}
	if dec.More() {
		return errors.New("decode its arguments: data after the object")
	}
	return nil
}

// writeCopyReport prints what a copy did, the ended jobs it left behind
// and the next step.
func writeCopyReport(w io.Writer, from, to string, res store.CopyResult) error {
	var b strings.Builder
	fmt.Fprintf(&b, "copied %s into %s\n\n", store.RedactURL(from), store.RedactURL(to))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "TABLE\tROWS")
	for _, t := range res.Tables {
		_, _ = fmt.Fprintf(tw, "%s\t%d\n", t.Table, t.Rows)
	}
	_ = tw.Flush()
	b.WriteString("\n")
	var rows int64
	for _, t := range res.Tables {
		rows += t.Rows
	}
	if rows == 0 {
		b.WriteString("the source held no state: check that --from names the installation's database\n")
	}
	total := 0
	for _, n := range res.Requeued {
		total += n
	}
	if total == 0 {
		b.WriteString("jobs re-queued: none (no job had work left)\n")
	} else {
		parts := make([]string, 0, len(res.Requeued))
		for _, kind := range slices.Sorted(maps.Keys(res.Requeued)) {
			parts = append(parts, fmt.Sprintf("%s %d", kind, res.Requeued[kind]))
		}
		fmt.Fprintf(&b, "jobs re-queued: %d (%s)\n", total, strings.Join(parts, ", "))
	}
	if res.Duplicates > 0 {
		fmt.Fprintf(&b, "jobs already queued in the target, not queued twice: %d\n", res.Duplicates)
	}
	if len(res.Ended) > 0 {
		parts := make([]string, 0, len(res.Ended))
		for _, state := range slices.Sorted(maps.Keys(res.Ended)) {
			parts = append(parts, fmt.Sprintf("%d %s", res.Ended[state], state))
		}
		fmt.Fprintf(&b, "ended jobs not copied: %s\n", strings.Join(parts, ", "))
	}
	if n := res.Ended[string(rivertype.JobStateDiscarded)]; n > 0 {
		fmt.Fprintf(&b, "  the %d discarded job(s) waited for an operator: list them on the source with\n"+
			"  M2A_DATABASE_URL=%s mail2archer jobs list --state discarded\n"+
			"  and replay their emails once the replicas run (mail2archer replay --mailbox M --message ID)\n",
			n, store.RedactURL(from))
	}
	fmt.Fprintf(&b, "\nnext: set M2A_DATABASE_URL to the PostgreSQL database (%s) for every replica and start them;\n"+
		"they keep the Graph subscriptions and process nothing twice. Keep %s as a backup, and\n"+
		"do not start a service on it again: it would manage the same subscriptions.\n",
		store.RedactURL(to), strings.TrimPrefix(from, "sqlite://"))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write copy report: %w", err)
	}
	return nil
}
