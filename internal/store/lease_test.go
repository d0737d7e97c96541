package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestLeaseHasOneHolderUntilItEnds(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		ttl := 30 * time.Second

		steps := []struct {
			name   string
			holder string
			at     time.Time
			want   bool
		}{
			{"a takes the free lease", "a", t0, true},
			{"b cannot take a's lease", "b", t0.Add(10 * time.Second), false},
			{"a extends its lease", "a", t0.Add(20 * time.Second), true},
			{"b still cannot take it before the extended end", "b", t0.Add(45 * time.Second), false},
			{"b takes it once it ended", "b", t0.Add(51 * time.Second), true},
			{"a lost it", "a", t0.Add(52 * time.Second), false},
		}
		for _, st := range steps {
			got, err := s.TryAcquireLease(ctx, "subscriptions", st.holder, st.at, ttl)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if got != st.want {
				t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
			}
		}
		// Releasing someone else's lease does nothing; releasing one's own
		// frees it at once.
		if err := s.ReleaseLease(ctx, "subscriptions", "a"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.TryAcquireLease(ctx, "subscriptions", "a", t0.Add(53*time.Second), ttl); ok {
			t.Fatal("a took b's lease after releasing a lease it did not hold")
		}
		if err := s.ReleaseLease(ctx, "subscriptions", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.TryAcquireLease(ctx, "subscriptions", "a", t0.Add(54*time.Second), ttl); !ok {
			t.Fatal("a could not take the released lease")
		}
		// Leases are independent by name.
		if ok, _ := s.TryAcquireLease(ctx, "other", "b", t0.Add(54*time.Second), ttl); !ok {
			t.Fatal("b could not take a lease of another name")
		}
	})
}

func TestLeaseRejectsBadArguments(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		now := time.Now()
		for _, c := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "a", time.Second}, {"x", "", time.Second}, {"x", "a", 0}, {"x", "a", -time.Second}} {
			if _, err := s.TryAcquireLease(context.Background(), c.name, c.holder, now, c.ttl); err == nil {
				t.Errorf("TryAcquireLease(%q, %q, %s) succeeded", c.name, c.holder, c.ttl)
			}
		}
	})
}

func TestLeaseConcurrentContendersOneWins(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		now := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.TryAcquireLease(context.Background(), "subscriptions", string(rune('a'+i)), now, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					winners++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("%d holders, want 1", winners)
		}
	})
}

func TestSetOnceKeepsTheFirstValue(t *testing.T) {
	eachURL(t, func(t *testing.T, rawURL string) {
		ctx := context.Background()
		s := openURL(t, rawURL)
		got, err := s.SetOnce(ctx, "first_seen", "2026-11-28T12:00:00Z")
		if err != nil || got != "2026-11-28T12:00:00Z" {
			t.Fatalf("first SetOnce = %q, %v", got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openURL(t, rawURL) // survives a restart
		got, err = s.SetOnce(ctx, "first_seen", "2027-01-01T00:00:00Z")
		if err != nil || got != "2026-11-28T12:00:00Z" {
			t.Fatalf("second SetOnce = %q, %v; want the first value", got, err)
		}
		if _, err := s.SetOnce(ctx, "", "x"); err == nil {
			t.Fatal("SetOnce with an empty name succeeded")
		}
	})
}
