package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// intake posts notifications of real messages at a fixed rate (open loop:
// each one leaves at its scheduled time whatever the others do) while the
// workers fetch and process them, and measures how long each
// acknowledgement took from its scheduled send time.
func (r *runner) intake(ctx context.Context, res *ScenarioResult) (err error) {
	svc, err := r.startService(ctx, ScenarioIntake, setup{
		graph:   func(o *graphsim.Options) { o.RecordLimit = -1 },
		latency: true,
	})
	if err != nil {
		return err
	}
	defer stopService(svc, &err)
	sub, err := subscriptionOf(svc)
	if err != nil {
		return err
	}
	n := int(float64(r.p.IntakeRate) * r.p.IntakeDuration.Seconds())
	c := newCorpus("intake")
	mails := make([][]byte, n)
	for i := range mails {
		mails[i] = c.email(i)
	}
	ids, err := deliverSilently(svc, sub, mails)
	if err != nil {
		return err
	}
	nt := newNotifier(sub, sandbox.TenantID, 256)
	defer nt.close()
	mbID := mailboxID(sub)
	bodies := make([][]byte, n)
	for i, id := range ids {
		bodies[i] = nt.body(mbID, id)
	}

	lat := make([]time.Duration, n)
	var mu sync.Mutex
	var failures int
	var firstErr error
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / float64(r.p.IntakeRate))
	probe := startFsyncProbe(svc.dir, 100*time.Millisecond)
	start := time.Now().Add(50 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				_, _ = probe.Stop()
				return ctx.Err()
			case <-time.After(d):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := nt.post(ctx, bodies[i])
			lat[i] = time.Since(at)
			if err == nil && status != http.StatusAccepted {
				err = fmt.Errorf("notification answered %d", status)
			}
			if err != nil {
				mu.Lock()
				failures++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	fsyncs, probeErr := probe.Stop()
	if failures > 0 {
		res.note("%d of %d notifications failed; first: %v", failures, n, firstErr)
	}
	res.add("notifications", float64(n), "", nil)
	res.add("rate achieved", float64(n)/elapsed.Seconds(), "/s", nil)
	res.add("failed acks", float64(failures), "", atMost(0))
	res.addDuration("ack p50", percentile(lat, 50), nil).Scope = svc.scope
	res.addDuration("ack p99", percentile(lat, 99), atMost(10)).Scope = svc.scope
	res.addDuration("ack max", percentile(lat, 100), nil).Scope = svc.scope
	if probeErr == nil && len(fsyncs) > 0 {
		res.addDuration("disk fsync p50", percentile(fsyncs, 50), nil)
		res.addDuration("disk fsync p99", percentile(fsyncs, 99), nil)
		res.addDuration("disk fsync max", percentile(fsyncs, 100), nil)
	} else if probeErr != nil {
		res.note("disk fsync probe failed: %v", probeErr)
	}
	res.note("%s", svc.where())
	res.note("%d notifications at %d/s for %s, one message per POST, while the workers process them (Graph %s, Archer %s per call); latency from the scheduled send time to the full answer; disk fsync is a 4 KiB write made durable every 100 ms beside the service's database during the run, to show what the disk did meanwhile",
		n, r.p.IntakeRate, r.p.IntakeDuration, r.p.GraphLatency, r.p.ArcherLatency)
	return nil
}
