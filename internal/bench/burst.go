package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// Graph's documented per-app, per-mailbox limits and the Graph client's
// default token bucket, which stays at 90 % of that budget.
const (
	graphBudget        = 10000
	graphWindow        = 10 * time.Minute
	graphConcurrency   = 4
	clientDefaultRPS   = 15.0
	clientDefaultBurst = 20
	budgetShare        = 0.9
	// concurrencyShare is the part of the concurrency-bound rate (4
	// requests in flight / Graph latency) the scaled client rate may use.
	concurrencyShare = 0.85
)

// burstPlan is how the burst scales Graph's throttling to fit its goal.
type burstPlan struct {
	perEmail    int     // Graph requests each email needs
	clientRPS   float64 // the service's per-mailbox token bucket
	clientBurst int
	budget      int // simulator requests per window
	window      time.Duration
	budgetRPS   float64
	scale       float64 // clientRPS / the default 15/s
	windowScale float64 // Graph's 10 min / window
	concCap     float64 // requests/s that 4 in flight allow at the latency
}

func planBurst(p Params) burstPlan {
	b := burstPlan{perEmail: 2, window: p.BurstWindow}
	if p.BurstWriteBack {
		b.perEmail = 3
	}
	need := float64(p.BurstEmails*b.perEmail) / p.BurstGoal.Seconds()
	b.concCap = math.Inf(1)
	if p.GraphLatency > 0 {
		b.concCap = graphConcurrency / p.GraphLatency.Seconds()
	}
	b.clientRPS = max(clientDefaultRPS, min(need, concurrencyShare*b.concCap))
	b.scale = b.clientRPS / clientDefaultRPS
	b.clientBurst = int(math.Ceil(clientDefaultBurst * b.scale))
	b.budgetRPS = b.clientRPS / budgetShare
	b.budget = int(math.Ceil(b.budgetRPS * b.window.Seconds()))
	b.windowScale = float64(graphWindow) / float64(b.window)
	return b
}

// burst delivers BurstEmails to the mailbox evenly within BurstArrival, as
// mail delivery would (Graph notifies the service), and measures the drain.
func (r *runner) burst(ctx context.Context, res *ScenarioResult) (err error) {
	plan := planBurst(r.p)
	svc, err := r.startService(ctx, ScenarioBurst, setup{
		graph: func(o *graphsim.Options) {
			o.Budget, o.BudgetWindow, o.Concurrency = plan.budget, plan.window, graphConcurrency
			o.RecordLimit = 1 << 20
		},
		configure: func(c *config.Config) {
			c.Workers = r.p.BurstWorkers
			if !r.p.BurstWriteBack {
				c.WritebackCategory = ""
			}
		},
		app: app.Options{GraphMailboxRPS: plan.clientRPS, GraphMailboxBurst: plan.clientBurst},
		// The time-scaled client rate is an app option, not a variable.
		inProcess: true,
		latency:   true,
	})
	if err != nil {
		return err
	}
	defer stopService(svc, &err)
	sub, err := subscriptionOf(svc)
	if err != nil {
		return err
	}
	graph429 := map[string]string{"system": "graph", "status": "429"}
	before429, err := scrapeCounter(ctx, svc.adminURL, "m2a_outbound_requests_total", graph429)
	if err != nil {
		return err
	}

	c := newCorpus("burst")
	mails := make([][]byte, r.p.BurstEmails)
	for i := range mails {
		mails[i] = c.email(i)
	}
	peak := startPeakRSS(svc.pid)
	t0 := time.Now()
	sent := map[string]time.Time{}
	interval := r.p.BurstArrival / time.Duration(r.p.BurstEmails)
	for i, m := range mails {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
				peak.Stop()
				return ctx.Err()
			case <-time.After(d):
			}
		}
		id, err := svc.deliver(m)
		if err != nil {
			peak.Stop()
			return fmt.Errorf("deliver email %d: %w", i, err)
		}
		sent[id] = time.Now()
	}
	arrived := time.Since(t0)
	wctx, cancel := context.WithTimeout(ctx, 10*r.p.BurstGoal+time.Minute)
	defer cancel()
	werr := waitIncidents(wctx, svc, r.p.BurstEmails, 500*time.Millisecond)
	if werr == nil && r.p.BurstWriteBack {
		werr = waitRequests(wctx, svc, t0, http.MethodPatch, r.p.BurstEmails)
	}
	peakBytes := peak.Stop()
	if werr != nil {
		return fmt.Errorf("drain: %w", werr)
	}
	after429, err := scrapeCounter(ctx, svc.adminURL, "m2a_outbound_requests_total", graph429)
	if err != nil {
		return err
	}

	// End-to-end latency and drain time from the records' creation times.
	keys := recordKeys(svc)
	var e2e []time.Duration
	last := t0
	for restID, at := range sent {
		id, err := serviceID(svc, sub, restID)
		if err != nil {
			return err
		}
		rec, ok := keys[sandbox.Mailbox+"/"+id]
		if !ok {
			return fmt.Errorf("no incident for message %s", id)
		}
		e2e = append(e2e, rec.Created.Sub(at))
		if rec.Created.After(last) {
			last = rec.Created
		}
	}
	drain := last.Sub(t0)

	// Graph requests to the mailbox since the burst began.
	var total, fetch, writeBack int
	var first, lastReq time.Time
	for _, q := range svc.graph.Requests() {
		if q.Time.Before(t0) || !strings.HasPrefix(strings.ToLower(q.Path), "/v1.0/users/") {
			continue
		}
		total++
		if first.IsZero() {
			first = q.Time
		}
		lastReq = q.Time
		switch {
		case q.Method == http.MethodGet && strings.Contains(strings.ToLower(q.Path), "/messages/"):
			fetch++
		case q.Method == http.MethodPatch || strings.HasSuffix(strings.ToLower(q.Path), "/move"):
			writeBack++
		}
	}
	used, bucket := 0.0, 0.0
	if span := lastReq.Sub(first).Seconds(); span > 0 {
		used = 100 * float64(total) / (plan.budgetRPS * span)
		bucket = 100 * float64(total) / (plan.clientRPS * span)
	}

	n := float64(r.p.BurstEmails)
	res.add("emails", n, "", nil)
	res.add("arrival", arrived.Seconds(), "s", nil)
	res.add("drain time", drain.Seconds(), "s", atMost(r.p.BurstGoal.Seconds()))
	res.add("throughput", n/drain.Seconds(), "emails/s", nil)
	res.add("graph requests per email", float64(total)/n, "", atMost(2))
	res.add("graph fetch requests per email", float64(fetch)/n, "", nil)
	res.add("graph 429s", after429-before429, "", atMost(0))
	res.add("graph budget used", used, "%", atLeast(90))
	res.add("service's own Graph rate used", bucket, "%", nil)
	res.addDuration("end-to-end p50", percentile(e2e, 50), nil)
	res.addDuration("end-to-end p99", percentile(e2e, 99), nil)
	res.add("peak RSS", mib(peakBytes), "MiB", nil).Scope = svc.scope

	res.note("scale %.2f: the simulator's window is %s (Graph's 10 min / %.0f) with a budget of %d requests (%.1f/s, %.2f × Graph's 16.7/s); the service's bucket is %.1f/s, burst %d (%.2f × its default 15/s, 20), so it may use %.0f %% of the budget",
		plan.scale, plan.window, plan.windowScale, plan.budget, plan.budgetRPS, plan.scale, plan.clientRPS, plan.clientBurst, plan.scale, 100*budgetShare)
	res.note("Graph allows %d requests in flight per mailbox; at %s per call that is at most %.1f requests/s",
		graphConcurrency, r.p.GraphLatency, plan.concCap)
	wb := "off (M2A_WRITEBACK_CATEGORY empty)"
	if r.p.BurstWriteBack {
		wb = "on (one PATCH per email)"
	}
	res.note("M2A_WORKERS=%d, write-back %s, %d write-back requests counted; Graph %s and Archer %s per call",
		r.p.BurstWorkers, wb, writeBack, r.p.GraphLatency, r.p.ArcherLatency)
	return nil
}

// waitRequests polls until the Graph simulator saw n requests of method
// since t0.
func waitRequests(ctx context.Context, svc *service, t0 time.Time, method string, n int) error {
	for {
		got := 0
		for _, q := range svc.graph.Requests() {
			if !q.Time.Before(t0) && q.Method == method {
				got++
			}
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d %s requests: %w", got, n, method, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
