package console

import (
	"context"
	"errors"
	"fmt"
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

const mailbox = "phish@contoso.com"

// scriptedWorker processes a message the way its id says, as the real
// worker would end up: "fail…" ends the job with the pipeline's reason,
// "retry…" fails an attempt, "wait…" snoozes for an operator, "done…"
// records a new record, "run…" holds the job until release is closed.
type scriptedWorker struct {
	river.WorkerDefaults[jobs.ProcessMessage]
	release chan struct{}
}

func (w *scriptedWorker) Work(ctx context.Context, job *river.Job[jobs.ProcessMessage]) error {
	switch id := job.Args.MessageID; {
	case strings.HasPrefix(id, "fail"):
		return river.JobCancel(errors.New("archer_validation: archer: create record: The Title field is required"))
	case strings.HasPrefix(id, "retry"):
		return errors.New("graph: fetch message: connection reset by peer")
	case strings.HasPrefix(id, "wait"):
		_ = river.RecordOutput(ctx, map[string]string{"waiting_for": "archer", "reason": "archer_login_refused"})
		return river.JobSnooze(time.Hour)
	case strings.HasPrefix(id, "done"):
		return river.RecordOutput(ctx, map[string]any{"outcome": "created", "record_id": 239643})
	case strings.HasPrefix(id, "run"):
		select {
		case <-w.release:
		case <-ctx.Done():
		}
		return nil
	}
	return nil
}

// fakeSubs is the subscriptions manager: one mailbox, resyncs counted.
type fakeSubs struct {
	resyncs chan string
}

func (f *fakeSubs) Status() []subscriptions.State {
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	return []subscriptions.State{{Mailbox: mailbox, Folder: "inbox", SubscriptionID: "sub-1", ExpiresAt: exp,
		SecondsToExpiry: 3600, Leader: true, Healthy: true}}
}

func (f *fakeSubs) Resync(_ context.Context, mb string) (int, error) {
	f.resyncs <- mb
	return 2, nil
}

type fixture struct {
	st      *store.Store
	q       store.Queue
	c       *Console
	subs    *fakeSubs
	events  <-chan *river.Event
	release chan struct{}
}

// open starts a queue with the scripted worker on a real database.
func open(t *testing.T, dbURL string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, release: make(chan struct{}), subs: &fakeSubs{resyncs: make(chan string, 4)}}
	workers := river.NewWorkers()
	river.AddWorker(workers, &scriptedWorker{release: f.release})
	f.q, err = st.NewQueue(&river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:           workers,
		MaxAttempts:       5,
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		// A failed attempt waits an hour: the job stays retryable.
		RetryPolicy: hourly{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var cancel func()
	f.events, cancel = f.q.Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled,
		river.EventKindJobFailed, river.EventKindJobSnoozed)
	if err := f.q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		close(f.release)
		_ = f.q.Stop(context.Background())
		_ = st.Close()
	})
	f.c = New(Options{Store: st, Queue: f.q, Subscriptions: f.subs, ArcherURL: "https://archer.example.com/RSAarcher",
		Module: func() int64 { return 617 }})
	return f
}

type hourly struct{}

func (hourly) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Hour) }

// insert queues a message job and, unless its script keeps it from
// ending an attempt, waits for the event of its attempt.
func (f *fixture) insert(t *testing.T, id string, opts *river.InsertOpts) int64 {
	t.Helper()
	r, err := f.q.Insert(context.Background(), jobs.ProcessMessage{Mailbox: mailbox, MessageID: id}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(id, "run") || opts != nil {
		return r.Job.ID
	}
	for {
		select {
		case ev := <-f.events:
			if ev.Job.ID == r.Job.ID {
				return r.Job.ID
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event for job %s", id)
		}
	}
}

// backends are the databases the tests run on: SQLite always, PostgreSQL
// when M2A_TEST_POSTGRES_URL names a server.
func backends(t *testing.T) map[string]func(*testing.T) string {
	return map[string]func(*testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "state.db") },
		"postgres": func(t *testing.T) string { return pgdb.Database(t) },
	}
}

func TestReportsInEveryState(t *testing.T) {
	t.Parallel()
	for name, dbURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := open(t, dbURL(t))
			ids := map[string]int64{}
			for _, id := range []string{"fail-1", "retry-1", "wait-1", "done-1", "run-1"} {
				ids[id] = f.insert(t, id, nil)
			}
			ids["queued-1"] = f.insert(t, "queued-1", &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
			// What the pipeline stored of the email done-1: its summary,
			// its record, its campaign of two.
			received := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
			if _, err := f.st.SaveIntent(ctx, store.Message{Mailbox: mailbox, MessageID: "done-1", RecordKey: "k1",
				Reporter: "alice@contoso.com", Subject: "Your DocuSign envelope", ReceivedAt: received}); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`UPDATE m2a_message SET record_id = 239643 WHERE message_id = 'done-1'`,
				`INSERT INTO m2a_campaign_report (mailbox, message_id, campaign_id, reporter, reported_at) VALUES ('phish@contoso.com', 'done-1', 'c-1', 'alice@contoso.com', 1)`,
				`INSERT INTO m2a_campaign_report (mailbox, message_id, campaign_id, reporter, reported_at) VALUES ('phish@contoso.com', 'other', 'c-1', 'bob@contoso.com', 2)`,
			} {
				if _, err := f.st.DB().ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { r, _ := f.c.Reports(ctx, Filter{State: StateRunning}); return len(r) == 1 })

			all, err := f.c.Reports(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			byID := map[string]Report{}
			for _, r := range all {
				byID[r.MessageID] = r
			}
			tests := []struct {
				id, state, reason string
			}{
				{"fail-1", StateFailed, "archer_validation"},
				{"retry-1", StateRetrying, ""},
				{"wait-1", StateWaiting, "archer_login_refused"},
				{"done-1", StateDone, ""},
				{"run-1", StateRunning, ""},
				{"queued-1", StateQueued, ""},
			}
			for _, tt := range tests {
				r, ok := byID[tt.id]
				if !ok {
					t.Errorf("%s is not listed: %+v", tt.id, all)
					continue
				}
				if r.State != tt.state || r.Reason != tt.reason || r.JobID != ids[tt.id] {
					t.Errorf("%s: state %q reason %q job %d; want %q %q %d", tt.id, r.State, r.Reason, r.JobID, tt.state, tt.reason, ids[tt.id])
				}
				// Filtering by its state finds it.
				got, err := f.c.Reports(ctx, Filter{State: tt.state})
				if err != nil || len(got) != 1 || got[0].MessageID != tt.id {
					t.Errorf("state=%s lists %+v (%v); want only %s", tt.state, got, err, tt.id)
				}
			}
			if all[0].MessageID != "queued-1" {
				t.Errorf("the newest report is not first: %s", all[0].MessageID)
			}
			done := byID["done-1"]
			want := "https://archer.example.com/RSAarcher/default.aspx?requestUrl=..%2FGenericContent%2FRecord.aspx%3Fid%3D239643%26moduleId%3D617"
			if done.RecordID != 239643 || done.RecordURL != want || done.Outcome != "created" || done.Reporter != "alice@contoso.com" ||
				done.Campaign != "c-1" || done.Reports != 2 || done.ReceivedAt == nil || !done.ReceivedAt.Equal(received) {
				t.Errorf("done-1 = %+v", done)
			}
			if fail := byID["fail-1"]; !strings.Contains(fail.LastError, "Title field is required") || fail.Attempts != 1 {
				t.Errorf("fail-1 lacks its error: %+v", fail)
			}

			// The text filter looks in the subject, the reporter, the
			// record id; case does not matter.
			for q, want := range map[string]string{"docusign": "done-1", "ALICE@": "done-1", "23964": "done-1", "retry-": "retry-1"} {
				got, err := f.c.Reports(ctx, Filter{Query: q})
				if err != nil || len(got) != 1 || got[0].MessageID != want {
					t.Errorf("q=%s lists %+v (%v); want %s", q, got, err, want)
				}
			}
			if got, _ := f.c.Reports(ctx, Filter{Limit: 2}); len(got) != 2 {
				t.Errorf("limit 2 lists %d", len(got))
			}
			for _, bad := range []Filter{{State: "bogus"}, {Limit: -1}, {Query: strings.Repeat("x", 201)}} {
				if _, err := f.c.Reports(ctx, bad); !errors.Is(err, ErrInvalid) {
					t.Errorf("%+v: %v, want ErrInvalid", bad, err)
				}
			}
		})
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	for name, dbURL := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := open(t, dbURL(t))
			failed := f.insert(t, "fail-2", nil)
			queued := f.insert(t, "queued-2", &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
			running := f.insert(t, "run-2", nil)
			waitFor(t, func() bool { r, _ := f.c.Reports(ctx, Filter{State: StateRunning}); return len(r) == 1 })

			// History: the failed job with its error.
			report, history, err := f.c.History(ctx, mailbox, "fail-2")
			if err != nil {
				t.Fatal(err)
			}
			if report.State != StateFailed || len(history) != 1 || history[0].JobID != failed ||
				history[0].Reason != "archer_validation" || len(history[0].Errors) != 1 || history[0].FinalizedAt == nil {
				t.Errorf("history of fail-2: %+v %+v", report, history)
			}
			if _, _, err := f.c.History(ctx, mailbox, "never-seen"); !errors.Is(err, ErrNotFound) {
				t.Errorf("history of an unknown email: %v", err)
			}

			// Cancel: only a job that waits to run.
			if _, err := f.c.Cancel(ctx, running); !errors.Is(err, ErrConflict) {
				t.Errorf("cancel of a running job: %v", err)
			}
			if _, err := f.c.Cancel(ctx, 424242); !errors.Is(err, ErrNotFound) {
				t.Errorf("cancel of a missing job: %v", err)
			}
			if done, err := f.c.Cancel(ctx, queued); err != nil || !strings.Contains(done, "cancelled") {
				t.Errorf("cancel: %q %v", done, err)
			}

			// Retry: not a running job; an ended one runs again (and ends
			// again, as its script says).
			if _, err := f.c.Retry(ctx, running); !errors.Is(err, ErrConflict) {
				t.Errorf("retry of a running job: %v", err)
			}
			if _, err := f.c.Retry(ctx, 424242); !errors.Is(err, ErrNotFound) {
				t.Errorf("retry of a missing job: %v", err)
			}
			done, err := f.c.Retry(ctx, failed)
			if err != nil || !strings.Contains(done, "will run shortly") {
				t.Fatalf("retry: %q %v", done, err)
			}
			waitEvent(t, f.events, failed)
			_, history, _ = f.c.History(ctx, mailbox, "fail-2")
			if len(history) != 1 || history[0].Attempt != 2 || len(history[0].Errors) != 2 {
				t.Errorf("after a retry: %+v", history)
			}

			// Replay: refused beside a pending job, for a mailbox not
			// watched, and without ids; else queued.
			if _, err := f.c.Replay(ctx, mailbox, "run-2"); !errors.Is(err, ErrConflict) {
				t.Errorf("replay beside a running job: %v", err)
			}
			if _, err := f.c.Replay(ctx, "ceo@contoso.com", "x"); !errors.Is(err, ErrInvalid) {
				t.Errorf("replay in another mailbox: %v", err)
			}
			if _, err := f.c.Replay(ctx, mailbox, ""); !errors.Is(err, ErrInvalid) {
				t.Errorf("replay without an id: %v", err)
			}
			if done, err := f.c.Replay(ctx, mailbox, "done-2"); err != nil || !strings.Contains(done, "queued job") {
				t.Errorf("replay: %q %v", done, err)
			}

			// Resync: only a watched mailbox.
			if _, err := f.c.Resync(ctx, "ceo@contoso.com"); !errors.Is(err, ErrNotFound) {
				t.Errorf("resync of another mailbox: %v", err)
			}
			if done, err := f.c.Resync(ctx, mailbox); err != nil || !strings.Contains(done, "queued 2") {
				t.Errorf("resync: %q %v", done, err)
			}
			if got := <-f.subs.resyncs; got != mailbox {
				t.Errorf("resynced %s", got)
			}

			subs := f.c.Subscriptions()
			if len(subs) != 1 || subs[0].SubscriptionID != "sub-1" || subs[0].ExpiresAt == nil || subs[0].LastResync != nil {
				t.Errorf("subscriptions: %+v", subs)
			}
			counts, err := f.c.QueueCounts(ctx)
			if err != nil || counts["running"] < 1 || counts["cancelled"] != 2 || len(counts) != len(rivertype.JobStates()) {
				t.Errorf("queue counts: %v %v", counts, err)
			}
		})
	}
}

func TestRecordURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base       string
		module, id int64
		want       string
	}{
		{"https://archer.example.com/RSAarcher/", 617, 5, "https://archer.example.com/RSAarcher/default.aspx?requestUrl=..%2FGenericContent%2FRecord.aspx%3Fid%3D5%26moduleId%3D617"},
		{"https://archer.example.com", 617, 5, "https://archer.example.com/default.aspx?requestUrl=..%2FGenericContent%2FRecord.aspx%3Fid%3D5%26moduleId%3D617"},
		{"https://archer.example.com", 0, 5, ""},
		{"https://archer.example.com", 617, 0, ""},
		{"javascript:alert(1)", 617, 5, ""},
		{"://bad", 617, 5, ""},
	}
	for _, tt := range tests {
		if got := recordURL(tt.base, tt.module, tt.id); got != tt.want {
			t.Errorf("recordURL(%q, %d, %d) = %q, want %q", tt.base, tt.module, tt.id, got, tt.want)
		}
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]string{
		"archer_validation: The Title field is required": "archer_validation",
		"graph: fetch message: EOF":                      "graph",
		"Post \"https://x\": dial tcp: refused":          "",
		"no colon":                                       "",
		"JobCancelError: archer_validation: x":           "archer_validation",
		": empty":                                        "",
	} {
		if got := reasonOf(msg); got != want {
			t.Errorf("reasonOf(%q) = %q, want %q", msg, got, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitEvent(t *testing.T, events <-chan *river.Event, id int64) {
	t.Helper()
	for {
		select {
		case ev := <-events:
			if ev.Job.ID == id {
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event for job %d", id)
		}
	}
}

// TestAListLooksThroughItsWindowPageByPage: a filter that matches only an
// old job finds it on a later page, within the window and not beyond.
func TestAListLooksThroughItsWindowPageByPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := open(t, "sqlite://"+filepath.Join(t.TempDir(), "state.db"))
	later := &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
	params := []river.InsertManyParams{{Args: jobs.ProcessMessage{Mailbox: mailbox, MessageID: "needle"}, InsertOpts: later}}
	for i := range 600 {
		params = append(params, river.InsertManyParams{Args: jobs.ProcessMessage{Mailbox: mailbox, MessageID: fmt.Sprintf("hay-%d", i)}, InsertOpts: later})
	}
	if _, err := f.q.InsertMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		window int
		want   int
	}{{DefaultWindow, 1}, {601, 1}, {600, 0}} {
		c := New(Options{Store: f.st, Queue: f.q, Window: tt.window})
		got, err := c.Reports(ctx, Filter{Query: "needle", Limit: 1})
		if err != nil || len(got) != tt.want {
			t.Errorf("window %d: %d reports (%v), want %d", tt.window, len(got), err, tt.want)
		}
	}
	all, err := f.c.Reports(ctx, Filter{Limit: MaxLimit + 1})
	if err != nil || len(all) != MaxLimit || all[0].MessageID != "hay-599" {
		t.Errorf("the longest list: %d reports (%v)", len(all), err)
	}
}
