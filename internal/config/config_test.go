package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// These tests change the process environment with t.Setenv, so they cannot
// run in parallel.

const tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"

func minimal(t *testing.T) {
	t.Helper()
	clearEnv(t)
	t.Setenv("M2A_TENANT_ID", tenant)
	t.Setenv("M2A_PUBLIC_URL", "https://mail2archer.example.com")
	t.Setenv("M2A_CLIENT_ID", "24d3b144-21ae-4080-943f-7067b395b913")
	t.Setenv("M2A_CLIENT_SECRET", "app-secret-value")
	t.Setenv("M2A_MAILBOXES", "phish@contoso.com, Phish@contoso.com ,abuse@contoso.com")
	t.Setenv("M2A_ARCHER_URL", "https://archer.contoso.com/RSAArcher")
	t.Setenv("M2A_ARCHER_INSTANCE", "Default")
	t.Setenv("M2A_ARCHER_USERNAME", "svc_mail2archer")
	t.Setenv("M2A_ARCHER_PASSWORD", "archer-password-value")
}

// clearEnv removes every M2A_ variable for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "M2A_") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k)
		}
	}
}

func TestDefaults(t *testing.T) {
	minimal(t)
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr != ":8080" || cfg.DatabaseURL.Reveal() != "sqlite://./data/mail2archer.db" ||
		cfg.MaxBodyBytes != 1<<20 || cfg.ShutdownTimeout != 25*time.Second || cfg.Workers != 4 {
		t.Errorf("defaults: %+v", cfg)
	}
	if got := cfg.MailboxList(); len(got) != 2 || got[0] != "phish@contoso.com" || got[1] != "abuse@contoso.com" {
		t.Errorf("mailboxes %v", got)
	}
	if cfg.WebhookURL() != "https://mail2archer.example.com/webhooks/graph" ||
		cfg.LifecycleURL() != "https://mail2archer.example.com/webhooks/graph/lifecycle" {
		t.Errorf("urls %s %s", cfg.WebhookURL(), cfg.LifecycleURL())
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	clearEnv(t)
	t.Setenv("M2A_MAX_BODY_BYTES", "lots")
	t.Setenv("M2A_SHUTDOWN_TIMEOUT", "soon")
	t.Setenv("M2A_LOG_LEVEL", "loud")
	t.Setenv("M2A_DATABASE_URL", "mysql://root:hunter2@db/x")
	_, err := Load()
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not Problems", err)
	}
	msg := err.Error()
	for _, want := range []string{"M2A_TENANT_ID is required", "M2A_PUBLIC_URL is required",
		"M2A_CLIENT_ID is required", "M2A_MAILBOXES is required", "M2A_ARCHER_URL is required",
		"M2A_ARCHER_INSTANCE is required", "M2A_ARCHER_USERNAME is required", "M2A_ARCHER_PASSWORD",
		"M2A_MAX_BODY_BYTES", "M2A_SHUTDOWN_TIMEOUT", "M2A_LOG_LEVEL", "M2A_DATABASE_URL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error leaks the database password:\n%s", msg)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"http public URL refused", "M2A_PUBLIC_URL", "http://mail2archer.example.com", "Graph delivers only to https"},
		{"public URL without host", "M2A_PUBLIC_URL", "https://", "has no host"},
		{"public URL with query", "M2A_PUBLIC_URL", "https://h.example.com/?a=b", "query"},
		{"public URL with credentials", "M2A_PUBLIC_URL", "https://u:p@h.example.com", "credentials"},
		{"tenant not a GUID", "M2A_TENANT_ID", "contoso.onmicrosoft.com", "not a GUID"},
		{"listen address", "M2A_LISTEN_ADDR", "8080", "M2A_LISTEN_ADDR"},
		{"postgres without database", "M2A_DATABASE_URL", "postgres://u:p@db.example.com:5432/", "needs a database name"},
		{"postgres without host", "M2A_DATABASE_URL", "postgres:///m2a", "needs a host"},
		{"unknown scheme", "M2A_DATABASE_URL", "mysql://db/m2a", "sqlite://PATH or postgres://"},
		{"job timeout", "M2A_JOB_TIMEOUT", "10ms", "M2A_JOB_TIMEOUT"},
		{"sqlite without path", "M2A_DATABASE_URL", "sqlite://", "needs a file path"},
		{"tiny body", "M2A_MAX_BODY_BYTES", "10", "too small"},
		{"bad proxy", "M2A_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local", "proxy.local"},
		{"workers", "M2A_WORKERS", "0", "M2A_WORKERS"},
		{"log format", "M2A_LOG_FORMAT", "xml", "M2A_LOG_FORMAT"},
		{"client id not a GUID", "M2A_CLIENT_ID", "mail2archer", "not a GUID"},
		{"two credentials", "M2A_CLIENT_CERTIFICATE_FILE", "/run/secrets/cert.pem", "both set"},
		{"archer over http", "M2A_ARCHER_URL", "http://archer.contoso.com/RSAArcher", "must use https"},
		{"archer prefix", "M2A_ARCHER_API_PREFIX", "rest", "platformapi"},
		{"mailbox with a path", "M2A_MAILBOXES", "phish@contoso.com/../x", "not a mailbox"},
		{"folder with a quote", "M2A_MAIL_FOLDER", "In'box", "M2A_MAIL_FOLDER"},
		{"attempts", "M2A_MAX_ATTEMPTS", "0", "M2A_MAX_ATTEMPTS"},
		{"negative timeout", "M2A_READ_TIMEOUT", "-1s", "M2A_READ_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minimal(t)
			t.Setenv(tt.key, tt.value)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestAPostgresURLIsAccepted(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_DATABASE_URL", "postgresql://mail2archer:secret@db.example.com:5432/mail2archer?sslmode=verify-full")
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.DatabaseURL.Reveal(), "postgresql://") {
		t.Errorf("database URL %q", cfg.DatabaseURL.Reveal())
	}
}

func TestInsecurePublicURLAllowedForTests(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_PUBLIC_URL", "http://127.0.0.1:8080")
	t.Setenv("M2A_ALLOW_INSECURE_PUBLIC_URL", "true")
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
}

func TestTrustedProxies(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_TRUSTED_PROXIES", "172.16.0.0/12, 10.1.2.3,::1/128")
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p) != "[172.16.0.0/12 10.1.2.3/32 ::1/128]" {
		t.Errorf("prefixes %v", p)
	}
}

func TestSecretFromFile(t *testing.T) {
	minimal(t)
	path := filepath.Join(t.TempDir(), "db_url")
	if err := os.WriteFile(path, []byte("sqlite:///var/lib/m2a/state.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("M2A_DATABASE_URL_FILE", path)
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL.Reveal() != "sqlite:///var/lib/m2a/state.db" {
		t.Errorf("secret %q", cfg.DatabaseURL.Reveal())
	}

	t.Run("empty variable beside the file", func(t *testing.T) {
		t.Setenv("M2A_DATABASE_URL", "")
		if _, err := Load(); err != nil {
			t.Fatalf("an empty variable beside _FILE: %v", err)
		}
	})
	t.Run("both set", func(t *testing.T) {
		t.Setenv("M2A_DATABASE_URL", "sqlite://x.db")
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "both set") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		t.Setenv("M2A_DATABASE_URL_FILE", filepath.Join(t.TempDir(), "missing"))
		if _, err := Load(); err == nil || !strings.Contains(err.Error(), "M2A_DATABASE_URL_FILE") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSecretsNeverReachErrors(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_CLIENT_ID", "not-a-guid")
	_, err := Load()
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{"app-secret-value", "archer-password-value"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %v", s, err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const value = "sqlite:///tmp/hunter2.db"
	s := Secret(value)
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	cfg := Config{DatabaseURL: s}
	log.Info().Interface("config", cfg).Stringer("db", s).Str("fmt", fmt.Sprintf("%v %s %+v %#v %q", s, s, cfg, cfg, s)).Msg("x")
	js, _ := json.Marshal(cfg)
	for _, out := range []string{logs.String(), string(js), fmt.Sprint(s), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret leaked: %s", out)
		}
		if !strings.Contains(out, "<secret>") && !strings.Contains(out, `\u003csecret\u003e`) {
			t.Errorf("no redaction marker in %s", out)
		}
	}
	if s.Reveal() != value {
		t.Error("Reveal lost the value")
	}
}

// TestEveryVariableIsDocumented keeps .env.example and the README's
// configuration table in step with Config.
func TestEveryVariableIsDocumented(t *testing.T) {
	env, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ty := reflect.TypeOf(Config{})
	for i := 0; i < ty.NumField(); i++ {
		name := varName(ty.Field(i))
		if !strings.Contains(string(env), "\n"+name+"=") {
			t.Errorf(".env.example lacks %s", name)
		}
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("README configuration table lacks %s", name)
		}
	}
}

func TestDefaultsMatchLoad(t *testing.T) {
	minimal(t)
	loaded, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	d.TenantID, d.PublicURL, d.ClientID, d.ClientSecret = loaded.TenantID, loaded.PublicURL, loaded.ClientID, loaded.ClientSecret
	d.Mailboxes, d.ArcherURL, d.ArcherInstance = loaded.Mailboxes, loaded.ArcherURL, loaded.ArcherInstance
	d.ArcherUsername, d.ArcherPassword = loaded.ArcherUsername, loaded.ArcherPassword
	if !reflect.DeepEqual(d, loaded) {
		t.Errorf("Defaults()\n%+v\nLoad()\n%+v", d, loaded)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}
}

func TestUnknownVariablesStopTheStartWithTheClosestName(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_WRITEBACK_MOVETO", "Processed")
	t.Setenv("M2A_LISTEN_ADR", ":8080")
	t.Setenv("M2A_PUBLIC_HOST", "mail2archer.example.com") // read by compose only
	t.Setenv("M2A_POSTGRES_PASSWORD", "0123abcd")          // read by docker-compose.ha.yml only
	_, err := Load()
	if err == nil {
		t.Fatal("unknown variables were accepted")
	}
	for _, want := range []string{
		"M2A_WRITEBACK_MOVETO is not a setting of mail2archer; did you mean M2A_WRITEBACK_MOVE_TO?",
		"M2A_LISTEN_ADR is not a setting of mail2archer; did you mean M2A_LISTEN_ADDR?",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, deployment := range []string{"M2A_PUBLIC_HOST", "M2A_POSTGRES_PASSWORD"} {
		if strings.Contains(err.Error(), deployment) {
			t.Errorf("the deployment variable %s was refused:\n%v", deployment, err)
		}
	}
}

func TestPlainHTTPArcherNeedsItsOwnSwitch(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_ARCHER_URL", "http://archer.contoso.com/RSAArcher")
	t.Setenv("M2A_PUBLIC_URL", "http://127.0.0.1:8080")
	t.Setenv("M2A_ALLOW_INSECURE_PUBLIC_URL", "true")
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), "M2A_ARCHER_URL") || !strings.Contains(err.Error(), "M2A_ARCHER_ALLOW_HTTP") {
		t.Fatalf("an http Archer URL was accepted under the public-URL switch: %v", err)
	}
	t.Setenv("M2A_ARCHER_ALLOW_HTTP", "true")
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
}

func TestAnExposedAdminListenerNeedsAToken(t *testing.T) {
	minimal(t)
	t.Setenv("M2A_ADMIN_LISTEN_ADDR", "0.0.0.0:9090")
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), "M2A_ADMIN_TOKEN") {
		t.Fatalf("an exposed admin listener without a token was accepted: %v", err)
	}
	t.Setenv("M2A_ADMIN_TOKEN", "short")
	if _, err := Load(); err == nil {
		t.Fatal("a 5-character token was accepted")
	}
	t.Setenv("M2A_ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminIsLoopback() {
		t.Fatal("0.0.0.0 taken for loopback")
	}
	for _, addr := range []string{"127.0.0.1:9090", "[::1]:9090", "localhost:9090"} {
		c := Config{AdminListenAddr: addr}
		if !c.AdminIsLoopback() {
			t.Errorf("%s not taken for loopback", addr)
		}
	}
}
