package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// graphAnswerLimit is the time within which Graph wants a webhook's answer;
// a slower one counts as a failed delivery.
const graphAnswerLimit = 3 * time.Second

// TestCaddyBalancesReplicas runs the routing of docker-compose.ha.yml
// without Docker: Caddy with the shipped deploy/webhooks.caddy, whose
// upstreams are every address a name resolves to, in front of three
// backends that stand for the replicas. Docker's DNS, which answers the
// compose service name with one address per running replica, is played by
// a small DNS server answering the name with 127.0.0.1, .2 and .3; the
// backends listen on those addresses, on one port, like three containers.
// Only the DNS server's address and the plain-HTTP site are the test's.
//
// Webhooks go round robin to every backend; a stopped backend is skipped
// without a failed answer, within Graph's 3 s, and a restarted one gets
// requests again (Caddy 2.11.4 and later; older releases cannot resend the
// POST, and that part is skipped with a message); every other path or
// method is 404 from Caddy; with no backend left, Caddy fails fast instead
// of letting Graph time out.
func TestCaddyBalancesReplicas(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed: apt-get install -y caddy (the CI installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	ips := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("127.0.0.2"),
		netip.MustParseAddr("127.0.0.3"),
	}
	listeners := listenOnOnePort(t, ips)
	var backends []*replicaBackend
	for i, ln := range listeners {
		backends = append(backends, startReplicaBackend(t, fmt.Sprintf("replica-%d", i+1), ln))
	}
	const name = "replicas.mail2archer.test"
	dns := startReplicaDNS(t, name, ips)
	_, port, err := net.SplitHostPort(listeners[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	px := startBalancingCaddy(ctx, t, bin, map[string]string{
		"M2A_UPSTREAM_HOST":      name,
		"M2A_UPSTREAM_PORT":      port,
		"M2A_UPSTREAM_RESOLVERS": dns.addr(),
	})
	byName := map[string]*replicaBackend{}
	for _, b := range backends {
		byName[b.name] = b
	}
	version, resendsPOST := caddyResendsPOST(bin)
	paths := []string{"/webhooks/graph", "/webhooks/graph/lifecycle"}

	t.Run("round robin", func(t *testing.T) {
		// Consecutive webhooks visit the three replicas in turn, whatever
		// the path, and each receives the request as sent.
		var order []string
		for i := range 12 {
			body := fmt.Sprintf(`{"value":[{"n":%d}]}`, i)
			got := px.postWebhook(ctx, t, paths[i%2], body)
			order = append(order, got)
			if last := byName[got].last(); last != "POST "+paths[i%2]+" "+body {
				t.Errorf("request %d reached %s as %q", i, got, last)
			}
		}
		if len(map[string]bool{order[0]: true, order[1]: true, order[2]: true}) != 3 {
			t.Fatalf("the first three webhooks went to %v, want the three replicas in turn", order[:3])
		}
		for i := range order {
			if order[i] != order[i%3] {
				t.Fatalf("webhooks went to %v, want the replicas in a fixed turn", order)
			}
		}
		if dns.queries.Load() == 0 {
			t.Fatal("Caddy never asked the DNS server for the replicas")
		}
		t.Logf("caddy %s; round robin: %v; %d A queries", version, order, dns.queries.Load())
	})

	t.Run("a stopped replica is skipped", func(t *testing.T) {
		if !resendsPOST {
			t.Skipf("caddy %s answers 502 instead of resending a POST to the next replica after a refused connection; "+
				"Caddy 2.11.4 and later (compose's caddy:2) resend it", version)
		}
		// Every webhook is answered by another replica, within Graph's
		// limit, although the name still resolves to the stopped one and
		// its turn comes up.
		stopped := backends[1]
		stopped.stop()
		answered := map[string]int{}
		var slowest time.Duration
		for i := range 12 {
			start := time.Now()
			got := px.postWebhook(ctx, t, paths[i%2], fmt.Sprintf(`{"after-stop":%d}`, i))
			took := time.Since(start)
			if took >= graphAnswerLimit {
				t.Errorf("webhook %d with %s stopped took %v, more than Graph waits", i, stopped.name, took)
			}
			slowest = max(slowest, took)
			answered[got]++
		}
		if answered[stopped.name] != 0 || answered[backends[0].name] == 0 || answered[backends[2].name] == 0 {
			t.Errorf("with %s stopped, webhooks were answered by %v; want both others and not it", stopped.name, answered)
		}
		t.Logf("with %s stopped: answers from %v, the slowest in %v", stopped.name, answered, slowest.Round(time.Millisecond))

		// Started again on its address, it gets webhooks again, once
		// Caddy's passive health check forgets its failure (5 s).
		stopped.restart(t)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		restarted := time.Now()
		for px.postWebhook(ctx, t, paths[0], `{"after-restart":true}`) != stopped.name {
			select {
			case <-ctx.Done():
				t.Fatalf("%s never got a webhook again after its restart", stopped.name)
			case <-tick.C:
			}
		}
		t.Logf("%s got webhooks again %v after its restart", stopped.name, time.Since(restarted).Round(time.Millisecond))
	})

	t.Run("only POST to the webhooks passes", func(t *testing.T) {
		// Everything else is Caddy's own 404 and reaches no replica.
		before := 0
		for _, b := range backends {
			before += b.count()
		}
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, "/webhooks/graph"},
			{http.MethodPut, "/webhooks/graph"},
			{http.MethodDelete, "/webhooks/graph/lifecycle"},
			{http.MethodPost, "/webhooks/graph/"},
			{http.MethodPost, "/webhooks/graph/other"},
			{http.MethodPost, "/webhooks/graph/lifecycle/x"},
			{http.MethodPost, "/webhooks"},
			{http.MethodPost, "/healthz"},
			{http.MethodGet, "/healthz"},
			{http.MethodPost, "/readyz"},
			{http.MethodGet, "/metrics"},
			{http.MethodPost, "/"},
		} {
			resp, body := px.do(ctx, t, c.method, c.path, "{}")
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Server") != "Caddy" || strings.Contains(body, "replica-") {
				t.Errorf("%s %s: %d, Server %q, body %q; want Caddy's own 404",
					c.method, c.path, resp.StatusCode, resp.Header.Get("Server"), body)
			}
		}
		after := 0
		for _, b := range backends {
			after += b.count()
		}
		if after != before {
			t.Errorf("requests Caddy should answer itself reached the replicas (%d before, %d after)", before, after)
		}
	})

	t.Run("no replica left", func(t *testing.T) {
		// Caddy answers a server error within Graph's limit, so that Graph
		// retries later instead of counting a timeout.
		for _, b := range backends {
			b.stop()
		}
		start := time.Now()
		resp, body := px.do(ctx, t, http.MethodPost, paths[0], "{}")
		took := time.Since(start)
		if resp.StatusCode < 500 || took >= graphAnswerLimit {
			t.Errorf("with every replica stopped: %d %q after %v; want a 5xx within %v", resp.StatusCode, body, took, graphAnswerLimit)
		}
		t.Logf("with every replica stopped: %d after %v", resp.StatusCode, took.Round(time.Millisecond))
	})
}

// listenOnOnePort listens on the same free TCP port on each address.
func listenOnOnePort(t *testing.T, ips []netip.Addr) []net.Listener {
	t.Helper()
	var lastErr error
	for range 20 {
		first, err := net.Listen("tcp", netip.AddrPortFrom(ips[0], 0).String())
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(first.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	t.Skipf("no port free on all of %v (127.0.0.2 and .3 are loopback on Linux only): %v", ips, lastErr)
	return nil
}

// replicaBackend stands for one replica's public listener: it answers 202
// with its name and remembers what it received.
type replicaBackend struct {
	name string
	addr string

	mu   sync.Mutex
	srv  *httptest.Server
	seen []string // "METHOD PATH BODY" of each request
}

func startReplicaBackend(t *testing.T, name string, ln net.Listener) *replicaBackend {
	t.Helper()
	b := &replicaBackend{name: name, addr: ln.Addr().String()}
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

// serve starts answering on ln. Keep-alives are off, so that stopping the
// backend leaves Caddy no pooled connection to it: a request sent on a
// connection that then dies is a different failure, which Caddy cannot
// retry for a POST and Graph's redelivery covers.
func (b *replicaBackend) serve(ln net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		b.mu.Lock()
		b.seen = append(b.seen, r.Method+" "+r.URL.Path+" "+string(body))
		b.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, b.name)
	}))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
}

// stop closes the listener and every connection; stopping twice is fine.
func (b *replicaBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// restart listens again on the backend's address.
func (b *replicaBackend) restart(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatalf("restart %s on %s: %v", b.name, b.addr, err)
	}
	b.serve(ln)
}

func (b *replicaBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

func (b *replicaBackend) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return ""
	}
	return b.seen[len(b.seen)-1]
}

// replicaDNS answers A queries for one name with several IPv4 addresses,
// as Docker's DNS answers a compose service name with one address per
// running replica. Other names get NXDOMAIN, other types of the name an
// empty answer. It answers over UDP and TCP on one port: Caddy 2.6 asks a
// configured resolver over TCP, later releases over UDP.
type replicaDNS struct {
	udp     net.PacketConn
	tcp     net.Listener
	name    string // lower case, without the final dot
	answers [][4]byte
	queries atomic.Int64 // A queries for name
}

func startReplicaDNS(t *testing.T, name string, ips []netip.Addr) *replicaDNS {
	t.Helper()
	d := &replicaDNS{name: strings.ToLower(name)}
	for _, ip := range ips {
		d.answers = append(d.answers, ip.As4())
	}
	for attempt := 0; d.tcp == nil; attempt++ {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err != nil {
			_ = udp.Close()
			if attempt == 20 {
				t.Fatalf("no loopback port free for both UDP and TCP: %v", err)
			}
			continue
		}
		d.udp, d.tcp = udp, tcp
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := d.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := d.respond(buf[:n]); err == nil {
				_, _ = d.udp.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := d.tcp.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.serveStream(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = d.udp.Close()
		_ = d.tcp.Close()
		wg.Wait()
	})
	return d
}

// serveStream answers the queries of one TCP connection, each framed by
// its length in two bytes (RFC 1035, section 4.2.2).
func (d *replicaDNS) serveStream(c net.Conn) {
	defer func() { _ = c.Close() }()
	for {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint16(size[:])
		if n > 1500 {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp, err := d.respond(q)
		if err != nil {
			return
		}
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(framed, resp...)); err != nil {
			return
		}
	}
}

func (d *replicaDNS) addr() string { return d.udp.LocalAddr().String() }

// respond builds the answer to one query (RFC 1035, section 4.1): the
// query's id and question, then one A record per address.
func (d *replicaDNS) respond(q []byte) ([]byte, error) {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil, errors.New("not a query with one question")
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil, errors.New("question name runs past the packet")
		}
		n := int(q[i])
		if n == 0 {
			i++
			break
		}
		if n&0xC0 != 0 || i+1+n > len(q) || len(labels) == 127 {
			return nil, errors.New("malformed question name")
		}
		labels = append(labels, string(q[i+1:i+1+n]))
		i += 1 + n
	}
	if i+4 > len(q) {
		return nil, errors.New("question without type and class")
	}
	qtype, qclass := binary.BigEndian.Uint16(q[i:]), binary.BigEndian.Uint16(q[i+2:])
	question := q[12 : i+4]

	rcode, answers := byte(0), 0
	switch {
	case strings.ToLower(strings.Join(labels, ".")) != d.name:
		rcode = 3 // NXDOMAIN
	case qtype == 1 && qclass == 1: // A, IN
		answers = len(d.answers)
		d.queries.Add(1)
	}
	resp := make([]byte, 12, 12+len(question)+16*answers)
	copy(resp, q[:2])                             // id
	resp[2] = 0x80 | q[2]&0x78 | 0x04 | q[2]&0x01 // response, opcode, authoritative, recursion desired
	resp[3] = 0x80 | rcode                        // recursion available
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(answers))
	resp = append(resp, question...)
	for _, a := range d.answers[:answers] {
		resp = append(resp,
			0xC0, 12, // the name: a pointer to the question's
			0, 1, 0, 1, // A, IN
			0, 0, 0, 5, // TTL 5 s
			0, 4, a[0], a[1], a[2], a[3])
	}
	return resp, nil
}

// balancingCaddy is a running Caddy serving the shipped routing over plain
// HTTP on a loopback port.
type balancingCaddy struct {
	url    string
	client *http.Client
}

// startBalancingCaddy runs Caddy with deploy/webhooks.caddy imported into a
// plain-HTTP site on a free loopback port, with env added to its
// environment; it is stopped when the test ends.
func startBalancingCaddy(ctx context.Context, t *testing.T, bin string, env map[string]string) *balancingCaddy {
	t.Helper()
	dir := t.TempDir()
	routing, err := filepath.Abs("../../deploy/webhooks.caddy")
	if err != nil {
		t.Fatal(err)
	}
	px := &balancingCaddy{
		url:    "http://127.0.0.1:" + strconv.Itoa(freePort(t)),
		client: &http.Client{Timeout: 10 * time.Second},
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\n\n%s {\n\timport %s\n}\n", px.url, routing)
	if err := os.WriteFile(caddyfile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	cmd := exec.CommandContext(runCtx, bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		stop()
		t.Fatalf("start caddy: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		px.client.CloseIdleConnections()
		stop()
		<-exited
		if t.Failed() {
			t.Logf("caddy's log:\n%s", log.String())
		}
	})

	// Caddy is up once it answers its own 404.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, px.url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := px.client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.Header.Get("Server") == "Caddy" {
				return px
			}
		}
		select {
		case <-exited:
			t.Fatalf("caddy exited before it answered: %v\n%s", waitErr, log.String())
		case <-ctx.Done():
			t.Fatalf("caddy did not answer on %s: %v (last: %v)", px.url, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// do sends one request through Caddy and returns the response and its body.
func (px *balancingCaddy) do(ctx context.Context, t *testing.T, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, px.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := px.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s through caddy: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		t.Fatalf("%s %s through caddy: %v", method, path, err)
	}
	return resp, string(b)
}

// postWebhook posts body to path through Caddy, requires the replica's 202
// and returns the name of the replica that answered.
func (px *balancingCaddy) postWebhook(ctx context.Context, t *testing.T, path, body string) string {
	t.Helper()
	resp, got := px.do(ctx, t, http.MethodPost, path, body)
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(got, "replica-") {
		t.Fatalf("POST %s through caddy: %d %q, want a replica's 202", path, resp.StatusCode, got)
	}
	return got
}

// caddyResendsPOST returns the version of the caddy binary and whether it
// resends a request with a body to the next upstream after a refused
// connection, which Caddy does from 2.11.4 on. The version comes from
// `caddy version`, or from `caddy build-info` for a build without a
// version stamp; an unknown version is assumed recent.
func caddyResendsPOST(bin string) (string, bool) {
	var candidates []string
	if out, err := exec.Command(bin, "version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			candidates = append(candidates, f[0])
		}
	}
	if out, err := exec.Command(bin, "build-info").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == "github.com/caddyserver/caddy/v2" {
				candidates = append(candidates, f[2])
			}
		}
	}
	for _, c := range candidates {
		var v [3]int
		core, _, _ := strings.Cut(strings.TrimPrefix(c, "v"), "-")
		parts := strings.Split(core, ".")
		if len(parts) != 3 {
			continue
		}
		ok := true
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			ok = ok && err == nil
			v[i] = n
		}
		if ok {
			return c, v[0] > 2 || v[0] == 2 && (v[1] > 11 || v[1] == 11 && v[2] >= 4)
		}
	}
	return "(version unknown)", true
}
