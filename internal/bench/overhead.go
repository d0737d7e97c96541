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
// that creates the record. A second pass with M2A_TRUST_LOCAL_STATE=true
// shows what the lookup by key before every create costs.
func (r *runner) overhead(ctx context.Context, res *ScenarioResult) error {
	with, err := r.overheadPass(ctx, false)
	if err != nil {
		return err
	}
	without, err := r.overheadPass(ctx, true)
	if err != nil {
		return fmt.Errorf("without the lookup: %w", err)
	}
	n := len(with.over)
	res.add("emails", float64(n), "", nil)
	res.addDuration("own overhead p50", percentile(with.over, 50), nil).Scope = with.scope
	// PostgreSQL's LISTEN/NOTIFY wakes a worker at once; SQLite's queue is
	// found by polling every 50 ms.
	target := atMost(50)
	if r.databaseURL != "" {
		target = atMost(20)
	}
	res.addDuration("own overhead p99", percentile(with.over, 99), target).Scope = with.scope
	res.addDuration("own overhead max", percentile(with.over, 100), nil).Scope = with.scope
	if len(with.pickup) == n {
		res.addDuration("queue pickup p50", percentile(with.pickup, 50), nil)
		res.addDuration("queue pickup p99", percentile(with.pickup, 99), nil)
		res.addDuration("fetch to create p50", percentile(with.work, 50), nil)
		res.addDuration("fetch to create p99", percentile(with.work, 99), nil)
	} else {
		res.note("queue pickup not reported: %d of %d first Graph requests found", len(with.pickup), n)
	}
	res.add("Archer lookups per email", float64(with.lookups)/float64(n), "", nil)
	if len(with.lookup) > 0 {
		res.addDuration("lookup by key p50", percentile(with.lookup, 50), nil)
		res.addDuration("lookup by key p99", percentile(with.lookup, 99), nil)
	}
	res.addDuration("own overhead p50, no lookup", percentile(without.over, 50), nil).Scope = without.scope
	res.addDuration("own overhead p99, no lookup", percentile(without.over, 99), nil).Scope = without.scope
	res.add("Archer lookups per email, no lookup", float64(without.lookups)/float64(n), "", nil)
	res.note("%s", with.where)
	if r.databaseURL != "" {
		res.note("on PostgreSQL (a new database of the --database-url server per pass)")
	}
	res.note("%d notifications at %.0f/s with Graph and Archer answering at once; time from posting the notification to Archer receiving the create request (fetch, parse, analyse, render, the lookup by key and the attachment uploads included); queue pickup is the time to the first Graph request for the message, fetch to create the rest",
		n, r.p.OverheadRate)
	res.note("lookup by key is the time from Archer receiving an email's lookup to it receiving that job's next request; the figures marked \"no lookup\" come from a second service run with M2A_TRUST_LOCAL_STATE=true, which skips the lookup before a job's first create")
	return nil
}

// overheadTimes is what one pass of the overhead scenario measured.
type overheadTimes struct {
	over, pickup, work []time.Duration
	// lookup is each lookup's time, from its arrival at Archer to the
	// arrival of the job's next request.
	lookup []time.Duration
	// lookups counts Archer's Content API requests for this run's keys.
	lookups      int
	scope, where string
}

func (r *runner) overheadPass(ctx context.Context, trust bool) (t overheadTimes, err error) {
	svc, err := r.startService(ctx, ScenarioOverhead, setup{
		graph:           func(o *graphsim.Options) { o.RecordLimit = 1 << 16 },
		trustLocalState: trust,
	})
	if err != nil {
		return t, err
	}
	defer stopService(svc, &err)
	t.scope, t.where = svc.scope, svc.where()
	sub, err := subscriptionOf(svc)
	if err != nil {
		return t, err
	}
	n := r.p.OverheadEmails
	c := newCorpus("overhead")
	mails := make([][]byte, n)
	for i := range mails {
		mails[i] = c.email(i)
	}
	ids, err := deliverSilently(svc, sub, mails)
	if err != nil {
		return t, err
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
				return t, ctx.Err()
			case <-time.After(d):
			}
		}
		body := nt.body(mbID, id)
		sent[i] = time.Now()
		status, err := nt.post(ctx, body)
		if err != nil {
			return t, err
		}
		if status != http.StatusAccepted {
			return t, fmt.Errorf("notification answered %d", status)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := waitIncidents(wctx, svc, n, 50*time.Millisecond); err != nil {
		return t, err
	}

	// The create request carries the record's key, mailbox/message id.
	var creates [][]byte
	var times []time.Time
	areqs := svc.archer.Requests()
	isLookup := func(q string) bool {
		q, _ = url.QueryUnescape(q)
		return strings.Contains(q, sandbox.Mailbox+"/") // a lookup by one of this run's keys
	}
	for i, q := range areqs {
		if !isLookup(q.RawQuery) {
			continue
		}
		t.lookups++
		for _, next := range areqs[i+1:] {
			if !isLookup(next.RawQuery) {
				t.lookup = append(t.lookup, next.Time.Sub(q.Time))
				break
			}
		}
	}
	for _, q := range areqs {
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
			return t, fmt.Errorf("no Archer create request carries the key of message %s", id)
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
	t.over, t.pickup, t.work = over, pickup, work
	return t, nil
}
