package bench

import (
	"cmp"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/api"
	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// setup is what a scenario changes before the service starts.
type setup struct {
	graph func(*graphsim.Options)
	// configure and app change the service itself; they need the service
	// in this process.
	configure func(*config.Config)
	app       app.Options
	inProcess bool
	// trustLocalState runs the service with M2A_TRUST_LOCAL_STATE=true:
	// no lookup by key before a job's first create.
	trustLocalState bool
	// databaseURL replaces the SQLite file with this database.
	databaseURL string
	// latency applies the bench's backend latency once the service is
	// ready (start-up itself is measured in the footprint scenario).
	latency bool
}

// service is the service under test, in this process or a child process,
// with the two simulators it talks to.
type service struct {
	graph  *graphsim.Server
	archer *archersim.Server
	// url is the base URL of the service's public listener, adminURL of
	// its admin listener (/readyz, /metrics).
	url, adminURL string
	// pid is the process whose memory is the service's: "self" or the
	// child's pid.
	pid string
	// scope says what else the process holds; empty for the service alone.
	scope string
	// ready is the time from starting the service (and, in this process,
	// the simulators) to its first 200 from /readyz.
	ready    time.Duration
	keyField string
	// dir holds the service's state database.
	dir string
	// alive reports why the service is gone, or nil.
	alive func() error
	stop  func() error
}

// inProcessScope labels figures measured with the service in this process.
const inProcessScope = "service + simulators, one process"

// startService starts the service for one scenario: as a child process
// when the runner has a service command and the scenario needs nothing
// that only an in-process service offers, otherwise in this process.
func (r *runner) startService(ctx context.Context, name string, s setup) (_ *service, err error) {
	var dropAfter func() error
	dir, err := r.stateDir(name)
	if err != nil {
		return nil, err
	}
	m, err := incident.Parse(api.MappingExample)
	if err != nil {
		return nil, fmt.Errorf("example mapping: %w", err)
	}
	if r.databaseURL != "" {
		dbURL, drop, cerr := pgdb.Create(ctx, r.databaseURL, "m2a_bench_"+name)
		if cerr != nil {
			return nil, fmt.Errorf("database for %s: %w", name, cerr)
		}
		defer func() {
			if err != nil {
				_ = drop()
			}
		}()
		s.databaseURL = dbURL
		configure := s.configure
		s.configure = func(c *config.Config) {
			c.DatabaseURL = config.Secret(dbURL)
			if configure != nil {
				configure(c)
			}
		}
		dropAfter = drop
	}
	if s.trustLocalState {
		configure := s.configure
		s.configure = func(c *config.Config) {
			c.TrustLocalState = true
			if configure != nil {
				configure(c)
			}
		}
	}
	var svc *service
	if len(r.serviceCmd) > 0 && !s.inProcess {
		svc, err = r.startChild(ctx, dir, s)
	} else {
		svc, err = startInProcess(ctx, dir, s)
	}
	if err != nil {
		return nil, err
	}
	if dropAfter != nil {
		stop := svc.stop
		svc.stop = func() error { return errors.Join(stop(), dropAfter()) }
	}
	svc.keyField, svc.dir = m.Key.Field, dir
	if s.latency {
		if r.p.GraphLatency > 0 {
			svc.graph.SetFaults(graphsim.Fault{Route: graphsim.RouteAny, Latency: r.p.GraphLatency})
		}
		svc.archer.SetLatency(r.p.ArcherLatency)
	}
	return svc, nil
}

// benchMapping is the example mapping without its campaign, rules and
// acknowledgment sections: the bench's emails are copies of the sandbox's
// samples under new subjects and ids, several carry the same reported
// original (grouping would turn them into updates of one record), one is a
// training simulation (a rule would skip it), and acknowledgments would
// add a Graph request per email to the figures the scenarios measure.
func benchMapping() ([]byte, error) {
	m, err := incident.Parse(api.MappingExample)
	if err != nil {
		return nil, fmt.Errorf("example mapping: %w", err)
	}
	m.Campaign, m.Rules, m.Ack = nil, nil, nil
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("bench mapping: %w", err)
	}
	return b, nil
}

func startInProcess(ctx context.Context, dir string, s setup) (*service, error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	t0 := time.Now()
	mappingYAML, err := benchMapping()
	if err != nil {
		return nil, err
	}
	mapping := filepath.Join(dir, "bench-mapping.yaml")
	if err := os.WriteFile(mapping, mappingYAML, 0o640); err != nil {
		return nil, fmt.Errorf("write mapping: %w", err)
	}
	sb, err := sandbox.Start(sctx, sandbox.Options{
		Dir: dir, MappingFile: mapping, Logger: serviceLogger(), App: s.app, Configure: s.configure, Graph: s.graph,
	})
	if err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	if err := sb.WaitReady(sctx); err != nil {
		_ = sb.Stop()
		return nil, err
	}
	return &service{graph: sb.Graph, archer: sb.Archer, url: "http://" + sb.App.Addr(), adminURL: "http://" + sb.App.AdminAddr(), pid: "self",
		scope: inProcessScope, ready: time.Since(t0), alive: func() error { return nil }, stop: sb.Stop}, nil
}

// startChild serves both simulators here and runs the service command
// with the sandbox's configuration in its environment. The child trusts
// the Graph simulator's certificate through SSL_CERT_FILE, which Go reads
// for its system roots.
func (r *runner) startChild(ctx context.Context, dir string, s setup) (svc *service, err error) {
	arch, err := archersim.New(archersim.Options{VirtualDir: "/RSAArcher", Logger: zerolog.Nop()})
	if err != nil {
		return nil, fmt.Errorf("archer simulator: %w", err)
	}
	archerSrv := httptest.NewServer(arch)
	gopts := graphsim.Options{TenantID: sandbox.TenantID, AppID: sandbox.ClientID,
		ClientSecret: sandbox.ClientSecret, AllowHTTP: true, Logger: zerolog.Nop()}
	if s.graph != nil {
		s.graph(&gopts)
	}
	graph := graphsim.New(gopts)
	graph.AddMailbox(sandbox.Mailbox)
	graphSrv := httptest.NewTLSServer(graph)
	var once sync.Once
	stopSims := func() {
		once.Do(func() {
			graph.Close()
			graphSrv.Close()
			archerSrv.Close()
		})
	}
	defer func() {
		if err != nil {
			stopSims()
		}
	}()
	certFile := filepath.Join(dir, "graphsim.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: graphSrv.Certificate().Raw})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write the simulator's certificate: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	mapping := filepath.Join(dir, "mapping.yaml")
	mappingYAML, err := benchMapping()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(mapping, mappingYAML, 0o640); err != nil {
		return nil, fmt.Errorf("write mapping: %w", err)
	}
	env := childEnv(map[string]string{
		"M2A_LISTEN_ADDR": addr, "M2A_ADMIN_LISTEN_ADDR": adminAddr, "M2A_PUBLIC_URL": "http://" + addr, "M2A_ALLOW_INSECURE_PUBLIC_URL": "true",
		"M2A_ARCHER_ALLOW_HTTP": "true",
		"M2A_TENANT_ID":         sandbox.TenantID, "M2A_CLIENT_ID": sandbox.ClientID, "M2A_CLIENT_SECRET": sandbox.ClientSecret,
		"M2A_GRAPH_BASE_URL": graphSrv.URL + "/v1.0", "M2A_GRAPH_AUTHORITY_HOST": graphSrv.URL + "/",
		"M2A_MAILBOXES": sandbox.Mailbox, "M2A_INTERNAL_DOMAINS": "contoso.com",
		"M2A_ARCHER_URL": archerSrv.URL + "/RSAArcher", "M2A_ARCHER_INSTANCE": "Default",
		"M2A_ARCHER_USERNAME": "mail2archer", "M2A_ARCHER_PASSWORD": "mail2archer-sandbox",
		"M2A_MAPPING_FILE": mapping, "M2A_DATABASE_URL": cmp.Or(s.databaseURL, "sqlite://"+filepath.Join(dir, "mail2archer.db")),
		"M2A_LOG_LEVEL": "info", "M2A_LOG_FORMAT": "json",
		"SSL_CERT_FILE": certFile, "M2A_TRUST_LOCAL_STATE": strconv.FormatBool(s.trustLocalState),
	})
	logFile, err := os.Create(filepath.Join(dir, "service.log"))
	if err != nil {
		return nil, fmt.Errorf("service log: %w", err)
	}
	cmd := exec.Command(r.serviceCmd[0], r.serviceCmd[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, logFile, logFile, dir
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start the service: %w", err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	alive := func() error {
		select {
		case <-exited:
			return fmt.Errorf("the service exited: %v (log: %s)", exitErr, logFile.Name())
		default:
			return nil
		}
	}
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case <-exited:
			var ee *exec.ExitError
			if errors.As(exitErr, &ee) {
				err = fmt.Errorf("the service stopped with %v (log: %s)", exitErr, logFile.Name())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			err = errors.New("the service did not stop within 30 s of SIGTERM and was killed")
		}
		stopSims()
		return err
	}
	if err := waitReadyURL(ctx, "http://"+adminAddr+"/readyz", alive, 30*time.Second); err != nil {
		_ = stop()
		return nil, fmt.Errorf("%w (log: %s)", err, logFile.Name())
	}
	return &service{graph: graph, archer: arch, url: "http://" + addr, adminURL: "http://" + adminAddr, pid: strconv.Itoa(cmd.Process.Pid),
		ready: time.Since(t0), alive: alive, stop: stop}, nil
}

// childEnv is this process's environment without M2A_* and SSL_CERT_*
// variables, plus set.
func childEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "M2A_") && !strings.HasPrefix(kv, "SSL_CERT_") {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

// waitReadyURL polls url until it answers 200, the service is gone or the
// timeout passes.
func waitReadyURL(ctx context.Context, url string, alive func() error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service not ready: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stopService stops the service and its simulators; a shutdown error is
// returned only when the scenario itself succeeded.
func stopService(svc *service, err *error) {
	if serr := svc.stop(); serr != nil && *err == nil {
		*err = fmt.Errorf("stop service: %w", serr)
	}
}

// deliver puts an email into the mailbox's Inbox; Graph notifies the
// service.
func (svc *service) deliver(mime []byte) (string, error) {
	return svc.graph.Deliver(sandbox.Mailbox, "Inbox", mime)
}

// where says how the service ran, for the notes.
func (svc *service) where() string {
	if svc.scope == "" {
		return "the service ran alone in a child process"
	}
	return "the service ran in this process with the simulators and the bench"
}
