package app

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/store"
)

type storeTx = *sql.Tx

// backoff is the queue's retry policy: exponential from base, capped at
// max, with up to 20 % random jitter so retries of many jobs spread out.
type backoff struct {
	base, max time.Duration
}

func (b *backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := b.base << min(job.Attempt, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return time.Now().Add(d)
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
