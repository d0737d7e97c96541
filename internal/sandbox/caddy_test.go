package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// TestThroughCaddyOverHTTPS runs the deployment shape of docker-compose.yml
// without Docker: Caddy terminates HTTPS with its internal CA on a loopback
// port and routes with the shipped deploy/webhooks.caddy; the Graph
// simulator, trusting only that CA and refusing http:// notification URLs,
// creates the subscription and delivers the notifications through Caddy.
// Nothing but the two webhook paths passes: /metrics, /readyz and every
// other path are 404 from Caddy.
func TestThroughCaddyOverHTTPS(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed: apt-get install -y caddy (the CI installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	servicePort := freePort(t)
	px := startCaddy(ctx, t, bin, servicePort)

	sb := start(t, Options{
		ListenAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(servicePort)),
		Configure: func(c *config.Config) {
			// Archer's simulator speaks http, which this flag also allows;
			// the public URL itself is https.
			c.PublicURL = px.url
		},
		Graph: func(o *graphsim.Options) {
			o.HTTPClient = px.client
			o.AllowHTTP = false // like Graph: https notification URLs only
		},
	})

	// Stop Caddy before the service, as compose stops the proxy before
	// what it depends on: the service's shutdown then has no proxy
	// connections to wait for.
	t.Cleanup(px.stop)

	subs := sb.Graph.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions in Graph, want 1: %+v", len(subs), subs)
	}
	webhook, lifecycle := px.url+"/webhooks/graph", px.url+"/webhooks/graph/lifecycle"
	if subs[0].NotificationURL != webhook || subs[0].LifecycleNotificationURL != lifecycle {
		t.Fatalf("subscription URLs %q and %q, want %q and %q",
			subs[0].NotificationURL, subs[0].LifecycleNotificationURL, webhook, lifecycle)
	}

	samples := Samples()
	if len(samples) == 0 {
		t.Fatal("no samples")
	}
	for _, s := range samples {
		if _, err := sb.Deliver(s.MIME); err != nil {
			t.Fatalf("deliver %s: %v", s.Name, err)
		}
	}
	// Each report lands, on a record of its own or on its campaign's,
	// but the simulation a rule skips.
	recs, err := sb.WaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := totalReports(recs); n != len(samples)-1 {
		t.Errorf("%d reports in Archer for %d emails, one of them skipped", n, len(samples))
	}
	if err := sb.Graph.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}

	// Every notification went to Caddy's https address, and Caddy passed
	// each one to the service, which acknowledged it.
	delivered := map[string]bool{}
	for _, a := range sb.Graph.Deliveries() {
		if a.URL != webhook {
			t.Errorf("delivery to %q, want %q", a.URL, webhook)
		}
		switch {
		case a.Delivered:
			ids, err := notifiedIDs(a.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				delivered[id] = true
			}
		case a.Status != 0:
			t.Errorf("delivery attempt %d to %s answered %d", a.Attempt, a.URL, a.Status)
		default:
			t.Logf("delivery attempt %d to %s failed and was retried: %s", a.Attempt, a.URL, a.Err)
		}
		if a.Dropped {
			t.Errorf("a notification batch to %s was dropped: %s", a.URL, a.Err)
		}
	}
	if len(delivered) < len(samples) {
		t.Errorf("notifications for %d messages delivered through Caddy, want %d", len(delivered), len(samples))
	}

	// The service answered the two validation handshakes and accepted the
	// notifications; its metrics are read on its admin listener, which
	// Caddy does not forward.
	metrics := adminGet(t, sb, "/metrics")
	if hs := metricSum(metrics, "m2a_validation_handshakes_total"); hs < 2 {
		t.Errorf("m2a_validation_handshakes_total = %v, want at least 2 (notification and lifecycle URL)", hs)
	}
	if acc := metricSum(metrics, "m2a_notifications_accepted_total"); acc < float64(len(samples)) {
		t.Errorf("m2a_notifications_accepted_total = %v, want at least %d", acc, len(samples))
	}
	t.Logf("%d incidents; %d delivery attempts through %s for %d messages; %v handshakes and %v notifications accepted by the service",
		len(recs), len(sb.Graph.Deliveries()), px.url, len(delivered),
		metricSum(metrics, "m2a_validation_handshakes_total"), metricSum(metrics, "m2a_notifications_accepted_total"))

	// Through Caddy, everything but the webhooks is 404, answered by
	// Caddy itself.
	for _, path := range []string{"/metrics", "/readyz", "/healthz", "/", "/webhooks/graph", "/webhooks/graph/other", "/debug/pprof/"} {
		body, resp := px.get(ctx, t, path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s through Caddy: %d %s, want 404", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Server"); got != "Caddy" {
			t.Errorf("GET %s: Server header %q, want Caddy", path, got)
		}
		if strings.Contains(body, "m2a_") || strings.Contains(body, "components") {
			t.Errorf("GET %s through Caddy leaked the service's answer: %s", path, body)
		}
	}
}

// adminGet reads path on the service's admin listener.
func adminGet(t *testing.T, sb *Sandbox, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + sb.App.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s on the admin listener: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// caddyProxy is a running Caddy in front of the service.
type caddyProxy struct {
	url    string       // https://127.0.0.1:port
	client *http.Client // trusts only Caddy's internal CA
	root   *x509.Certificate
	log    *syncBuffer
	stop   func() // stops Caddy once; later calls do nothing
	once   sync.Once
}

// startCaddy runs Caddy with its internal CA on a free loopback port in
// front of 127.0.0.1:servicePort. Its state (the CA) lives in a temporary
// directory; it is stopped when the test ends.
func startCaddy(ctx context.Context, t *testing.T, bin string, servicePort int) *caddyProxy {
	t.Helper()
	dir := t.TempDir()
	httpsPort, httpPort := freePort(t), freePort(t)
	px := &caddyProxy{url: "https://127.0.0.1:" + strconv.Itoa(httpsPort), log: &syncBuffer{}}
	// The site's routing is the shipped file; only the global options and
	// the certificate (Caddy's internal CA instead of a public one) are the
	// test's.
	routing, err := filepath.Abs("../../deploy/webhooks.caddy")
	if err != nil {
		t.Fatal(err)
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	conf := fmt.Sprintf(`{
	admin off
	http_port %d
	https_port %d
	auto_https disable_redirects
	skip_install_trust
}

%s {
	tls internal
	import %s
}
`, httpPort, httpsPort, px.url, routing)
	if err := os.WriteFile(caddyfile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	// Caddy's lifetime has its own bound so that the cleanups, not ctx,
	// decide when it stops: px.stop interrupts it and kills it 5 s later.
	runCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	cmd := exec.CommandContext(runCtx, bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	dataHome := filepath.Join(dir, "data")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dataHome, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"M2A_UPSTREAM_HOST=127.0.0.1", "M2A_UPSTREAM_PORT="+strconv.Itoa(servicePort))
	cmd.Stdout, cmd.Stderr = px.log, px.log
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
	px.stop = func() {
		px.once.Do(func() {
			// Idle keep-alive connections would hold up Caddy's graceful
			// shutdown.
			if px.client != nil {
				px.client.CloseIdleConnections()
			}
			stop()
			<-exited
			if t.Failed() {
				t.Logf("caddy's log:\n%s", px.log.String())
			}
		})
	}
	t.Cleanup(px.stop)

	// until polls cond until it holds, Caddy exits or ctx ends. The
	// cleanup above prints Caddy's log when the test failed.
	until := func(what string, cond func() error) {
		t.Helper()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			err := cond()
			if err == nil {
				return
			}
			select {
			case <-exited:
				t.Fatalf("caddy exited before %s: %v", what, waitErr)
			case <-ctx.Done():
				t.Fatalf("%s: %v (last: %v)", what, ctx.Err(), err)
			case <-tick.C:
			}
		}
	}

	// Caddy writes its root certificate when its internal CA starts.
	rootFile := filepath.Join(dataHome, "caddy", "pki", "authorities", "local", "root.crt")
	until("its root certificate appeared", func() error {
		root, err := readCert(rootFile)
		px.root = root
		return err
	})
	pool := x509.NewCertPool()
	pool.AddCert(px.root)
	px.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		Timeout:   10 * time.Second,
	}
	// Then it answers over TLS with a certificate for 127.0.0.1 (its own
	// 404 for a path it does not forward).
	until("it answered over https", func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, px.url+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := px.client.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	return px
}

// get fetches path through Caddy with the client trusting its CA and
// checks that the connection was verified against Caddy's root.
func (px *caddyProxy) get(ctx context.Context, t *testing.T, path string) (string, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, px.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := px.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s through caddy: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("GET %s through caddy: %v", path, err)
	}
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatalf("GET %s: not a verified TLS connection", path)
	}
	chain := resp.TLS.VerifiedChains[0]
	if !chain[len(chain)-1].Equal(px.root) {
		t.Errorf("GET %s: chain ends in %q, not Caddy's root", path, chain[len(chain)-1].Subject)
	}
	return string(body), resp
}

// readCert reads one PEM certificate.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate (yet)", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// notifiedIDs returns the message ids in a notification batch.
func notifiedIDs(body []byte) ([]string, error) {
	var batch struct {
		Value []struct {
			ResourceData struct {
				ID string `json:"id"`
			} `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		return nil, fmt.Errorf("notification batch: %w", err)
	}
	var ids []string
	for _, n := range batch.Value {
		if n.ResourceData.ID == "" {
			return nil, errors.New("notification without resourceData.id")
		}
		ids = append(ids, n.ResourceData.ID)
	}
	return ids, nil
}

// metricSum adds up every sample of a metric in the Prometheus text format.
func metricSum(text, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams and
// the test's readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
