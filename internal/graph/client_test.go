package graph

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestNewWithDefaultChainBuildsWithoutNetwork(t *testing.T) {
	t.Parallel()
	c, err := New(Config{TenantID: testTenant}, zerolog.Nop())
	if err != nil {
		t.Fatalf("default credential chain: %v", err)
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
