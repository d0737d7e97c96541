package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/store"
)

// TestTheQueueKeepsFailedReportsAWeek: a report that ended without a
// record (a cancelled job) waits for an operator in `jobs list` and the
// console; River's default would drop it after a day.
func TestTheQueueKeepsFailedReportsAWeek(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := queueConfig(&config.Config{Workers: 2, MaxAttempts: 5}, st, Options{}, river.NewWorkers(), zerolog.Nop())
	week := 7 * 24 * time.Hour
	if cfg.CancelledJobRetentionPeriod != week || cfg.DiscardedJobRetentionPeriod != week {
		t.Errorf("cancelled jobs kept %s, discarded %s; want a week each", cfg.CancelledJobRetentionPeriod, cfg.DiscardedJobRetentionPeriod)
	}
}
