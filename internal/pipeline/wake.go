package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/jobs"
)

// Queue is the part of the queue client that wakes waiting jobs.
type Queue interface {
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

// maxWake bounds how many jobs one WakeWaiting call makes available.
const maxWake = 100_000

// WakeWaiting makes message jobs that wait for a later attempt available
// now, and returns how many it woke. With only nil it wakes every waiting
// message job — a retry's backoff or a snooze — as the service does when a
// component recovers (Archer answers again, a login succeeds, the mapping
// preflight passes), so the backlog drains at once instead of sleeping out
// its backoff. With only set it wakes the snoozed jobs whose recorded
// Output.WaitingFor names a component for which only returns true: the
// periodic sweep that catches a job that snoozed just after a recovery.
func WakeWaiting(ctx context.Context, q Queue, only func(component string) bool) (int, error) {
	states := []rivertype.JobState{rivertype.JobStateScheduled, rivertype.JobStateRetryable}
	if only != nil {
		states = states[:1]
	}
	params := river.NewJobListParams().Kinds(jobs.ProcessMessage{}.Kind()).States(states...).First(500)
	woken := 0
	for woken < maxWake {
		res, err := q.JobList(ctx, params)
		if err != nil {
			return woken, fmt.Errorf("wake waiting jobs: list: %w", err)
		}
		for _, j := range res.Jobs {
			if only != nil {
				var meta struct {
					Output Output `json:"output"`
				}
				if json.Unmarshal(j.Metadata, &meta) != nil || meta.Output.WaitingFor == "" || !only(meta.Output.WaitingFor) {
					continue
				}
			}
			if _, err := q.JobRetry(ctx, j.ID); err != nil {
				return woken, fmt.Errorf("wake waiting job %d: %w", j.ID, err)
			}
			woken++
		}
		if len(res.Jobs) < 500 || res.LastCursor == nil {
			return woken, nil
		}
		params = params.After(res.LastCursor)
	}
	return woken, nil
}

// QueueState describes the queue for readiness: its jobs by state, and the
// first discarded jobs by id. Discarded jobs are named, not failing: each
// is an email that ran out of attempts and waits for an operator's retry
// or replay.
func QueueState(ctx context.Context, counter JobCounter, q Queue) (string, error) {
	counts, err := counter.JobCounts(ctx)
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d available, %d scheduled, %d running, %d retryable, %d discarded",
		counts["available"], counts["scheduled"], counts["running"], counts["retryable"], counts["discarded"])
	if counts["discarded"] == 0 {
		return detail, nil
	}
	res, err := q.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateDiscarded).First(5))
	if err != nil {
		return detail, nil
	}
	ids := make([]string, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		ids = append(ids, strconv.FormatInt(j.ID, 10))
	}
	return detail + fmt.Sprintf(" (discarded jobs %s; see mail2archer jobs list --state discarded)", strings.Join(ids, ", ")), nil
}
