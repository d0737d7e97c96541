package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

// Operator commands that work on the state database directly; the service
// may be running at the same time.

var (
	// ErrNoJob is returned for a job id the queue does not hold.
	ErrNoJob = errors.New("no such job")
	// ErrBusy is returned when another job for the same email is pending:
	// the action would race it.
	ErrBusy = errors.New("another job for the email is pending")
)

// ListJobs prints the newest jobs, optionally only those in one state
// (available, scheduled, running, retryable, completed, cancelled,
// discarded), with their last error.
func ListJobs(ctx context.Context, st *store.Store, state string, limit int, w io.Writer) error {
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		return err
	}
	params := river.NewJobListParams().First(limit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if state != "" {
		s := rivertype.JobState(state)
		if !validState(s) {
			return fmt.Errorf("unknown state %q; use one of %s", state, strings.Join(stateNames(), ", "))
		}
		params = params.States(s)
	}
	res, err := q.JobList(ctx, params)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPT\tMAILBOX\tMESSAGE\tCREATED\tRESULT\tLAST ERROR")
	for _, j := range res.Jobs {
		var a struct {
			Mailbox   string `json:"mailbox"`
			MessageID string `json:"message_id"`
			Event     string `json:"event"`
		}
		_ = json.Unmarshal(j.EncodedArgs, &a)
		msg := a.MessageID
		if a.Event != "" {
			msg = a.Event
		}
		lastErr := ""
		if n := len(j.Errors); n > 0 {
			lastErr = clip.String(j.Errors[n-1].Error, 120)
		}
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, j.State, j.Attempt, j.MaxAttempts,
			a.Mailbox, clip.String(msg, 40), j.CreatedAt.UTC().Format(time.RFC3339), resultOf(j), lastErr)
	}
	return tw.Flush()
}

// resultOf is what a job recorded of its work: "created 239643",
// "added_to_campaign 239643", what it waits for; "" when nothing.
func resultOf(j *rivertype.JobRow) string {
	var out struct {
		Outcome    string `json:"outcome"`
		RecordID   int64  `json:"record_id"`
		Rule       string `json:"rule"`
		WaitingFor string `json:"waiting_for"`
		Reason     string `json:"reason"`
	}
	if err := json.Unmarshal(j.Output(), &out); err != nil {
		return ""
	}
	var parts []string
	for _, p := range []string{out.Outcome, out.Reason} {
		if p != "" {
			parts = append(parts, clip.String(p, 40))
		}
	}
	if out.RecordID != 0 {
		parts = append(parts, fmt.Sprintf("record %d", out.RecordID))
	}
	if out.Rule != "" {
		parts = append(parts, "rule "+clip.String(out.Rule, 40))
	}
	if out.WaitingFor != "" {
		parts = append(parts, "waiting for "+clip.String(out.WaitingFor, 20))
	}
	return strings.Join(parts, " ")
}

// RetryJob makes a job available to run again at once, whatever its state
// (a cancelled or discarded job included).
func RetryJob(ctx context.Context, st *store.Store, id int64, w io.Writer) error {
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		return err
	}
	row, err := q.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("job %d does not exist (see: mail2archer jobs list): %w", id, ErrNoJob)
	}
	if err != nil {
		return fmt.Errorf("retry job %d: %w", id, err)
	}
	var a jobs.ProcessMessage
	if row.Kind == a.Kind() && json.Unmarshal(row.EncodedArgs, &a) == nil {
		if m, err := st.Message(ctx, a.Mailbox, a.MessageID); err == nil && m.Processed() && a.Replay == "" {
			// Another job (a resync, a replay) has processed the email
			// since: nothing is left to retry, and the ended job goes.
			if _, err := q.JobDelete(ctx, id); err != nil {
				return fmt.Errorf("delete job %d: %w", id, err)
			}
			done := fmt.Sprintf("as Archer record %d", m.RecordID)
			if m.SkippedBy != "" {
				done = "skipped by the rule " + m.SkippedBy
			}
			_, _ = fmt.Fprintf(w, "job %d needs no retry: its email was processed since, %s; the job is deleted\n", id, done)
			return nil
		}
	}
	j, err := q.JobRetry(ctx, id)
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "unique") {
		return fmt.Errorf("job %d cannot run again: another job for the same email exists (see: mail2archer jobs list); replay the email instead: mail2archer replay --mailbox %s --message %s: %w", id, a.Mailbox, a.MessageID, ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("retry job %d: %w", id, err)
	}
	_, _ = fmt.Fprintf(w, "job %d (%s) is %s and will run shortly\n", j.ID, j.Kind, j.State)
	return nil
}

// Replay queues one email to be processed again on purpose. The worker looks
// the record up by its key first, so a replay never makes a second incident
// while the first exists in Archer; it creates one when Archer has none (for
// example after a validation error was fixed, or the record was deleted).
func Replay(ctx context.Context, st *store.Store, mailbox, messageID string, w io.Writer) error {
	if mailbox == "" || messageID == "" {
		return errors.New("replay needs --mailbox and --message")
	}
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		return err
	}
	// Refuse while a job for this email is still pending: let it finish,
	// or retry it, rather than race it.
	res, err := q.JobList(ctx, river.NewJobListParams().Kinds(jobs.ProcessMessage{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStateRunning, rivertype.JobStateRetryable,
			rivertype.JobStateScheduled, rivertype.JobStatePending).First(10000))
	if err != nil {
		return fmt.Errorf("list pending jobs: %w", err)
	}
	for _, j := range res.Jobs {
		var a jobs.ProcessMessage
		if json.Unmarshal(j.EncodedArgs, &a) == nil && a.Mailbox == mailbox && a.MessageID == messageID {
			return fmt.Errorf("job %d for this email is still %s; wait for it or use: mail2archer jobs retry %d: %w", j.ID, j.State, j.ID, ErrBusy)
		}
	}
	r, err := q.Insert(ctx, jobs.ProcessMessage{Mailbox: mailbox, MessageID: messageID, Source: "replay",
		Replay: time.Now().UTC().Format(time.RFC3339Nano)}, nil)
	if err != nil {
		return fmt.Errorf("queue replay: %w", err)
	}
	_, _ = fmt.Fprintf(w, "queued job %d to process %s/%s again\n", r.Job.ID, mailbox, messageID)
	return nil
}

func validState(s rivertype.JobState) bool {
	for _, v := range rivertype.JobStates() {
		if v == s {
			return true
		}
	}
	return false
}

func stateNames() []string {
	var out []string
	for _, v := range rivertype.JobStates() {
		out = append(out, string(v))
	}
	return out
}
