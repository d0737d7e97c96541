package app

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

type storeTx = *sql.Tx

// pendingWorker holds a job kind whose processing this version does not
// have. It fails the attempt on purpose, so the job is never marked done and
// stays visible in the queue, retried with River's backoff, until a version
// with the real worker processes it.
type pendingWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	log zerolog.Logger
}

func (w *pendingWorker[T]) Work(_ context.Context, job *river.Job[T]) error {
	w.log.Warn().Int64("job_id", job.ID).Str("kind", job.Kind).Int("attempt", job.Attempt).
		Msg("job kept: this version queues it but does not process it yet")
	return fmt.Errorf("%s job %d: processing is not available in this version; the job is kept", job.Kind, job.ID)
}

func registerWorkers(w *river.Workers, log zerolog.Logger) {
	l := log.With().Str("component", "worker").Logger()
	river.AddWorker(w, &pendingWorker[jobs.ProcessMessage]{log: l})
	river.AddWorker(w, &pendingWorker[jobs.Lifecycle]{log: l})
}

// queueCollector reports the number of jobs in each state at scrape time.
type queueCollector struct {
	store *store.Store
	desc  *prometheus.Desc
}

func newQueueCollector(s *store.Store) *queueCollector {
	return &queueCollector{store: s, desc: prometheus.NewDesc("m2a_queue_jobs",
		"Jobs in the queue, by state.", []string{"state"}, nil)}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.JobCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, state := range []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "pending"} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[state]), state)
	}
}
