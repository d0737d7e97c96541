package ops

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestStoreCopyRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := "sqlite://" + filepath.Join(dir, "state.db")
	svc, err := store.OpenService(ctx, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	// Nothing listens there: each case must be refused before the target
	// is contacted.
	pg := "postgres://m2a:hunter2@127.0.0.1:1/m2a"
	tests := []struct {
		name, from, to string
		want           string
	}{
		{"no source", "", pg, "usage:"},
		{"no target", src, " ", "usage:"},
		{"same SQLite URL", src, src, "same database"},
		{"same SQLite file spelled twice", src, "sqlite://" + dir + "/./state.db", "same database"},
		{"same PostgreSQL URL", pg, pg, "same database"},
		{"from PostgreSQL", pg, "postgres://m2a@127.0.0.1:1/other", "--from must be the SQLite database"},
		{"into SQLite", src, "sqlite://" + filepath.Join(dir, "copy.db"), "--to must be a PostgreSQL database"},
		{"a service runs on the source", src, pg, "stop it first"},
		{"a missing source", "sqlite://" + filepath.Join(dir, "none.db"), pg, "none.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := StoreCopy(ctx, tt.from, tt.to, zerolog.Nop(), &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the password is in the error: %v", err)
			}
			if out.Len() != 0 {
				t.Errorf("a refused copy printed %q", out.String())
			}
		})
	}
}

func TestStoreCopyRequeuesEachKindStrictly(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	row := func(kind, args string, state rivertype.JobState, scheduled time.Time) *rivertype.JobRow {
		return &rivertype.JobRow{ID: 7, Kind: kind, EncodedArgs: []byte(args), State: state, ScheduledAt: scheduled,
			MaxAttempts: 9, Priority: 2, Queue: "default", Tags: []string{"t"}, Metadata: []byte(`{"snoozes":3}`), Attempt: 4}
	}
	tests := []struct {
		name string
		row  *rivertype.JobRow
		// want is the decoded arguments, or the error's text.
		want      any
		wantErr   string
		scheduled time.Time
		pending   bool
	}{
		{name: "message", row: row("process_message", `{"mailbox":"mb","message_id":"m","source":"resync"}`, rivertype.JobStateAvailable, now.Add(-time.Hour)),
			want: jobs.ProcessMessage{Mailbox: "mb", MessageID: "m", Source: "resync"}},
		{name: "a replay keeps its value", row: row("process_message", `{"mailbox":"mb","message_id":"m","replay":"2026-03-01T11:00:00Z"}`, rivertype.JobStateRunning, now.Add(-time.Minute)),
			want: jobs.ProcessMessage{Mailbox: "mb", MessageID: "m", Replay: "2026-03-01T11:00:00Z"}},
		{name: "a retry ahead keeps its time", row: row("write_back", `{"mailbox":"mb","message_id":"m","record_id":5,"categories":["a"]}`, rivertype.JobStateRetryable, now.Add(time.Minute)),
			want: jobs.WriteBack{Mailbox: "mb", MessageID: "m", RecordID: 5, Categories: []string{"a"}}, scheduled: now.Add(time.Minute)},
		{name: "a schedule past runs at once", row: row("graph_lifecycle", `{"subscription_id":"s","event":"missed","mailbox":"mb"}`, rivertype.JobStateScheduled, now.Add(-time.Second)),
			want: jobs.Lifecycle{SubscriptionID: "s", Event: "missed", Mailbox: "mb"}},
		{name: "pending stays pending", row: row("process_message", `{"mailbox":"mb","message_id":"m"}`, rivertype.JobStatePending, now),
			want: jobs.ProcessMessage{Mailbox: "mb", MessageID: "m"}, pending: true},
		{name: "unknown kind", row: row("later_kind", `{}`, rivertype.JobStateAvailable, now), wantErr: `does not know the job kind "later_kind"`},
		{name: "unknown field", row: row("process_message", `{"mailbox":"mb","message_id":"m","priority":1}`, rivertype.JobStateAvailable, now), wantErr: "unknown field"},
		{name: "not an object", row: row("write_back", `[1]`, rivertype.JobStateAvailable, now), wantErr: "decode its arguments"},
		{name: "trailing data", row: row("write_back", `{"mailbox":"mb","message_id":"m","record_id":5} {}`, rivertype.JobStateAvailable, now), wantErr: "after the object"},
		{name: "message without id", row: row("process_message", `{"mailbox":"mb"}`, rivertype.JobStateAvailable, now), wantErr: "lack the mailbox or the message id"},
		{name: "write-back without record", row: row("write_back", `{"mailbox":"mb","message_id":"m"}`, rivertype.JobStateAvailable, now), wantErr: "record id"},
		{name: "lifecycle without event", row: row("graph_lifecycle", `{"subscription_id":"s"}`, rivertype.JobStateAvailable, now), wantErr: "event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := requeueJob(tt.row, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(p.Args)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) || p.Args.Kind() != tt.row.Kind {
				t.Errorf("args %s (%T), want %s (%T)", got, p.Args, want, tt.want)
			}
			o := p.InsertOpts
			if !o.ScheduledAt.Equal(tt.scheduled) || o.Pending != tt.pending {
				t.Errorf("scheduled %v pending %v, want %v %v", o.ScheduledAt, o.Pending, tt.scheduled, tt.pending)
			}
			if o.MaxAttempts != 9 || o.Priority != 2 || o.Queue != "default" || strings.Join(o.Tags, ",") != "t" || string(o.Metadata) != `{"snoozes":3}` {
				t.Errorf("options not carried: %+v", o)
			}
		})
	}
}

func TestStoreCopyPrintsWhatItCopiedAndRefusesASecondCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dst := pgdb.Database(t)
	srcPath := filepath.Join(t.TempDir(), "mail2archer.db")
	src := "sqlite://" + srcPath
	st, err := store.Open(ctx, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSubscription(ctx, subscriptions.Record{ID: "sub-1", Mailbox: "phish@contoso.com", Folder: "Inbox",
		ClientState: "secret", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2"} {
		if _, err := st.SaveIntent(ctx, store.Message{Mailbox: "phish@contoso.com", MessageID: id, RecordKey: "k-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SaveDeltaLink(ctx, "phish@contoso.com", "Inbox", "https://graph.example/delta"); err != nil {
		t.Fatal(err)
	}
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "m2"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Insert(ctx, jobs.WriteBack{Mailbox: "phish@contoso.com", MessageID: "m1", RecordID: 7}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "m3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	end(t, st, r.Job.ID, "discarded")
	_ = st.Close()

	var out strings.Builder
	if err := StoreCopy(ctx, src, dst, zerolog.Nop(), &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"m2a_subscription     1", "m2a_message          2", "m2a_delta_link       1", "m2a_setting          0",
		"m2a_campaign_report  0",
		"jobs re-queued: 2 (process_message 1, write_back 1)",
		"ended jobs not copied: 1 discarded", "jobs list --state discarded",
		"next: set M2A_DATABASE_URL", "Keep " + srcPath + " as a backup",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(text, ":postgres@") {
		t.Errorf("the report shows the target's password")
	}

	target, err := store.Open(ctx, dst, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = target.Close() }()
	counts, err := target.JobCounts(ctx)
	if err != nil || counts["available"] != 2 || len(counts) != 1 {
		t.Errorf("target jobs %v %v", counts, err)
	}

	out.Reset()
	err = StoreCopy(ctx, src, dst, zerolog.Nop(), &out)
	if err == nil || !strings.Contains(err.Error(), "already holds state") || !strings.Contains(err.Error(), "m2a_subscription") {
		t.Errorf("a second copy into the same target: %v", err)
	}
	if counts, _ := target.JobCounts(ctx); counts["available"] != 2 {
		t.Errorf("the refused copy queued jobs: %v", counts)
	}
}

func TestStoreCopyOfAnEmptySourceSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dst := pgdb.Database(t)
	src := "sqlite://" + filepath.Join(t.TempDir(), "new.db")
	st, err := store.Open(ctx, src, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	var out strings.Builder
	if err := StoreCopy(ctx, src, dst, zerolog.Nop(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "the source held no state") || !strings.Contains(out.String(), "jobs re-queued: none") {
		t.Errorf("the report of an empty copy:\n%s", out.String())
	}
}
