package watch_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/mail2archer/mail2archer/internal/watch"
)

// Fixes Decide gives, shortened to a phrase each names.
const (
	loginFix     = "M2A_ARCHER_PASSWORD"
	tlsFix       = "M2A_ARCHER_CA_FILE"
	webPageFix   = "Archer answered with a web page: "
	forbiddenFix = "Archer answered 403 Forbidden"
	contentFix   = "the Content API cannot read the incident level"
)

func TestObserveArcherTurnsEachOutcomeIntoAState(t *testing.T) {
	t.Parallel()
	sso := &archer.HTMLError{Op: "login", URL: "https://archer.example/RSAArcher/platformapi/core/security/login", StatusCode: 200,
		Cause: "the request was answered by a web page, typically the sign-in page"}
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
		// detail is the whole detail when ok, a part of it otherwise.
		detail string
		// fix is a part of the fix; empty means the state carries none.
		fix string
	}{
		{"success", nil, true, "answering; logged in as " + user, ""},
		{"mapping problems come from an answering Archer", fmt.Errorf("mapping preflight against Archer: %w",
			incident.Problems{`fields: "Title" is required in Archer but not mapped`}), true, "answering; logged in as " + user, ""},
		{"validation message", &archer.ValidationError{Op: "create record", Messages: []string{"Field X is required."}},
			true, "answering (last failure: archer_validation)", ""},
		{"not found", &archer.StatusError{Op: "get record", Method: "GET", URL: "u", StatusCode: http.StatusNotFound},
			true, "answering (last failure: archer_http_404)", ""},
		{"refused login", loginRefused(), false, "archer login refused", loginFix},
		{"sign-on page", sso, false, "typically the sign-in page", webPageFix + sso.Cause},
		{"untrusted certificate", &url.Error{Op: "Post", URL: "u", Err: x509.UnknownAuthorityError{}}, false,
			"certificate signed by unknown authority", tlsFix},
		{"forbidden", &archer.StatusError{Op: "ping", Method: "GET", URL: "u", StatusCode: http.StatusForbidden}, false,
			"HTTP 403", forbiddenFix},
		{"content API unavailable", fmt.Errorf("archer find records: %w", archer.ErrNoContentAPI), false,
			"content API unavailable", contentFix},
		// Transient failures carry no fix of Decide's: the state names
		// where to look.
		{"unreachable", refused(), false, "connection refused", "reachable from this host"},
		{"unavailable", &archer.StatusError{Op: "ping", Method: "GET", URL: "u", StatusCode: http.StatusServiceUnavailable}, false,
			"HTTP 503", "reachable from this host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := health.NewSet(nil, watch.Archer)
			watch.ObserveArcher(h, tc.err, user)
			checkArcherState(t, h.State(watch.Archer), tc.ok, tc.detail, tc.fix)
		})
	}
}

func checkArcherState(t *testing.T, st health.State, ok bool, detail, fix string) {
	t.Helper()
	switch {
	case !st.Known:
		t.Fatal("archer state not recorded")
	case st.OK != ok:
		t.Fatalf("archer OK = %v, want %v (%+v)", st.OK, ok, st)
	case ok && st.Detail != detail:
		t.Errorf("detail %q, want %q", st.Detail, detail)
	case !ok && !strings.Contains(st.Detail, detail):
		t.Errorf("detail %q does not name %q", st.Detail, detail)
	case fix == "" && st.Fix != "":
		t.Errorf("fix %q, want none", st.Fix)
	case !strings.Contains(st.Fix, fix):
		t.Errorf("fix %q does not say %q", st.Fix, fix)
	}
}

// TestObserveArcherNamesTheFixOfRealClientErrors feeds ObserveArcher the
// errors the Archer client returns against the simulator (or against no
// Archer at all), so the wording follows the client's real errors.
func TestObserveArcherNamesTheFixOfRealClientErrors(t *testing.T) {
	t.Parallel()
	const password = "mail2archer-sandbox"
	for _, tc := range []struct {
		name string
		// setup returns the client's base URL and password.
		setup       func(t *testing.T) (string, string)
		detail, fix string
	}{
		{"refused login", func(t *testing.T) (string, string) {
			return serve(t, newSim(t)).URL, "wrong"
		}, "archer login refused", loginFix},
		{"sign-on page instead of the API", func(t *testing.T) (string, string) {
			sim := newSim(t)
			sim.FailNextWith(1, archersim.Failure{Status: http.StatusOK})
			return serve(t, sim).URL, password
		}, "HTML page instead of JSON", webPageFix + "the request was answered by a web page"},
		{"untrusted certificate", func(t *testing.T) (string, string) {
			srv := httptest.NewTLSServer(newSim(t))
			t.Cleanup(srv.Close)
			return srv.URL, password
		}, "certificate", tlsFix},
		{"https to a plain http server", func(t *testing.T) (string, string) {
			srv := serve(t, newSim(t))
			return "https://" + srv.Listener.Addr().String(), password
		}, "server gave HTTP response to HTTPS client", tlsFix},
		{"forbidden", func(t *testing.T) (string, string) {
			sim := newSim(t)
			sim.FailNextWith(1, archersim.Failure{Status: http.StatusForbidden, Body: archersim.FailureWebAPIMessage,
				PathSuffix: "/core/system/application"})
			return serve(t, sim).URL, password
		}, "HTTP 403", forbiddenFix},
		{"unreachable", func(t *testing.T) (string, string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return "http://" + addr, password
		}, "connection refused", "reachable from this host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base, pw := tc.setup(t)
			c := simClient(t, base, pw)
			err := c.Ping(t.Context())
			if err == nil {
				t.Fatal("ping succeeded")
			}
			h := health.NewSet(nil, watch.Archer)
			watch.ObserveArcher(h, err, user)
			st := h.State(watch.Archer)
			if st.Detail != err.Error() {
				t.Errorf("detail %q, want the error %q", st.Detail, err)
			}
			checkArcherState(t, st, false, tc.detail, tc.fix)
		})
	}
	t.Run("working Archer", func(t *testing.T) {
		t.Parallel()
		c := simClient(t, serve(t, newSim(t)).URL, password)
		h := health.NewSet(nil, watch.Archer)
		watch.ObserveArcher(h, c.Ping(t.Context()), user)
		checkArcherState(t, h.State(watch.Archer), true, "answering; logged in as "+user, "")
	})
}

// newSim returns the Archer simulator serving at the root of its server.
func newSim(t *testing.T) *archersim.Server {
	t.Helper()
	sim, err := archersim.New(archersim.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

// serve serves h on a local port until the test ends.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// simClient returns an Archer client of base that logs in as the
// simulator's user with password.
func simClient(t *testing.T, base, password string) *archer.Client {
	t.Helper()
	c, err := archer.New(archer.Config{BaseURL: base, Instance: "Default", Username: "mail2archer", Password: password,
		Timeout: 10 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
