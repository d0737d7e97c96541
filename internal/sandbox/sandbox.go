// Package sandbox runs the real service against the Graph and Archer
// simulators on this machine: `mail2archer-sandbox`, the end-to-end tests
// and the benchmarks all start it. Nothing in it needs the internet.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/api"
	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// Fixed identities of the sandbox's tenant and application.
const (
	TenantID     = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	ClientID     = "24d3b144-21ae-4080-943f-7067b395b913"
	ClientSecret = "sandbox-client-secret"
	Mailbox      = "phish@contoso.com"
)

// Options configures a sandbox. Dir is required.
type Options struct {
	// Dir holds the state database and, unless MappingFile is set, a copy
	// of the example mapping.
	Dir string
	// MappingFile is the mapping to use; default the example mapping.
	MappingFile string
	// Fixture is the simulated Archer's schema; default archersim's.
	Fixture *archersim.Fixture
	// ListenAddr, AdminAddr, GraphAddr and ArcherAddr are where the
	// service's two listeners and the two simulators listen; default
	// 127.0.0.1 on a free port.
	ListenAddr, AdminAddr, GraphAddr, ArcherAddr string
	// Logger receives the service's logs.
	Logger zerolog.Logger
	// App replaces parts of the service (tests).
	App app.Options
	// Configure changes the configuration before the service starts.
	Configure func(*config.Config)
	// Graph changes the Graph simulator's options before it starts.
	Graph func(*graphsim.Options)
	// Archer changes the Archer simulator's options before it starts.
	Archer func(*archersim.Options)
	// ArcherSetup, when set, is called with the Archer simulator before the
	// service starts (to switch its faults on).
	ArcherSetup func(*archersim.Server)
	// ArcherStopped starts the service while the Archer simulator does not
	// answer (its address is reserved, nothing listens); StartArcher
	// brings it up.
	ArcherStopped bool
	// Simulators, when set, is a sandbox whose Graph and Archer simulators
	// this one uses instead of starting its own (Fixture, Graph, Archer,
	// ArcherSetup, ArcherStopped, GraphAddr and ArcherAddr are then
	// ignored): another service on the same mailbox and Archer, such as
	// one started on a copy of the first's state after its StopService.
	// Stop leaves them running; they stop with the sandbox that started
	// them, and StopArcher and StartArcher act on that sandbox's server.
	Simulators *Sandbox
}

// Sandbox is a running service with its two simulators.
type Sandbox struct {
	Graph     *graphsim.Server
	GraphURL  string
	Archer    *archersim.Server
	ArcherURL string
	Config    *config.Config
	App       *app.App

	graphSrv  *httptest.Server
	archerSrv *httptest.Server
	// sims is Options.Simulators, the owner of the simulators; nil when
	// this sandbox started its own.
	sims   *Sandbox
	cancel context.CancelFunc
	done   chan error
}

// Start starts the simulators and the service and returns once the service
// serves. The caller must Stop it.
func Start(ctx context.Context, opts Options) (_ *Sandbox, err error) {
	if opts.Dir == "" {
		return nil, errors.New("sandbox: a state directory is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	sb := &Sandbox{}
	defer func() {
		if err != nil {
			sb.stopSimulators()
		}
	}()

	if s := opts.Simulators; s != nil {
		sb.sims = s
		sb.Graph, sb.GraphURL, sb.graphSrv = s.Graph, s.GraphURL, s.graphSrv
		sb.Archer, sb.ArcherURL = s.Archer, s.ArcherURL
	} else {
		// Archer.
		aopts := archersim.Options{VirtualDir: "/RSAArcher", Fixture: opts.Fixture, Logger: opts.Logger.With().Str("component", "archersim").Logger()}
		if opts.Archer != nil {
			opts.Archer(&aopts)
		}
		sb.Archer, err = archersim.New(aopts)
		if err != nil {
			return nil, fmt.Errorf("sandbox: archer simulator: %w", err)
		}
		if opts.ArcherSetup != nil {
			opts.ArcherSetup(sb.Archer)
		}
		sb.archerSrv, err = serve(sb.Archer, opts.ArcherAddr, false)
		if err != nil {
			return nil, fmt.Errorf("sandbox: archer simulator: %w", err)
		}
		sb.ArcherURL = sb.archerSrv.URL
		if opts.ArcherStopped {
			sb.StopArcher()
		}
	}

	// The service's listener first: Graph needs its address.
	ln, err := net.Listen("tcp", orLoopback(opts.ListenAddr))
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen: %w", err)
	}
	serviceURL := "http://" + ln.Addr().String()
	adminLn, err := net.Listen("tcp", orLoopback(opts.AdminAddr))
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("sandbox: admin listen: %w", err)
	}
	closeListeners := func() { _ = ln.Close(); _ = adminLn.Close() }

	if sb.sims == nil {
		// Graph, over TLS: the credential code insists on an https authority.
		gopts := graphsim.Options{TenantID: TenantID, AppID: ClientID, ClientSecret: ClientSecret, AllowHTTP: true,
			Logger: opts.Logger.With().Str("component", "graphsim").Logger()}
		if opts.Graph != nil {
			opts.Graph(&gopts)
		}
		sb.Graph = graphsim.New(gopts)
		sb.Graph.AddMailbox(Mailbox)
		sb.graphSrv, err = serve(sb.Graph, opts.GraphAddr, true)
		if err != nil {
			closeListeners()
			return nil, fmt.Errorf("sandbox: graph simulator: %w", err)
		}
		sb.GraphURL = sb.graphSrv.URL
	}

	mapping := opts.MappingFile
	if mapping == "" {
		mapping = filepath.Join(opts.Dir, "mapping.yaml")
		if err := os.WriteFile(mapping, api.MappingExample, 0o640); err != nil {
			closeListeners()
			return nil, fmt.Errorf("sandbox: write mapping: %w", err)
		}
	}
	cfg := config.Defaults()
	cfg.ListenAddr = ln.Addr().String()
	cfg.AdminListenAddr = adminLn.Addr().String()
	cfg.PublicURL = serviceURL
	cfg.AllowInsecurePublicURL = true
	cfg.TenantID = TenantID
	cfg.ClientID = ClientID
	cfg.ClientSecret = ClientSecret
	cfg.GraphBaseURL = sb.GraphURL + "/v1.0"
	cfg.GraphAuthorityHost = sb.GraphURL + "/"
	cfg.Mailboxes = []string{Mailbox}
	cfg.InternalDomains = []string{"contoso.com"}
	cfg.ArcherURL = sb.ArcherURL + "/RSAArcher"
	cfg.ArcherAllowHTTP = true
	cfg.ArcherInstance = "Default"
	cfg.ArcherUsername = "mail2archer"
	cfg.ArcherPassword = "mail2archer-sandbox"
	cfg.MappingFile = mapping
	cfg.DatabaseURL = config.Secret("sqlite://" + filepath.Join(opts.Dir, "mail2archer.db"))
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		closeListeners()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	sb.Config = cfg

	appOpts := opts.App
	appOpts.Listener, appOpts.AdminListener = ln, adminLn
	if appOpts.GraphHTTPClient == nil {
		appOpts.GraphHTTPClient = sb.graphSrv.Client()
	}
	sb.App, err = app.New(ctx, cfg, opts.Logger, appOpts)
	if err != nil {
		closeListeners()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sb.cancel = cancel
	sb.done = make(chan error, 1)
	go func() { sb.done <- sb.App.Run(runCtx) }()
	return sb, nil
}

// StopArcher stops the Archer simulator's server: connections are refused
// until StartArcher. The simulator keeps its records.
func (sb *Sandbox) StopArcher() {
	if sb.sims != nil {
		sb.sims.StopArcher()
		return
	}
	if sb.archerSrv != nil {
		sb.archerSrv.Close()
		sb.archerSrv = nil
	}
}

// StartArcher serves the Archer simulator again on its address.
func (sb *Sandbox) StartArcher() error {
	if sb.sims != nil {
		return sb.sims.StartArcher()
	}
	if sb.archerSrv != nil {
		return nil
	}
	srv, err := serve(sb.Archer, strings.TrimPrefix(sb.ArcherURL, "http://"), false)
	if err != nil {
		return fmt.Errorf("sandbox: restart archer simulator: %w", err)
	}
	sb.archerSrv = srv
	return nil
}

// ServiceURL is the service's base URL.
func (sb *Sandbox) ServiceURL() string { return sb.Config.PublicURL }

// Deliver puts a message into the sandbox mailbox's Inbox; Graph notifies
// the service.
func (sb *Sandbox) Deliver(mime []byte) (string, error) {
	return sb.Graph.Deliver(Mailbox, "Inbox", mime)
}

// WaitReady waits until the service's /readyz answers 200 on its admin
// listener (with the admin token, when one is configured).
func (sb *Sandbox) WaitReady(ctx context.Context) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sb.App.AdminAddr()+"/readyz", nil)
		if token := sb.Config.AdminToken.Reveal(); token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox: service not ready: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the service, then the simulators unless they belong to
// another sandbox (Options.Simulators), and returns the service's shutdown
// error.
func (sb *Sandbox) Stop() error {
	err := sb.StopService()
	sb.stopSimulators()
	return err
}

// StopService stops the service alone and returns its shutdown error; the
// simulators keep running for another sandbox (Options.Simulators) until
// Stop. Stopping a stopped service does nothing.
func (sb *Sandbox) StopService() error {
	if sb.cancel == nil {
		return nil
	}
	sb.cancel()
	err := <-sb.done
	sb.cancel = nil
	return err
}

func (sb *Sandbox) stopSimulators() {
	if sb.sims != nil {
		return
	}
	if sb.Graph != nil {
		sb.Graph.Close()
	}
	if sb.graphSrv != nil {
		sb.graphSrv.Close()
	}
	if sb.archerSrv != nil {
		sb.archerSrv.Close()
	}
}

func serve(h http.Handler, addr string, tls bool) (*httptest.Server, error) {
	ln, err := net.Listen("tcp", orLoopback(addr))
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = ln
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return srv, nil
}

func orLoopback(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}
