package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to read the queue

	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// balancer stands where Caddy stands in the compose layout: it sends each
// request to the next replica, round robin, and to another one when a
// replica does not answer (it is being killed or restarted).
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     int
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	order := make([]string, len(b.backends))
	for i := range b.backends {
		order[i] = b.backends[(b.next+i)%len(b.backends)]
	}
	b.next++
	b.mu.Unlock()
	for _, addr := range order {
		req := r.Clone(r.Context())
		req.URL.Scheme, req.URL.Host, req.RequestURI = "http", addr, ""
		req.Body = io.NopCloser(strings.NewReader(string(body)))
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			continue // refused: the replica is down, try the next
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		_ = resp.Body.Close()
		return
	}
	http.Error(w, "no replica answers", http.StatusBadGateway)
}

// replica is one serve process of the test's three.
type replica struct {
	addr, admin string
	env         []string
	proc        *proc
}

// TestReplicasOnPostgresLoseNothingWhenKilled runs three serve processes on
// one PostgreSQL database behind a round-robin balancer, delivers 1,000
// emails within a minute while one replica is killed with SIGKILL every few
// seconds and started again, and finds exactly one incident per email. Then
// it checks that the subscriptions are managed by exactly one replica, and
// that killing that one moves the management to another.
func TestReplicasOnPostgresLoseNothingWhenKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three binaries for minutes")
	}
	dbURL := pgdb.Database(t)
	w := newWorldWith(t, func(o *graphsim.Options) {
		o.RetryBackoff = 200 * time.Millisecond
		o.RetryWindow = 10 * time.Minute
	})
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)

	replicas := make([]*replica, 3)
	for i := range replicas {
		r := &replica{addr: freeAddr(t), admin: freeAddr(t)}
		r.env = []string{"M2A_DATABASE_URL=" + dbURL, "M2A_LISTEN_ADDR=" + r.addr, "M2A_ADMIN_LISTEN_ADDR=" + r.admin,
			"M2A_PUBLIC_URL=" + front.URL, "M2A_JOB_TIMEOUT=3s", "M2A_LOG_LEVEL=warn"}
		lb.backends = append(lb.backends, r.addr)
		replicas[i] = r
	}
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(func() { r.proc = w.startAt(t, r.admin, r.env...) })
	}
	wg.Wait()
	if subs := w.graph.Subscriptions(); len(subs) != 1 {
		t.Fatalf("%d subscriptions after three replicas started, want 1", len(subs))
	}

	// 1,000 emails within a minute, while a replica dies every 4 s.
	const emails = 1000
	delivered := make(chan error, 1)
	go func() {
		every := time.Minute / emails
		t0 := time.Now()
		for i := range emails {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * every)))
			if _, err := w.graph.Deliver(testMbox, "Inbox", testEmail(i)); err != nil {
				delivered <- err
				return
			}
		}
		delivered <- nil
	}()
	kills := 0
	tick := time.NewTicker(4 * time.Second)
	var deliverErr error
	for done := false; !done; {
		select {
		case deliverErr = <-delivered:
			done = true
		case <-tick.C:
			r := replicas[kills%len(replicas)]
			kills++
			if err := r.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-r.proc.done
			r.proc = w.startAt(t, r.admin, r.env...)
		}
	}
	tick.Stop()
	if deliverErr != nil {
		t.Fatal(deliverErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := w.graph.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	// The jobs the killed replicas were running are rescued after
	// M2A_JOB_TIMEOUT + 30 s, and River's rescuer runs every 30 s.
	w.waitIncidents(t, emails, 3*time.Minute)
	pgQueueDrained(t, dbURL, 2*time.Minute)
	if n := w.uniqueIncidents(t); n != emails || len(w.incidents()) != emails {
		t.Fatalf("%d incidents (%d distinct) for %d emails with %d replicas killed", len(w.incidents()), n, emails, kills)
	}
	t.Logf("%d emails, %d replica kills: %d incidents, none twice", emails, kills, emails)

	// One replica manages the subscriptions: one creation in all, and a
	// lifecycle event, which any replica may receive, is answered once.
	if n := countRequests(w.graph, http.MethodPost, "/subscriptions"); n != 1 {
		t.Errorf("%d subscription creations, want 1", n)
	}
	leader := waitLeader(t, replicas, nil, 10*time.Second)
	sub := w.graph.Subscriptions()[0]
	reauth := func() int { return countRequests(w.graph, http.MethodPost, "/subscriptions/"+sub.ID+"/reauthorize") }
	before := reauth()
	if err := w.graph.Lifecycle(sub.ID, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the reauthorization", func() bool { return reauth() > before })
	pgQueueDrained(t, dbURL, time.Minute)
	if got := reauth() - before; got != 1 {
		t.Errorf("%d reauthorizations for one lifecycle event, want 1", got)
	}

	// The leader dies: another replica takes the lease once it has run out
	// (30 s) and answers the next event.
	t0 := time.Now()
	if err := leader.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.proc.done
	waitLeader(t, replicas, leader, 60*time.Second)
	t.Logf("management moved to another replica %s after the leader died", time.Since(t0).Round(time.Second))
	before = reauth()
	if err := w.graph.Lifecycle(sub.ID, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the reauthorization by the new leader", func() bool { return reauth() > before })
	for _, r := range replicas {
		if r != leader {
			r.proc.stop(t)
		}
	}
}

// waitLeader waits until exactly one live replica other than gone says on
// /metrics that it manages the subscriptions, and returns it.
func waitLeader(t *testing.T, replicas []*replica, gone *replica, d time.Duration) *replica {
	t.Helper()
	var leader *replica
	waitFor(t, d, "one replica managing the subscriptions", func() bool {
		leader = nil
		n := 0
		for _, r := range replicas {
			if r == gone {
				continue
			}
			if strings.Contains(metricsOf(t, r.admin), "\nm2a_subscriptions_leader 1\n") {
				leader = r
				n++
			}
		}
		return n == 1
	})
	return leader
}

func metricsOf(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return "\n" + string(b)
}

// waitFor polls cond, a state outside this process, until it holds.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pgQueueDrained waits until the PostgreSQL queue holds no job that will
// run.
func pgQueueDrained(t *testing.T, dbURL string, d time.Duration) {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var n int
	waitFor(t, d, "the queue to drain", func() bool {
		err = db.QueryRow(`SELECT count(*) FROM river_job WHERE state IN ('available','running','retryable','scheduled','pending')`).Scan(&n)
		return err == nil && n == 0
	})
}

// countRequests counts the requests Graph received with method on a path
// ending with suffix.
func countRequests(g *graphsim.Server, method, suffix string) int {
	n := 0
	for _, q := range g.Requests() {
		p, _ := url.PathUnescape(q.Path)
		if q.Method == method && strings.HasSuffix(strings.TrimSuffix(p, "/"), suffix) {
			n++
		}
	}
	return n
}
