package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// overhead measures the service's own time with backend latency zero: from
// posting a notification to the Archer simulator receiving the request
// that creates the record.
func (r *runner) overhead(ctx context.Context, res *ScenarioResult) (err error) {
	svc, err := r.startService(ctx, ScenarioOverhead, setup{
		graph: func(o *graphsim.Options) { o.RecordLimit = 1 << 16 },
	})
	if err != nil {
		return err
	}
	defer stopService(svc, &err)
	sub, err := subscriptionOf(svc)
	if err != nil {
		return err
	}
	n := r.p.OverheadEmails
	c := newCorpus("overhead")
	mails := make([][]byte, n)
	for i := range mails {
		mails[i] = c.email(i)
	}
	ids, err := deliverSilently(svc, sub, mails)
	if err != nil {
		return err
	}
	nt := newNotifier(sub, sandbox.TenantID, 4)
	defer nt.close()
	mbID := mailboxID(sub)

	sent := make([]time.Time, n)
	interval := time.Duration(float64(time.Second) / r.p.OverheadRate)
	t0 := time.Now()
	for i, id := range ids {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		body := nt.body(mbID, id)
		sent[i] = time.Now()
		status, err := nt.post(ctx, body)
		if err != nil {
			return err
		}
		if status != http.StatusAccepted {
			return fmt.Errorf("notification answered %d", status)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitIncidents(wctx, svc, n, 50*time.Millisecond); err != nil {
		return err
	}

	// The create request carries the record's key, mailbox/message id.
	var creates [][]byte
	var times []time.Time
	for _, q := range svc.archer.Requests() {
		if q.EffectiveMethod == http.MethodPost && strings.HasSuffix(strings.ToLower(strings.TrimSuffix(q.Path, "/")), "/core/content") {
			creates = append(creates, q.Body)
			times = append(times, q.Time)
		}
	}
	over := make([]time.Duration, 0, n)
	for i, id := range ids {
		key := []byte(sandbox.Mailbox + "/" + id)
		found := false
		for j, body := range creates {
			if bytes.Contains(body, key) {
				over = append(over, times[j].Sub(sent[i]))
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no Archer create request carries the key of message %s", id)
		}
	}
	// The first Graph request for each message shows when a worker took
	// the job: the queue's share of the overhead.
	pickup := make([]time.Duration, 0, n)
	work := make([]time.Duration, 0, n)
	reqs := svc.graph.Requests()
	for i, id := range ids {
		esc := strings.ToLower("/messages/" + url.PathEscape(id))
		for _, q := range reqs {
			if q.Time.After(sent[i]) && strings.Contains(strings.ToLower(q.Path), esc) {
				pickup = append(pickup, q.Time.Sub(sent[i]))
				work = append(work, over[i]-q.Time.Sub(sent[i]))
				break
			}
		}
	}
	res.add("emails", float64(n), "", nil)
	res.addDuration("own overhead p50", percentile(over, 50), nil).Scope = svc.scope
	res.addDuration("own overhead p99", percentile(over, 99), atMost(50)).Scope = svc.scope
	res.addDuration("own overhead max", percentile(over, 100), nil).Scope = svc.scope
	if len(pickup) == n {
		res.addDuration("queue pickup p50", percentile(pickup, 50), nil)
		res.addDuration("queue pickup p99", percentile(pickup, 99), nil)
		res.addDuration("fetch to create p99", percentile(work, 99), nil)
	} else {
		res.note("queue pickup not reported: %d of %d first Graph requests found", len(pickup), n)
	}
	res.note("%s", svc.where())
	res.note("%d notifications at %.0f/s with Graph and Archer answering at once; time from posting the notification to Archer receiving the create request (fetch, parse, analyse, render and the attachment uploads included); queue pickup is the time to the first Graph request for the message, fetch to create the rest",
		n, r.p.OverheadRate)
	return nil
}
