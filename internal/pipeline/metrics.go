package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/internal/metrics"
)

// latencyBuckets are the upper bounds of the processing-time histogram.
var latencyBuckets = []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 900, 3600}

// Metrics are the workers' metrics:
//
//	m2a_processing_seconds               time from a notification (job creation) to its Archer record being stored
//	m2a_jobs_outcomes_total{outcome}     message job attempts by outcome (created, adopted, already_done, and each failure's reason)
//	m2a_writebacks_total{result}         mailbox write-backs by result
type Metrics struct{ set *metrics.Set }

// NewMetrics returns the workers' metrics in set; nil keeps them in a
// private set.
func NewMetrics(set *metrics.Set) *Metrics {
	if set == nil {
		set = metrics.NewSet()
	}
	return &Metrics{set: set}
}

func (m *Metrics) outcome(reason string) {
	m.set.Counter("m2a_jobs_outcomes_total", "outcome", reason).Inc()
}

func (m *Metrics) latency(d time.Duration) {
	m.set.Histogram("m2a_processing_seconds", latencyBuckets).Update(d.Seconds())
}

// ack counts acknowledgments by result: sent, or why not.
func (m *Metrics) ack(result string) {
	m.set.Counter("m2a_acks_total", "result", result).Inc()
}

// ruleMatch counts the reports a triage rule matched.
func (m *Metrics) ruleMatch(rule string) {
	m.set.Counter("m2a_rule_matches_total", "rule", rule).Inc()
}

func (m *Metrics) writeBack(result string) {
	m.set.Counter("m2a_writebacks_total", "result", result).Inc()
}

// JobCounter counts the queue's jobs by state.
type JobCounter interface {
	JobCounts(ctx context.Context) (map[string]int, error)
}

// queueStates are the states reported by m2a_queue_jobs.
var queueStates = []string{"available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "pending"}

// RegisterQueueDepth adds m2a_queue_jobs{state}, the number of jobs in each
// state, read from the database at most once a second however many states
// a scrape asks for.
func RegisterQueueDepth(set *metrics.Set, c JobCounter) {
	var mu sync.Mutex
	var at time.Time
	var counts map[string]int
	read := func(state string) float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			got, err := c.JobCounts(ctx)
			cancel()
			if err == nil {
				counts, at = got, time.Now()
			}
		}
		return float64(counts[state])
	}
	for _, state := range queueStates {
		set.GaugeFunc("m2a_queue_jobs", func() float64 { return read(state) }, "state", state)
	}
}
