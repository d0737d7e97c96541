package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/api"
	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

const (
	testTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	testClient = "24d3b144-21ae-4080-943f-7067b395b913"
	testMbox   = "phish@contoso.com"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary compiles the command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "m2a-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mail2archer")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

// world is the simulated tenant and Archer a binary under test talks to.
type world struct {
	graph  *graphsim.Server
	archer *archersim.Server
	env    []string
	dir    string
	addr   string // the public listener
	admin  string // the admin listener
	// last is the process started last, whose log a failed wait shows.
	last atomic.Pointer[proc]
}

func newWorld(t *testing.T) *world { t.Helper(); return newWorldWith(t, nil) }

// newWorldWith is newWorld with the Graph simulator's options changed by
// graphOpts first.
func newWorldWith(t *testing.T, graphOpts func(*graphsim.Options)) *world {
	t.Helper()
	dir := t.TempDir()
	gopts := graphsim.Options{TenantID: testTenant, AppID: testClient, ClientSecret: "s3cret", AllowHTTP: true,
		Logger: zerolog.Nop()}
	if graphOpts != nil {
		graphOpts(&gopts)
	}
	g := graphsim.New(gopts)
	g.AddMailbox(testMbox)
	gs := httptest.NewTLSServer(g)
	t.Cleanup(func() { g.Close(); gs.Close() })
	a, err := archersim.New(archersim.Options{VirtualDir: "/RSAArcher", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	as := httptest.NewServer(a)
	t.Cleanup(as.Close)

	// The binary trusts the Graph simulator's certificate through
	// SSL_CERT_FILE, as it would trust a corporate CA.
	certFile := filepath.Join(dir, "graphsim.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: gs.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	mapping := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mapping, api.MappingExample, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, admin := freeAddr(t), freeAddr(t)
	return &world{graph: g, archer: a, dir: dir, addr: addr, admin: admin, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"SSL_CERT_FILE=" + certFile,
		"M2A_TENANT_ID=" + testTenant,
		"M2A_CLIENT_ID=" + testClient,
		"M2A_CLIENT_SECRET=s3cret",
		"M2A_GRAPH_BASE_URL=" + gs.URL + "/v1.0",
		"M2A_GRAPH_AUTHORITY_HOST=" + gs.URL + "/",
		"M2A_MAILBOXES=" + testMbox,
		"M2A_PUBLIC_URL=http://" + addr,
		"M2A_ALLOW_INSECURE_PUBLIC_URL=true",
		"M2A_LISTEN_ADDR=" + addr,
		"M2A_ADMIN_LISTEN_ADDR=" + admin,
		"M2A_ARCHER_URL=" + as.URL + "/RSAArcher",
		"M2A_ARCHER_ALLOW_HTTP=true",
		"M2A_ARCHER_INSTANCE=Default",
		"M2A_ARCHER_USERNAME=mail2archer",
		"M2A_ARCHER_PASSWORD=mail2archer-sandbox",
		"M2A_MAPPING_FILE=" + mapping,
		"M2A_DATABASE_URL=sqlite://./state/m2a.db",
		"M2A_LOG_FORMAT=json",
	}}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
	// exited is closed when the process has exited.
	exited chan struct{}
}

func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// start runs the binary and waits until it reports ready on /readyz (the
// admin listener).
func (w *world) start(t *testing.T, extraEnv ...string) *proc {
	t.Helper()
	return w.startAt(t, w.admin, extraEnv...)
}

// startAt is start for a process whose admin listener is admin (a replica
// of its own, with M2A_ADMIN_LISTEN_ADDR in extraEnv).
func (w *world) startAt(t *testing.T, admin string, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(buildBinary(t), "serve")
	cmd.Dir = w.dir
	cmd.Env = append(append([]string{}, w.env...), extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), exited: make(chan struct{})}
	w.last.Store(p)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		err := cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if get(t, "http://"+admin+"/readyz", envValue(cmd.Env, "M2A_ADMIN_TOKEN")) == http.StatusOK {
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("service exited before it was ready: %v\n%s", err, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready after 30 s:\n%s", p.Logs())
		}
	}
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30 s of SIGTERM")
	}
}

func (w *world) incidents() []archersim.Record {
	var out []archersim.Record
	for _, r := range w.archer.Records() {
		if r.LevelID == 232 {
			out = append(out, r)
		}
	}
	return out
}

func (w *world) waitIncidents(t *testing.T, n int, d time.Duration) []archersim.Record {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		recs := w.incidents()
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d incidents after %s; the service's log ends:\n%s", len(recs), n, d, w.lastLog(60))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastLog returns the last n lines of the log of the process started last.
func (w *world) lastLog(n int) string {
	p := w.last.Load()
	if p == nil {
		return "(no process started)"
	}
	lines := strings.Split(strings.TrimSpace(p.Logs()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func testEmail(i int) []byte {
	return []byte(fmt.Sprintf("From: \"Billing\" <billing@fabrikam-pay.example>\r\nTo: %s\r\n"+
		"Subject: Invoice %04d overdue\r\nMessage-ID: <inv-%04d@fabrikam-pay.example>\r\n"+
		"Date: Fri, 27 Nov 2026 09:30:00 +0000\r\nContent-Type: text/plain\r\n\r\n"+
		"Pay at https://fabrikam-pay.example/i/%d today.\r\n", testMbox, i, i, i))
}

// TestAcceptedNotificationsSurviveSIGKILL delivers emails, kills the process
// right after Graph's notifications were answered, restarts it, and finds
// exactly one incident per email.
func TestAcceptedNotificationsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	const n = 20
	// Slow Archer down so that most jobs are still queued at the kill.
	w.archer.SetLatency(200 * time.Millisecond)
	for i := 0; i < n; i++ {
		if _, err := w.graph.Deliver(testMbox, "Inbox", testEmail(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.graph.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range w.graph.Deliveries() {
		if d.Err != "" || d.Status != http.StatusAccepted {
			t.Fatalf("a delivery was not accepted: %+v", d)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	before := len(w.incidents())
	w.archer.SetLatency(0)

	p2 := w.start(t)
	recs := w.waitIncidents(t, n, 60*time.Second)
	t.Logf("%d incidents before the kill, %d after the restart", before, len(recs))
	queueDrained(t, w, 30*time.Second) // a duplicate would be there now
	if got := len(w.incidents()); got != n {
		t.Errorf("%d incidents for %d emails", got, n)
	}
	keys := map[string]bool{}
	for _, r := range w.incidents() {
		k := fmt.Sprint(r.Fields["Reported Email Key"])
		if keys[k] {
			t.Errorf("two incidents for %s", k)
		}
		keys[k] = true
	}
	p2.stop(t)
	if !strings.Contains(p2.Logs(), "stopped cleanly") {
		t.Errorf("no clean stop logged:\n%s", p2.Logs())
	}
}

// TestCrashBetweenCreateAndCommitMakesNoSecondIncident kills the process
// right after Archer created the record, before the id is stored; after
// the restart the record is found by its key and adopted.
func TestCrashBetweenCreateAndCommitMakesNoSecondIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	// Archer stores the record, then the service is killed before it reads
	// the answer, let alone stores the id.
	w.archer.OnCreate(func(int64) {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
	if _, err := w.graph.Deliver(testMbox, "Inbox", testEmail(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the hook did not kill the service:\n%s", p.Logs())
	}
	if got := len(w.incidents()); got != 1 {
		t.Fatalf("%d incidents at the crash, want the 1 created", got)
	}
	w.archer.OnCreate(nil)
	p2 := w.start(t)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p2.Logs(), `"outcome":"adopted"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the record was not adopted:\n%s", p2.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(w.incidents()); got != 1 {
		t.Errorf("%d incidents after the restart, want 1", got)
	}
	p2.stop(t)
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "mail2archer ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"nonsense"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown: %d %q", code, errOut.String())
	}
}

func TestHealthcheck(t *testing.T) {
	w := newWorld(t)
	w.start(t)
	check := func(addr string) int {
		cmd := exec.Command(buildBinary(t), "healthcheck")
		cmd.Env = []string{"M2A_LISTEN_ADDR=" + addr}
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			t.Fatal(err)
		}
		return 0
	}
	if code := check(w.addr); code != 0 {
		t.Errorf("healthy service: exit %d", code)
	}
	if code := check("127.0.0.1:1"); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}

// TestOperatorCommands runs jobs list, replay and subscriptions list
// against the state a running service keeps.
func TestOperatorCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	id, err := w.graph.Deliver(testMbox, "Inbox", testEmail(7))
	if err != nil {
		t.Fatal(err)
	}
	w.waitIncidents(t, 1, 20*time.Second)
	msg, _ := w.graph.Message(testMbox, id)
	run := func(args ...string) string {
		cmd := exec.Command(buildBinary(t), args...)
		cmd.Dir = w.dir
		cmd.Env = w.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("jobs", "list", "--state", "completed"); !strings.Contains(out, "process_message") {
		t.Errorf("jobs list:\n%s", out)
	}
	if out := run("subscriptions", "list"); !strings.Contains(out, testMbox) {
		t.Errorf("subscriptions list:\n%s", out)
	}
	// A replay while the record exists adopts it: still one incident.
	if out := run("replay", "--mailbox", testMbox, "--message", msg.ImmutableID); !strings.Contains(out, "queued job") {
		t.Errorf("replay:\n%s", out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.Logs(), `"incident recorded"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not run:\n%s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(w.incidents()); got != 1 {
		t.Errorf("%d incidents after a replay, want 1", got)
	}
	p.stop(t)
}

// get answers the status of a GET, with an optional bearer token; 0 when
// nothing answers.
func get(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// runFails runs serve with env and expects it to refuse to start, saying
// each of want.
func (w *world) runFails(t *testing.T, env []string, want ...string) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), "serve")
	cmd.Dir = w.dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("serve started (err %v):\n%s", err, out)
	}
	for _, s := range want {
		if !strings.Contains(string(out), s) {
			t.Errorf("the refusal does not say %q:\n%s", s, out)
		}
	}
}

// with returns env with the given KEY=VALUE entries replacing or adding.
func with(env []string, kv ...string) []string {
	out := append([]string{}, env...)
	for _, e := range kv {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, x := range out {
			if strings.HasPrefix(x, k+"=") {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

func TestOnlyTheWebhooksAreOnThePublicListener(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	for _, path := range []string{"/metrics", "/readyz", "/", "/debug/pprof/"} {
		if code := get(t, "http://"+w.addr+path, ""); code != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", path, code)
		}
	}
	if code := get(t, "http://"+w.addr+"/healthz", ""); code != http.StatusOK {
		t.Errorf("public /healthz: %d", code)
	}
	for _, path := range []string{"/metrics", "/readyz"} {
		if code := get(t, "http://"+w.admin+path, ""); code != http.StatusOK {
			t.Errorf("admin %s: %d, want 200", path, code)
		}
	}
	p.stop(t)
}

func TestAnExposedAdminListenerRequiresItsToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	_, port, _ := net.SplitHostPort(w.admin)
	exposed := with(w.env, "M2A_ADMIN_LISTEN_ADDR=0.0.0.0:"+port)
	w.runFails(t, exposed, "M2A_ADMIN_TOKEN", "not loopback")

	const token = "7d2c9f0e5b8a41c3a6e1f4d9b0c2e7a5"
	w.env = with(exposed, "M2A_ADMIN_TOKEN="+token)
	p := w.start(t)
	for _, path := range []string{"/metrics", "/readyz"} {
		if code := get(t, "http://"+w.admin+path, ""); code != http.StatusUnauthorized {
			t.Errorf("admin %s without the token: %d, want 401", path, code)
		}
		if code := get(t, "http://"+w.admin+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("admin %s with a wrong token: %d, want 401", path, code)
		}
		if code := get(t, "http://"+w.admin+path, token); code != http.StatusOK {
			t.Errorf("admin %s with the token: %d, want 200", path, code)
		}
	}
	p.stop(t)
}

func TestASecondServiceOnTheSameDatabaseRefusesToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	second := with(w.env, "M2A_LISTEN_ADDR="+freeAddr(t), "M2A_ADMIN_LISTEN_ADDR="+freeAddr(t))
	w.runFails(t, second, "in use by another mail2archer service", fmt.Sprintf("pid %d", p.cmd.Process.Pid), "stop it first")
	// The first keeps working.
	if _, err := w.graph.Deliver(testMbox, "Inbox", testEmail(3)); err != nil {
		t.Fatal(err)
	}
	w.waitIncidents(t, 1, 20*time.Second)
	p.stop(t)
}

func TestConfigurationMistakesRefuseTheStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	w.runFails(t, with(w.env, "M2A_WRITEBACK_MOVETO=Processed"),
		"M2A_WRITEBACK_MOVETO is not a setting of mail2archer; did you mean M2A_WRITEBACK_MOVE_TO?")
	var noSwitch []string
	for _, e := range w.env {
		if !strings.HasPrefix(e, "M2A_ARCHER_ALLOW_HTTP=") {
			noSwitch = append(noSwitch, e)
		}
	}
	w.runFails(t, noSwitch, "M2A_ARCHER_URL", "M2A_ARCHER_ALLOW_HTTP")
}

// envValue returns the value of name in env, or "".
func envValue(env []string, name string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestASoftMemoryLimitAppliesByDefault reads the runtime's limit from
// /metrics: 80 MiB unless GOMEMLIMIT says otherwise.
func TestASoftMemoryLimitAppliesByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "go_memlimit_bytes 83886080\n"},
		{[]string{"GOMEMLIMIT=200MiB"}, "go_memlimit_bytes 209715200\n"},
	} {
		w := newWorld(t)
		p := w.start(t, tc.env...)
		req, err := http.NewRequest(http.MethodGet, "http://"+w.admin+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok := envValue(w.env, "M2A_ADMIN_TOKEN"); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("with %v: /metrics lacks %q", tc.env, strings.TrimSpace(tc.want))
		}
		p.stop(t)
	}
}

// TestCrashBetweenACampaignUpdateAndItsCommitCountsOnce kills the service
// the moment Archer has applied a later report's update to the campaign's
// record, before the service stores it. After the restart the record still
// counts each report once.
func TestCrashBetweenACampaignUpdateAndItsCommitCountsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	phish := testEmail(7)
	report := func(who string) []byte {
		t.Helper()
		r, err := sandbox.WrapAsReport(phish, who, time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := w.graph.Deliver(testMbox, "Inbox", report("alice@contoso.com")); err != nil {
		t.Fatal(err)
	}
	w.waitIncidents(t, 1, 30*time.Second)
	queueDrained(t, w, 30*time.Second)

	w.archer.OnUpdate(func(int64) {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
	if _, err := w.graph.Deliver(testMbox, "Inbox", report("bob@contoso.com")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the hook did not kill the service:\n%s", p.Logs())
	}
	w.archer.OnUpdate(nil)
	if got := fmt.Sprint(w.incidents()[0].Fields["Number of Reports"]); got != "2" {
		t.Fatalf("the update Archer applied before the crash counts %s reports, want 2", got)
	}
	p2 := w.start(t)
	queueDrained(t, w, 60*time.Second)
	recs := w.incidents()
	if len(recs) != 1 {
		t.Fatalf("%d incidents for one phish", len(recs))
	}
	if got := fmt.Sprint(recs[0].Fields["Number of Reports"]); got != "2" {
		t.Errorf("after the restart the record counts %s reports, want 2", got)
	}
	if n := strings.Count(fmt.Sprint(recs[0].Fields["Reporters"]), "@contoso.com"); n != 2 {
		t.Errorf("%d reporters listed, want 2: %v", n, recs[0].Fields["Reporters"])
	}
	p2.stop(t)
}
