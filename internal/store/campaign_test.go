package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

var campaignT0 = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

func report(i int, at time.Time) CampaignReport {
	return CampaignReport{Mailbox: "phish@contoso.com", MessageID: fmt.Sprintf("AAMk-%d", i),
		Reporter: fmt.Sprintf("user%d@contoso.com", i), At: at}
}

func TestCampaignsGroupReportsByAnyKeyWithinTheWindow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const window = 72 * time.Hour
		join := func(keys []string, r CampaignReport, now time.Time) (Campaign, bool) {
			t.Helper()
			c, opened, err := s.JoinCampaign(ctx, keys, window, now, r, "key-"+r.MessageID)
			if err != nil {
				t.Fatal(err)
			}
			return c, opened
		}
		a, opened := join([]string{"mid:<x@evil>", "fp:1"}, report(1, campaignT0), campaignT0)
		if !opened || a.RecordKey != "key-AAMk-1" || !a.FirstAt.Equal(campaignT0) {
			t.Fatalf("first report: %+v opened %v", a, opened)
		}
		// By the Message-ID alone, by the fingerprint alone.
		if b, opened := join([]string{"mid:<x@evil>", "fp:2"}, report(2, campaignT0.Add(time.Hour)), campaignT0.Add(time.Hour)); opened || b.ID != a.ID {
			t.Errorf("same Message-ID: campaign %s (opened %v), want %s", b.ID, opened, a.ID)
		}
		if c, opened := join([]string{"fp:2"}, report(3, campaignT0.Add(2*time.Hour)), campaignT0.Add(2*time.Hour)); opened || c.ID != a.ID {
			t.Errorf("a key a later report brought: campaign %s (opened %v), want %s", c.ID, opened, a.ID)
		}
		// Another email.
		if d, opened := join([]string{"fp:other"}, report(4, campaignT0), campaignT0); !opened || d.ID == a.ID {
			t.Errorf("another email joined the campaign: %+v", d)
		}
		// A job that runs again stays where it was, counted once.
		if again, opened := join([]string{"fp:other"}, report(2, campaignT0.Add(3*time.Hour)), campaignT0.Add(3*time.Hour)); opened || again.ID != a.ID {
			t.Errorf("a report joined twice: %+v", again)
		}
		_, reports, err := s.CampaignReports(ctx, a.ID)
		if err != nil || len(reports) != 3 || reports[0].Reporter != "user1@contoso.com" || !reports[2].At.Equal(campaignT0.Add(2*time.Hour)) {
			t.Fatalf("reports %+v %v", reports, err)
		}
		// After the window, the same keys open a new campaign, which takes
		// them over.
		late := campaignT0.Add(window + time.Minute)
		e, opened := join([]string{"mid:<x@evil>"}, report(5, late), late)
		if !opened || e.ID == a.ID {
			t.Fatalf("a report after the window joined the old campaign: %+v", e)
		}
		if f, _ := join([]string{"fp:1"}, report(6, late), late); f.ID == a.ID {
			t.Errorf("the old campaign's other key still groups after its window")
		}
		if g, opened := join([]string{"mid:<x@evil>"}, report(7, late.Add(time.Hour)), late.Add(time.Hour)); opened || g.ID != e.ID {
			t.Errorf("the new campaign did not take the key: %+v", g)
		}
	})
}

// TestConcurrentReportsOfOneEmailMakeOneCampaign joins 20 reports of the
// same email at once, as 8 workers (or replicas) would.
func TestConcurrentReportsOfOneEmailMakeOneCampaign(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const n = 20
		ids := make(chan string, n)
		opens := make(chan bool, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				c, opened, err := s.JoinCampaign(ctx, []string{"mid:<same@evil>", fmt.Sprintf("fp:%d", i%3)}, time.Hour,
					campaignT0, report(i, campaignT0), fmt.Sprintf("key-%d", i))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- c.ID
				opens <- opened
			})
		}
		wg.Wait()
		close(ids)
		close(opens)
		distinct := map[string]bool{}
		for id := range ids {
			distinct[id] = true
		}
		opened := 0
		for o := range opens {
			if o {
				opened++
			}
		}
		if len(distinct) != 1 || opened != 1 {
			t.Fatalf("%d campaigns, %d opened, for %d reports of one email", len(distinct), opened, n)
		}
		for id := range distinct {
			if _, reports, err := s.CampaignReports(ctx, id); err != nil || len(reports) != n {
				t.Errorf("%d reports in the campaign, want %d: %v", len(reports), n, err)
			}
		}
	})
}

func TestOneWriterHoldsACampaign(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		c, _, err := s.JoinCampaign(ctx, []string{"fp:1"}, time.Hour, campaignT0, report(1, campaignT0), "key-1")
		if err != nil {
			t.Fatal(err)
		}
		ttl := time.Minute
		steps := []struct {
			name   string
			holder string
			at     time.Time
			want   bool
		}{
			{"job 1 takes it", "job 1", campaignT0, true},
			{"job 2 waits", "job 2", campaignT0.Add(time.Second), false},
			{"job 1 running again keeps it", "job 1", campaignT0.Add(2 * time.Second), true},
			{"job 2 takes it once job 1's time passed", "job 2", campaignT0.Add(2*time.Second + ttl + time.Millisecond), true},
		}
		for _, st := range steps {
			got, err := s.HoldCampaign(ctx, c.ID, st.holder, st.at, ttl)
			if err != nil || got != st.want {
				t.Fatalf("%s: %v %v", st.name, got, err)
			}
		}
		// Only the holder saves, and the state comes back.
		c.RecordID, c.Applied = 239643, 1
		c.Append = map[int64]string{24305: "hxxps://evil[.]example/a"}
		c.Attachments = map[int64][]int64{24308: {901}}
		c.Done = []string{"phish@contoso.com/AAMk-1"}
		if err := s.SaveCampaignRecord(ctx, c, "job 1"); err == nil {
			t.Error("a writer that no longer holds the campaign saved it")
		}
		if err := s.SaveCampaignRecord(ctx, c, "job 2"); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.CampaignReports(ctx, c.ID)
		if err != nil || got.RecordID != 239643 || got.Applied != 1 || got.Append[24305] != c.Append[24305] ||
			len(got.Attachments[24308]) != 1 || len(got.Done) != 1 {
			t.Fatalf("saved %+v %v", got, err)
		}
		if err := s.ReleaseCampaign(ctx, c.ID, "job 2"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.HoldCampaign(ctx, c.ID, "job 3", campaignT0.Add(3*time.Second), ttl); err != nil || !ok {
			t.Errorf("after the release: %v %v", ok, err)
		}
	})
}
