package console

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
)

// BenchmarkConsoleOnALargeQueue measures what one poll of the page costs
// (the newest 200 reports) and one history click (a scan of the queue by
// the email's arguments) on a SQLite queue of 100,000 jobs:
//
//	go test -run '^$' -bench ConsoleOnALargeQueue ./internal/console
func BenchmarkConsoleOnALargeQueue(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "state.db"), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		b.Fatal(err)
	}
	const total, batch = 100_000, 5_000
	later := &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}
	for start := 0; start < total; start += batch {
		params := make([]river.InsertManyParams, 0, batch)
		for i := start; i < start+batch; i++ {
			params = append(params, river.InsertManyParams{Args: jobs.ProcessMessage{Mailbox: mailbox, MessageID: fmt.Sprintf("AAMk-%06d", i)}, InsertOpts: later})
		}
		if _, err := q.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
	c := New(Options{Store: st, Queue: q})
	b.Run("list of 200", func(b *testing.B) {
		for b.Loop() {
			if r, err := c.Reports(ctx, Filter{Limit: 200}); err != nil || len(r) != 200 {
				b.Fatalf("%d reports, %v", len(r), err)
			}
		}
	})
	b.Run("text filter through the window", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Reports(ctx, Filter{Query: "no such text", Limit: 200}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("history", func(b *testing.B) {
		for b.Loop() {
			if _, h, err := c.History(ctx, mailbox, "AAMk-000042"); err != nil || len(h) != 1 {
				b.Fatalf("%d jobs, %v", len(h), err)
			}
		}
	})
}
