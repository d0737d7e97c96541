package graph

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/rs/zerolog"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"secret and certificate", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", CertificateFile: "f"}, "not both"},
		{"secret without tenant", Config{ClientID: "c", ClientSecret: "s"}, "tenant id"},
		{"certificate without client", Config{TenantID: "t", CertificateFile: "f"}, "client id"},
		{"missing certificate", Config{TenantID: "t", ClientID: "c", CertificateFile: "/nonexistent/cert.pem"}, "read certificate"},
		{"http authority", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", AuthorityHost: "http://login.example"}, "https"},
		{"relative base", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", BaseURL: "/v1.0"}, "absolute"},
		{"plain http remote base", Config{TenantID: "t", ClientID: "c", ClientSecret: "s", BaseURL: "http://graph.example/v1.0"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error mentioning %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr") {
				t.Error("a secret leaked into the error")
			}
		})
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{TenantID: "t", ClientID: "c", CertificateFile: garbage}, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "PEM or PKCS#12") {
		t.Errorf("garbage certificate: %v", err)
	}
}

func TestNewWithoutSecretBuildsWithoutNetwork(t *testing.T) {
	t.Parallel()
	c, err := New(Config{TenantID: testTenant}, zerolog.Nop())
	if err != nil {
		t.Fatalf("managed identity credential: %v", err)
	}
	if c.baseURL != DefaultBaseURL {
		t.Errorf("base URL %s", c.baseURL)
	}
}

// writeCert writes a self-signed certificate and its key as one PEM file.
func writeCert(t *testing.T, rsaKey bool) string {
	t.Helper()
	var key any
	var pub any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail2archer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientCertificateCredentialAgainstSimulator(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	c, err := New(Config{TenantID: testTenant, ClientID: testApp, CertificateFile: writeCert(t, true),
		BaseURL: b.srv.URL + "/v1.0", AuthorityHost: b.srv.URL, HTTPClient: b.srv.Client(), MaxRetries: -1}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSubscriptions(context.Background()); err != nil {
		t.Fatalf("list with a certificate credential: %v", err)
	}
	var assertion bool
	for _, r := range b.sim.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && strings.Contains(string(r.Body), "client_assertion=%3Credacted%3E") {
			assertion = true
		}
	}
	if !assertion {
		t.Error("the token request did not use a client assertion")
	}
}

func TestMailboxLimiter(t *testing.T) {
	t.Parallel()
	l := newMailboxLimits(1000, 10)
	ctx := context.Background()
	var releases []func()
	for range mailboxConcurrency {
		r, err := l.acquire(ctx, "A@contoso.com")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	// Another mailbox is not affected.
	other, err := l.acquire(ctx, "b@contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	other()
	// The fifth request for the same mailbox (any case) waits.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(short, "a@CONTOSO.com"); err == nil {
		t.Fatal("a fifth concurrent request was admitted")
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.acquire(ctx, "a@contoso.com")
		if err == nil {
			r()
		}
		got <- err
	}()
	releases[0]()
	releases[0]() // releasing twice is harmless
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot was not handed on")
	}
	for _, r := range releases[1:] {
		r()
	}

	// The token bucket spaces requests: burst 2 at 20/s means the fifth
	// request waits about 150 ms.
	slow := newMailboxLimits(20, 2)
	start := time.Now()
	for range 5 {
		r, err := slow.acquire(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		r()
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("5 requests at 20/s with burst 2 took only %v", d)
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	cfg := Config{TenantID: "t", ClientID: "c", ClientSecret: "hunter2", CertificatePassword: "pfx-pass"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, cfg)
		if strings.Contains(out, "hunter2") || strings.Contains(out, "pfx-pass") || !strings.Contains(out, "<secret>") {
			t.Errorf("%s printed %s", f, out)
		}
	}
}

// fakeEnv is an environment for newWorkloadCredential.
type fakeEnv map[string]string

func (e fakeEnv) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

// federatedTokenFile writes what the AKS webhook projects into a pod: a
// service account token, here an unsigned JWT issued to app.
func federatedTokenFile(t *testing.T, app string) string {
	t.Helper()
	claims, err := json.Marshal(map[string]any{"iss": app, "sub": app, "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
	path := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(path, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// simConfig is a Config against the bundle's simulator.
func (b *bundle) simConfig() Config {
	return Config{TenantID: testTenant, ClientID: testApp, BaseURL: b.srv.URL + "/v1.0", AuthorityHost: b.srv.URL,
		HTTPClient: b.srv.Client(), MaxRetries: -1}
}

// workloadCredential builds the credential New builds without a secret or
// a certificate, in the environment env.
func workloadCredential(t *testing.T, cfg Config, env fakeEnv) azcore.TokenCredential {
	t.Helper()
	opts, disableDiscovery, err := credentialOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := newWorkloadCredential(cfg, opts, disableDiscovery, env.lookup)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func TestWorkloadIdentityAgainstSimulator(t *testing.T) {
	t.Parallel()
	const otherApp = "99999999-8888-7777-6666-555555555555"
	tests := []struct {
		name      string
		configApp string
		envApp    string
		tokenFor  string
		wantApp   string
		wantClass Class // ClassPermanent means success here
	}{
		{name: "client id from AZURE_CLIENT_ID", configApp: otherApp, envApp: testApp, tokenFor: testApp, wantApp: testApp},
		{name: "client id from the configuration", configApp: testApp, tokenFor: testApp, wantApp: testApp},
		{name: "token of another identity", configApp: testApp, tokenFor: otherApp, wantApp: testApp, wantClass: ClassPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Options{})
			cfg := b.simConfig()
			cfg.ClientID = tt.configApp
			env := fakeEnv{envFederatedTokenFile: federatedTokenFile(t, tt.tokenFor)}
			if tt.envApp != "" {
				env[envClientID] = tt.envApp
			}
			cred := workloadCredential(t, cfg, env)
			if _, ok := cred.(*azidentity.WorkloadIdentityCredential); !ok {
				t.Fatalf("credential %T, want workload identity", cred)
			}
			c, err := newWithCredential(cfg, cred, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListSubscriptions(context.Background())
			if tt.wantClass == ClassPermanent && err != nil {
				t.Fatalf("list with workload identity: %v", err)
			}
			if tt.wantClass != ClassPermanent && ClassOf(err) != tt.wantClass {
				t.Fatalf("got %v (%v), want %v", err, ClassOf(err), tt.wantClass)
			}
			var exchanged bool
			for _, r := range b.sim.Requests() {
				if !strings.HasSuffix(r.Path, "/"+testTenant+"/oauth2/v2.0/token") {
					continue
				}
				form, err := url.ParseQuery(string(r.Body))
				if err != nil {
					t.Fatal(err)
				}
				exchanged = form.Get("client_id") == tt.wantApp && form.Get("client_assertion") != "" &&
					form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
			}
			if !exchanged {
				t.Errorf("no token request exchanged the federated token for client %s", tt.wantApp)
			}
		})
	}
}

func TestWorkloadIdentityNeedsAClientID(t *testing.T) {
	t.Parallel()
	env := fakeEnv{envFederatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token"}
	_, err := newWorkloadCredential(Config{TenantID: testTenant}, azcore.ClientOptions{}, false, env.lookup)
	if err == nil || !strings.Contains(err.Error(), envClientID) {
		t.Errorf("got %v, want an error naming %s", err, envClientID)
	}
}

// clearManagedIdentityEnv removes the variables by which Azure hosts
// announce their managed identity endpoint.
func clearManagedIdentityEnv(t *testing.T) {
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
	}
}

// TestManagedIdentityWithoutFederatedToken changes the process environment:
// it cannot run in parallel.
func TestManagedIdentityWithoutFederatedToken(t *testing.T) {
	t.Run("metadata service", func(t *testing.T) {
		clearManagedIdentityEnv(t)
		cred := workloadCredential(t, Config{TenantID: testTenant, ClientID: testApp}, fakeEnv{})
		ic, ok := cred.(*imdsCredential)
		if !ok || ic.endpoint != imdsTokenEndpoint || ic.client.Timeout != imdsProbeTimeout {
			t.Fatalf("credential %T %+v, want the managed identity behind a probe of %s", cred, cred, imdsTokenEndpoint)
		}
		if _, ok := ic.cred.(*azidentity.ManagedIdentityCredential); !ok {
			t.Errorf("probed credential %T", ic.cred)
		}
	})

	// App Service announces its endpoint: no probe, and the identity is
	// the one AZURE_CLIENT_ID names, else the system-assigned one.
	for _, tt := range []struct {
		name, envApp string
	}{{"system-assigned", ""}, {"user-assigned", "44444444-3333-2222-1111-000000000000"}} {
		t.Run("App Service "+tt.name, func(t *testing.T) {
			b := setup(t, graphsim.Options{})
			var mu sync.Mutex
			var queries []url.Values
			endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				queries = append(queries, r.URL.Query())
				mu.Unlock()
				if r.Header.Get("X-IDENTITY-HEADER") != "app-service-secret" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				// A short lifetime keeps the token out of MSAL's
				// process-wide cache for the next run.
				_ = json.NewEncoder(w).Encode(map[string]string{"access_token": b.sim.IssueToken(), "token_type": "Bearer",
					"resource": "https://graph.microsoft.com", "expires_on": strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)})
			}))
			t.Cleanup(endpoint.Close)
			clearManagedIdentityEnv(t)
			t.Setenv("IDENTITY_ENDPOINT", endpoint.URL+"/msi/token")
			t.Setenv("IDENTITY_HEADER", "app-service-secret")
			cfg := b.simConfig()
			env := fakeEnv{}
			if tt.envApp != "" {
				env[envClientID] = tt.envApp
			}
			cred := workloadCredential(t, cfg, env)
			if _, ok := cred.(*azidentity.ManagedIdentityCredential); !ok {
				t.Fatalf("credential %T, want the managed identity itself", cred)
			}
			c, err := newWithCredential(cfg, cred, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ListSubscriptions(context.Background()); err != nil {
				t.Fatalf("list with a managed identity: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(queries) == 0 {
				t.Fatal("the managed identity endpoint was not asked for a token")
			}
			if q := queries[0]; q.Get("resource") != "https://graph.microsoft.com" || q.Get("client_id") != tt.envApp {
				t.Errorf("token request %v, want resource https://graph.microsoft.com and client_id %q", q, tt.envApp)
			}
		})
	}
}

// countingCredential hands out simulator tokens and counts the requests.
type countingCredential struct {
	sim   *graphsim.Server
	calls atomic.Int32
}

func (c *countingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	return azcore.AccessToken{Token: c.sim.IssueToken(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestMetadataServiceProbe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("nothing answers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Options{})
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		inner := &countingCredential{sim: b.sim}
		c, err := newWithCredential(b.simConfig(), &imdsCredential{cred: inner, endpoint: dead.URL, client: &http.Client{Timeout: imdsProbeTimeout}}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListSubscriptions(ctx)
		if e := asError(t, err); e.Class != ClassPermission || !strings.Contains(e.Message, "no credential is available") {
			t.Errorf("got %v (%v), want an operator's problem", err, e.Class)
		}
		if inner.calls.Load() != 0 {
			t.Error("the managed identity was asked for a token although no metadata service answered")
		}
	})

	t.Run("the service answers once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Options{})
		var probes atomic.Int32
		imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			probes.Add(1)
			if r.Header.Get("Metadata") != "" {
				t.Error("the probe sent a real token request")
			}
			w.WriteHeader(http.StatusBadRequest)
		}))
		t.Cleanup(imds.Close)
		inner := &countingCredential{sim: b.sim}
		c, err := newWithCredential(b.simConfig(), &imdsCredential{cred: inner, endpoint: imds.URL, client: imds.Client()}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := c.ListSubscriptions(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if probes.Load() != 1 || inner.calls.Load() < 2 {
			t.Errorf("%d probes, %d token requests; want 1 probe and a token per request", probes.Load(), inner.calls.Load())
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		imds := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(imds.Close)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ic := &imdsCredential{cred: &countingCredential{}, endpoint: imds.URL, client: imds.Client()}
		_, err := ic.GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{graphScope}})
		if !errors.Is(err, context.Canceled) || isCredentialUnavailable(err) {
			t.Errorf("got %v, want the cancellation and not an unavailable credential", err)
		}
	})
}
