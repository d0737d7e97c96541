package ops

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

// setup opens a real state database with a queue client on it.
func setup(t *testing.T) (*store.Store, store.Queue) {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return st, q
}

// end puts job id into an ended state, as the queue would after its last
// attempt.
func end(t *testing.T, st *store.Store, id int64, state string) {
	t.Helper()
	if _, err := st.DB().Exec(`UPDATE river_job SET state = $1, finalized_at = CURRENT_TIMESTAMP,
		errors = json_array(json_object('at', '2026-03-01T00:00:00Z', 'attempt', 1, 'error', 'archer_validation: The Title field is a required field.', 'trace', ''))
		WHERE id = $2`, state, id); err != nil {
		t.Fatal(err)
	}
}

func TestJobsListRetryAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, q := setup(t)
	a := jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-one", Source: "notification"}
	r, err := q.Insert(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	end(t, st, r.Job.ID, "discarded")

	var out strings.Builder
	if err := ListJobs(ctx, st, "discarded", 10, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "AAMk-one") || !strings.Contains(out.String(), "archer_validation") {
		t.Errorf("the listing lacks the job or its reason:\n%s", out.String())
	}
	if err := ListJobs(ctx, st, "nonsense", 10, &out); err == nil || !strings.Contains(err.Error(), "discarded") {
		t.Errorf("an unknown state: %v", err)
	}

	// A replay is refused while a job of the email waits.
	pending, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-two"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Replay(ctx, st, "phish@contoso.com", "AAMk-two", &out); err == nil || !strings.Contains(err.Error(), "still") {
		t.Errorf("replay beside a pending job: %v", err)
	}
	out.Reset()
	if err := Replay(ctx, st, "phish@contoso.com", "AAMk-one", &out); err != nil || !strings.Contains(out.String(), "queued job") {
		t.Errorf("replay: %v %s", err, out.String())
	}
	_ = pending

	// Retrying the discarded job makes it available.
	out.Reset()
	if err := RetryJob(ctx, st, r.Job.ID, &out); err != nil || !strings.Contains(out.String(), "will run shortly") {
		t.Fatalf("retry: %v %s", err, out.String())
	}
	if err := RetryJob(ctx, st, 99999, &out); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("retry of a missing job: %v", err)
	}
}

func TestRetryOfAJobWhoseEmailWasProcessedSinceSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, q := setup(t)
	a := jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-done"}
	r, err := q.Insert(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	end(t, st, r.Job.ID, "discarded")
	// Another job (a resync, a replay) processed the email since.
	if _, err := st.SaveIntent(ctx, store.Message{Mailbox: a.Mailbox, MessageID: a.MessageID, RecordKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().ExecContext(ctx, `UPDATE m2a_message SET record_id = 239643 WHERE mailbox = $1 AND message_id = $2`,
		a.Mailbox, a.MessageID); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := RetryJob(ctx, st, r.Job.ID, &out); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !strings.Contains(out.String(), "Archer record 239643") || !strings.Contains(out.String(), "deleted") {
		t.Errorf("the answer does not say the email was processed: %s", out.String())
	}
	counts, err := st.JobCounts(ctx)
	if err != nil || counts["discarded"] != 0 {
		t.Errorf("the job still counts as discarded: %v %v", counts, err)
	}
}

func TestJobsListShowsWhatEachJobRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, q := setup(t)
	for i, output := range []string{
		`{"output":{"outcome":"added_to_campaign","record_id":239643}}`,
		`{"output":{"waiting_for":"archer","reason":"archer_login_refused"}}`,
		`{"output":{"outcome":"skipped","rule":"knowbe4-simulation"}}`,
	} {
		r, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: fmt.Sprintf("AAMk-%d", i)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.DB().Exec(`UPDATE river_job SET metadata = $1 WHERE id = $2`, output, r.Job.ID); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := ListJobs(ctx, st, "", 10, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RESULT", "added_to_campaign record 239643", "archer_login_refused waiting for archer", "skipped rule knowbe4-simulation"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the listing lacks %q:\n%s", want, out.String())
		}
	}
}
