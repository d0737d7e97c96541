package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// testRequeue decodes a job's arguments into its type, keeps a future
// schedule, and refuses kinds it does not know.
func testRequeue(j *rivertype.JobRow) (river.InsertManyParams, error) {
	var args river.JobArgs
	var err error
	switch j.Kind {
	case jobs.ProcessMessage{}.Kind():
		var a jobs.ProcessMessage
		err = json.Unmarshal(j.EncodedArgs, &a)
		args = a
	case jobs.WriteBack{}.Kind():
		var a jobs.WriteBack
		err = json.Unmarshal(j.EncodedArgs, &a)
		args = a
	case jobs.Lifecycle{}.Kind():
		var a jobs.Lifecycle
		err = json.Unmarshal(j.EncodedArgs, &a)
		args = a
	default:
		return river.InsertManyParams{}, fmt.Errorf("unknown kind %q", j.Kind)
	}
	if err != nil {
		return river.InsertManyParams{}, err
	}
	opts := &river.InsertOpts{MaxAttempts: j.MaxAttempts, Metadata: j.Metadata}
	if j.ScheduledAt.After(time.Now()) {
		opts.ScheduledAt = j.ScheduledAt
	}
	return river.InsertManyParams{Args: args, InsertOpts: opts}, nil
}

// laterKind is a job kind this version does not know, as a later version
// could have queued.
type laterKind struct {
	Value string `json:"value"`
}

func (laterKind) Kind() string { return "later_kind" }

// sourceJob is a job put into the source in a given state.
type sourceJob struct {
	args  river.JobArgs
	state string
	// scheduled moves the job's scheduled time by this much from now.
	scheduled time.Duration
}

// fillSource writes an installation's state into a new SQLite database:
// every table a copy carries, what it leaves behind, and jobs in every
// state. It returns the database's URL, closed.
func fillSource(t *testing.T, jobList []sourceJob) string {
	t.Helper()
	ctx := context.Background()
	rawURL := "sqlite://" + filepath.Join(t.TempDir(), "state.db")
	s, err := Open(ctx, rawURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SaveSubscription(ctx, subscriptions.Record{ID: "sub-1", Mailbox: "phish@contoso.com", Folder: "Inbox",
		ClientState: "s3cret-client-state", ExpiresAt: time.Now().Add(70 * time.Hour)}))
	_, err = s.SaveIntent(ctx, Message{Mailbox: "phish@contoso.com", MessageID: "AAMk-done", InternetMessageID: "<a@x>", RecordKey: "key-done"})
	must(err)
	_, err = s.DB().ExecContext(ctx, `UPDATE m2a_message SET record_id = 239643 WHERE message_id = 'AAMk-done'`)
	must(err)
	_, err = s.SaveIntent(ctx, Message{Mailbox: "phish@contoso.com", MessageID: "AAMk-intent", RecordKey: "key-intent"})
	must(err)
	must(s.SaveDeltaLink(ctx, "phish@contoso.com", "Inbox", "https://graph.example/delta?token=abc"))
	_, err = s.SetOnce(ctx, "first_seen:phish@contoso.com", "2026-03-01T10:00:00Z")
	must(err)
	_, err = s.TryAcquireLease(ctx, "subscriptions", "host-1", time.Now(), time.Minute)
	must(err)
	// A campaign of two reports, whose record exists, held by a job of the
	// source's process (the hold is not carried).
	c, _, err := s.JoinCampaign(ctx, []string{"mid:<p@evil.example>", "fp:1"}, 72*time.Hour, time.Now(),
		CampaignReport{Mailbox: "phish@contoso.com", MessageID: "AAMk-done", Reporter: "alice@contoso.com", At: time.Now()}, "key-done")
	must(err)
	_, _, err = s.JoinCampaign(ctx, []string{"fp:1"}, 72*time.Hour, time.Now(),
		CampaignReport{Mailbox: "phish@contoso.com", MessageID: "AAMk-intent", Reporter: "bob@contoso.com", At: time.Now()}, "key-intent")
	must(err)
	ok, err := s.HoldCampaign(ctx, c.ID, "job 7", time.Now(), time.Hour)
	must(err)
	if !ok {
		t.Fatal("the campaign could not be held")
	}
	c.RecordID, c.Applied, c.Append, c.Done = 239643, 2, map[int64]string{24305: "hxxps://evil[.]example/a"}, []string{"phish@contoso.com/AAMk-done"}
	must(s.SaveCampaignRecord(ctx, c, "job 7"))
	must(s.ProbeWrite(ctx))
	q, err := s.NewQueue(&river.Config{})
	must(err)
	for _, j := range jobList {
		r, err := q.Insert(ctx, j.args, nil)
		must(err)
		if j.state != "available" || j.scheduled != 0 {
			var finalized any
			if j.state == "completed" || j.state == "cancelled" || j.state == "discarded" {
				finalized = time.Now().UTC()
			}
			_, err = s.DB().ExecContext(ctx, `UPDATE river_job SET state = $1, scheduled_at = $2, finalized_at = $3 WHERE id = $4`,
				j.state, time.Now().Add(j.scheduled).UTC(), finalized, r.Job.ID)
			must(err)
		}
	}
	return rawURL
}

// dump reads one copied table as lines, times to the microsecond in UTC.
func dump(t *testing.T, s *Store, table copyTable) []string {
	t.Helper()
	names := make([]string, len(table.columns))
	for i, c := range table.columns {
		names[i] = c.name
	}
	rows, err := s.DB().Query(`SELECT ` + strings.Join(names, ", ") + ` FROM ` + table.name + ` ORDER BY ` + table.orderBy)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		vals, err := scanCopyRow(rows, table.columns)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if tv, ok := v.(time.Time); ok {
				vals[i] = tv.Truncate(time.Microsecond).Format(time.RFC3339Nano)
			}
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoreCopyCarriesTheStateAndRequeuesPendingJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dstURL := pgdb.Database(t)
	srcURL := fillSource(t, []sourceJob{
		{args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-new", Source: "notification"}, state: "available"},
		{args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-intent", Source: "resync"}, state: "running", scheduled: -time.Minute},
		{args: jobs.WriteBack{Mailbox: "phish@contoso.com", MessageID: "AAMk-done", RecordID: 239643}, state: "retryable", scheduled: time.Hour},
		{args: jobs.Lifecycle{SubscriptionID: "sub-1", Event: "missed", Mailbox: "phish@contoso.com"}, state: "scheduled", scheduled: -time.Second},
		{args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-old"}, state: "completed"},
		{args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-bad"}, state: "discarded"},
	})

	src, err := OpenCopySource(ctx, srcURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	// No service starts on the source while the copy holds it.
	if _, err := OpenService(ctx, srcURL, zerolog.Nop()); !errors.Is(err, ErrLocked) {
		t.Fatalf("a service started on the source during the copy: %v", err)
	}
	dst := openURL(t, dstURL)
	res, err := src.CopyTo(ctx, dst, testRequeue)
	if err != nil {
		t.Fatal(err)
	}

	want := []TableCount{{"m2a_subscription", 1}, {"m2a_message", 2}, {"m2a_delta_link", 1}, {"m2a_setting", 1},
		{"m2a_campaign", 1}, {"m2a_campaign_key", 2}, {"m2a_campaign_report", 2}}
	if fmt.Sprint(res.Tables) != fmt.Sprint(want) {
		t.Errorf("copied %v, want %v", res.Tables, want)
	}
	if fmt.Sprint(res.Requeued) != "map[graph_lifecycle:1 process_message:2 write_back:1]" || res.Duplicates != 0 {
		t.Errorf("re-queued %v (%d duplicates)", res.Requeued, res.Duplicates)
	}
	if fmt.Sprint(res.Ended) != "map[completed:1 discarded:1]" {
		t.Errorf("ended jobs %v", res.Ended)
	}
	for _, table := range copiedTables {
		got, exp := dump(t, dst, table), dump(t, src, table)
		if strings.Join(got, "\n") != strings.Join(exp, "\n") {
			t.Errorf("%s differs:\nsource %q\ntarget %q", table.name, exp, got)
		}
	}
	// The secret Graph echoes reads back through the store's own API.
	sub, err := dst.Subscription(ctx, "sub-1")
	if err != nil || sub.ClientState != "s3cret-client-state" {
		t.Errorf("subscription in the target: %+v %v", sub, err)
	}
	m, err := dst.Message(ctx, "phish@contoso.com", "AAMk-intent")
	if err != nil || m.RecordID != 0 || m.RecordKey != "key-intent" {
		t.Errorf("intent in the target: %+v %v", m, err)
	}
	for _, table := range []string{"m2a_lease", "m2a_heartbeat"} {
		if n := count(t, dst, table); n != 0 {
			t.Errorf("%s: %d rows copied", table, n)
		}
	}

	q, err := dst.NewQueue(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := q.JobList(ctx, river.NewJobListParams().First(100))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range list.Jobs {
		var a struct {
			MessageID string `json:"message_id"`
			Event     string `json:"event"`
		}
		_ = json.Unmarshal(j.EncodedArgs, &a)
		got[j.Kind+" "+a.MessageID+a.Event] = string(j.State)
		if j.Attempt != 0 {
			t.Errorf("job %d starts at attempt %d", j.ID, j.Attempt)
		}
	}
	wantJobs := map[string]string{
		"process_message AAMk-new":    "available",
		"process_message AAMk-intent": "available", // was running: its process is gone
		"write_back AAMk-done":        "scheduled", // keeps its retry time
		"graph_lifecycle missed":      "available",
	}
	if fmt.Sprint(got) != fmt.Sprint(wantJobs) {
		t.Errorf("target jobs %v, want %v", got, wantJobs)
	}
	// The job types' unique options apply to what was re-queued.
	dup, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-new", Source: "notification"}, nil)
	if err != nil || !dup.UniqueSkippedAsDuplicate {
		t.Errorf("a second job for a re-queued email was not a duplicate: %+v %v", dup, err)
	}

	// The source is only read.
	counts, err := src.JobCounts(ctx)
	if err != nil || counts["running"] != 1 || counts["completed"] != 1 || count(t, src, "m2a_lease") != 1 {
		t.Errorf("the source changed: %v %v", counts, err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenService(ctx, srcURL, zerolog.Nop())
	if err != nil {
		t.Fatalf("the source stays locked after the copy: %v", err)
	}
	_ = again.Close()
}

func TestStoreCopyRefusesASourceInUseOrMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srcURL := fillSource(t, nil)

	svc, err := OpenService(ctx, srcURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCopySource(ctx, srcURL, zerolog.Nop()); !errors.Is(err, ErrLocked) ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("copy beside a running service: %v", err)
	}
	_ = svc.Close()

	missing := filepath.Join(t.TempDir(), "none.db")
	if _, err := OpenCopySource(ctx, "sqlite://"+missing, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing source: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a missing source was created: %v", err)
	}
	if _, err := OpenCopySource(ctx, "postgres://u@127.0.0.1/db", zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "only a SQLite") {
		t.Errorf("a PostgreSQL source: %v", err)
	}

	// A source opened without the lock, or a SQLite target, is refused
	// before anything is read.
	plain := openURL(t, srcURL)
	other := open(t, filepath.Join(t.TempDir(), "other.db"))
	if _, err := plain.CopyTo(ctx, other, testRequeue); err == nil || !strings.Contains(err.Error(), "OpenCopySource") {
		t.Errorf("a source without the lock: %v", err)
	}
	_ = plain.Close()
	src, err := OpenCopySource(ctx, srcURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	if _, err := src.CopyTo(ctx, other, testRequeue); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("a SQLite target: %v", err)
	}
	if n := count(t, other, "m2a_subscription"); n != 0 {
		t.Errorf("%d subscriptions written to a refused target", n)
	}
}

func TestStoreCopyRefusesATargetWithStateAndChangesNothingOnFailure(t *testing.T) {
	t.Parallel()
	if !pgdb.Available() {
		t.Skipf("no PostgreSQL server: set %s to run this test", pgdb.EnvURL)
	}
	ctx := context.Background()
	srcURL := fillSource(t, []sourceJob{
		{args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-new"}, state: "available"},
		{args: laterKind{Value: "from a later version"}, state: "retryable"},
	})
	src, err := OpenCopySource(ctx, srcURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()

	tests := []struct {
		name string
		// prepare writes what the target holds before the copy.
		prepare func(t *testing.T, dst *Store)
		requeue Requeue
		want    string
	}{
		{"delta link and message", func(t *testing.T, dst *Store) {
			if err := dst.SaveDeltaLink(ctx, "mb", "Inbox", "link"); err != nil {
				t.Fatal(err)
			}
			if _, err := dst.SaveIntent(ctx, Message{Mailbox: "mb", MessageID: "m", RecordKey: "k"}); err != nil {
				t.Fatal(err)
			}
		}, testRequeue, "1 row(s) in m2a_message, 1 row(s) in m2a_delta_link"},
		{"subscription", func(t *testing.T, dst *Store) {
			if err := dst.SaveSubscription(ctx, subscriptions.Record{ID: "s", Mailbox: "mb", Folder: "Inbox", ClientState: "c", ExpiresAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}, testRequeue, "1 row(s) in m2a_subscription"},
		// The second job is of a kind testRequeue does not know: the copy
		// fails after the tables, and the transaction leaves nothing.
		{"a job that cannot be re-queued", func(*testing.T, *Store) {}, testRequeue, `unknown kind`},
		{"a failing requeue", func(*testing.T, *Store) {}, func(*rivertype.JobRow) (river.InsertManyParams, error) {
			return river.InsertManyParams{}, errors.New("refused")
		}, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := openURL(t, pgdb.Database(t))
			tt.prepare(t, dst)
			before := map[string]int{}
			for _, table := range []string{"m2a_subscription", "m2a_message", "m2a_delta_link", "m2a_setting", "river_job"} {
				before[table] = count(t, dst, table)
			}
			_, err := src.CopyTo(ctx, dst, tt.requeue)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("copy: %v, want an error with %q", err, tt.want)
			}
			var full *NotEmptyError
			if strings.Contains(tt.want, "row(s)") && !errors.As(err, &full) {
				t.Errorf("not a *NotEmptyError: %T", err)
			}
			for table, n := range before {
				if got := count(t, dst, table); got != n {
					t.Errorf("%s: %d rows after the refused copy, %d before", table, got, n)
				}
			}
		})
	}
}

// BenchmarkStoreCopy copies an installation of 20,000 processed messages
// and 1,000 pending jobs into a new PostgreSQL database.
func BenchmarkStoreCopy(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	rawURL := "sqlite://" + filepath.Join(dir, "state.db")
	s, err := Open(ctx, rawURL, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 20000 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO m2a_message (mailbox, message_id, record_key, record_id, created_at, updated_at)
			VALUES ('phish@contoso.com', $1, $2, $3, $4, $4)`, fmt.Sprintf("AAMk-%06d", i), fmt.Sprintf("key-%06d", i), 100000+i, now); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	q, err := s.NewQueue(&river.Config{})
	if err != nil {
		b.Fatal(err)
	}
	params := make([]river.InsertManyParams, 1000)
	for i := range params {
		params[i] = river.InsertManyParams{Args: jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: fmt.Sprintf("AAMk-new-%04d", i)}}
	}
	if _, err := q.InsertMany(ctx, params); err != nil {
		b.Fatal(err)
	}
	_ = s.Close()
	src, err := OpenCopySource(ctx, rawURL, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst, err := Open(ctx, pgdb.Database(b), zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := src.CopyTo(ctx, dst, testRequeue)
		if err != nil || res.Requeued["process_message"] != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
		b.StopTimer()
		_ = dst.Close()
		b.StartTimer()
	}
}
