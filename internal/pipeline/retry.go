package pipeline

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// Backoff is the queue's retry policy for failures that retry: exponential
// from Base, doubling with each attempt, at most Max apart, with up to 20 %
// random jitter so that the retries of many jobs spread out.
type Backoff struct {
	Base, Max time.Duration
}

// DefaultBackoff is 2 s doubling to at most 30 minutes: with the default 25
// attempts, about 8 hours of retrying.
var DefaultBackoff = &Backoff{Base: 2 * time.Second, Max: 30 * time.Minute}

// NextRetry is when job's next attempt runs.
func (b *Backoff) NextRetry(job *rivertype.JobRow) time.Time {
	d := b.Base << min(job.Attempt, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	return time.Now().Add(d)
}
