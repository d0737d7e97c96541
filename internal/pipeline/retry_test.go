package pipeline

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

func TestBackoffDoublesToItsCap(t *testing.T) {
	t.Parallel()
	b := &Backoff{Base: 2 * time.Second, Max: 30 * time.Minute}
	for _, tc := range []struct {
		attempt int
		min     time.Duration
	}{{1, 4 * time.Second}, {2, 8 * time.Second}, {5, 64 * time.Second}, {10, 30 * time.Minute}, {25, 30 * time.Minute}, {100, 30 * time.Minute}} {
		d := time.Until(b.NextRetry(&rivertype.JobRow{Attempt: tc.attempt}))
		if d < tc.min-time.Second || d > tc.min*6/5+time.Second {
			t.Errorf("attempt %d: next retry in %s, want %s plus up to 20 %%", tc.attempt, d, tc.min)
		}
	}
}
