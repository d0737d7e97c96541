// Package config loads mail2archer's configuration from the environment.
//
// Every variable has the prefix M2A_. Each has a default, or, when it is
// required, a missing value is reported with the variable's name and how to
// set it. All problems are collected and reported together, so an operator
// fixes a broken deployment in one pass. Every secret may instead be read
// from a file named by NAME_FILE (Docker and Kubernetes secrets).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the prefix of every environment variable.
const Prefix = "M2A"

// Config is the whole configuration of the service. Field tags name the
// environment variable (without the prefix), its default, and whether it is a
// secret that may be given through NAME_FILE.
type Config struct {
	// ListenAddr is the address of the public listener: the two Graph
	// webhook paths and /healthz, nothing else.
	ListenAddr string `envconfig:"LISTEN_ADDR" default:":8080"`
	// AdminListenAddr is the address of the admin listener: /readyz,
	// /metrics and the operator routes. It must never be exposed through
	// the reverse proxy.
	AdminListenAddr string `envconfig:"ADMIN_LISTEN_ADDR" default:"127.0.0.1:9090"`
	// AdminToken is the bearer token every admin route requires; required
	// when the admin listener is bound to anything but loopback.
	AdminToken Secret `envconfig:"ADMIN_TOKEN" secret:"true"`
	// PublicURL is the HTTPS URL under which Microsoft Graph reaches this
	// service (the reverse proxy's address); the webhook paths are appended.
	PublicURL string `envconfig:"PUBLIC_URL"`
	// AllowInsecurePublicURL permits an http:// public URL. Only for tests
	// and the sandbox: Graph itself accepts only HTTPS.
	AllowInsecurePublicURL bool `envconfig:"ALLOW_INSECURE_PUBLIC_URL" default:"false"`
	// TenantID is the Microsoft Entra tenant (directory) id; notifications
	// from any other tenant are dropped.
	TenantID string `envconfig:"TENANT_ID"`
	// DatabaseURL selects the state database: sqlite://PATH (embedded) or
	// the only kind this version supports. It may hold a password.
	DatabaseURL Secret `envconfig:"DATABASE_URL" default:"sqlite://./data/mail2archer.db" secret:"true"`
	// MaxBodyBytes bounds every request body; larger bodies get 413.
	MaxBodyBytes int64 `envconfig:"MAX_BODY_BYTES" default:"1048576"`
	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration `envconfig:"READ_TIMEOUT" default:"10s"`
	// WriteTimeout bounds writing one response.
	WriteTimeout time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s"`
	// ShutdownTimeout bounds a graceful shutdown after SIGTERM or SIGINT.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s"`
	// TrustedProxies lists the CIDRs whose X-Forwarded-For header is believed
	// when logging a request's client address.
	TrustedProxies []string `envconfig:"TRUSTED_PROXIES" default:"127.0.0.0/8,::1/128"`
	// Workers is the number of jobs processed at once.
	Workers int `envconfig:"WORKERS" default:"4"`
	// MaxAttempts bounds the attempts of one job before it is discarded.
	MaxAttempts int `envconfig:"MAX_ATTEMPTS" default:"25"`
	// JobTimeout bounds one attempt at one job. On PostgreSQL, a job that
	// a dead replica was running is retried by another once it has been
	// running this long plus 30 seconds.
	JobTimeout time.Duration `envconfig:"JOB_TIMEOUT" default:"10m"`
	// TrustLocalState skips the lookup in Archer before each email's
	// first create (one call per email). With it, a restored backup, a
	// power cut or a lost database makes duplicate incidents.
	TrustLocalState bool `envconfig:"TRUST_LOCAL_STATE" default:"false"`

	// ClientID is the application (client) id of the Entra app registration.
	ClientID string `envconfig:"CLIENT_ID"`
	// ClientSecret authenticates the app with a client secret.
	ClientSecret Secret `envconfig:"CLIENT_SECRET" secret:"true"`
	// ClientCertificateFile authenticates the app with a certificate: a PEM
	// or PKCS#12 file holding the certificate and its private key.
	ClientCertificateFile string `envconfig:"CLIENT_CERTIFICATE_FILE"`
	// ClientCertificatePassword decrypts ClientCertificateFile.
	ClientCertificatePassword Secret `envconfig:"CLIENT_CERTIFICATE_PASSWORD" secret:"true"`
	// GraphBaseURL is the Microsoft Graph endpoint with its version.
	GraphBaseURL string `envconfig:"GRAPH_BASE_URL" default:"https://graph.microsoft.com/v1.0"`
	// GraphAuthorityHost overrides the Entra ID authority (national clouds,
	// the sandbox's simulator).
	GraphAuthorityHost string `envconfig:"GRAPH_AUTHORITY_HOST"`
	// Mailboxes are the phishing-report mailboxes (UPN or user id).
	Mailboxes []string `envconfig:"MAILBOXES"`
	// MailFolder is the folder watched in every mailbox.
	MailFolder string `envconfig:"MAIL_FOLDER" default:"Inbox"`
	// SubscriptionLifetime is the lifetime requested for each Graph
	// subscription (renewed at about half of it).
	SubscriptionLifetime time.Duration `envconfig:"SUBSCRIPTION_LIFETIME" default:"10000m"`
	// ResyncInterval is the period of the backstop delta sweep.
	ResyncInterval time.Duration `envconfig:"RESYNC_INTERVAL" default:"15m"`
	// InitialSyncSince bounds the first delta sweep of a folder (RFC 3339);
	// empty means the time the mailbox was first seen.
	InitialSyncSince string `envconfig:"INITIAL_SYNC_SINCE"`
	// FullResyncWindow bounds the full sweep after an expired delta link.
	FullResyncWindow time.Duration `envconfig:"FULL_RESYNC_WINDOW" default:"72h"`
	// InternalDomains are the organisation's own domains, for lookalike and
	// display-name spoofing detection.
	InternalDomains []string `envconfig:"INTERNAL_DOMAINS"`
	// WritebackCategory is the category template written to a processed
	// message ({{.RecordID}} is the Archer record id); empty writes none.
	WritebackCategory string `envconfig:"WRITEBACK_CATEGORY" default:"Archer {{.RecordID}}"`
	// WritebackMoveTo moves a processed message to this folder; empty
	// leaves it where it is.
	WritebackMoveTo string `envconfig:"WRITEBACK_MOVE_TO"`

	// ArcherURL is Archer's base URL including the virtual directory, e.g.
	// https://archer.example.com/RSAArcher.
	ArcherURL string `envconfig:"ARCHER_URL"`
	// ArcherAllowHTTP permits an http:// Archer URL, over which the API
	// user's password travels in clear. Tests and the sandbox only.
	ArcherAllowHTTP bool `envconfig:"ARCHER_ALLOW_HTTP" default:"false"`
	// ArcherAPIPrefix is the REST prefix: platformapi (6.5 and later) or api.
	ArcherAPIPrefix string `envconfig:"ARCHER_API_PREFIX" default:"platformapi"`
	// ArcherInstance is the Archer instance name.
	ArcherInstance string `envconfig:"ARCHER_INSTANCE"`
	// ArcherUsername is the Archer API user.
	ArcherUsername string `envconfig:"ARCHER_USERNAME"`
	// ArcherUserDomain is the user's domain; empty for local users.
	ArcherUserDomain string `envconfig:"ARCHER_USER_DOMAIN"`
	// ArcherPassword is the API user's password.
	ArcherPassword Secret `envconfig:"ARCHER_PASSWORD" secret:"true"`
	// ArcherCAFile is a PEM bundle trusted for Archer's certificate, in
	// addition to the system's.
	ArcherCAFile string `envconfig:"ARCHER_CA_FILE"`
	// ArcherTimeout bounds one Archer request.
	ArcherTimeout time.Duration `envconfig:"ARCHER_TIMEOUT" default:"60s"`
	// MappingFile is the YAML file mapping Archer fields to email data.
	MappingFile string `envconfig:"MAPPING_FILE" default:"./mapping.yaml"`

	// LogLevel is the minimum level logged: debug, info, warn or error.
	LogLevel string `envconfig:"LOG_LEVEL" default:"info"`
	// LogFormat is json, console, or auto (console on a terminal, else json).
	LogFormat string `envconfig:"LOG_FORMAT" default:"auto"`
}

// Problems is every configuration problem found in one load.
type Problems []string

// Error lists every problem on its own line.
func (p Problems) Error() string {
	return "invalid configuration:\n  - " + strings.Join(p, "\n  - ")
}

// Load reads the configuration from the process environment. It returns a
// Problems error naming every variable that is missing or invalid.
func Load() (*Config, error) {
	var cfg Config
	var problems Problems
	v := reflect.ValueOf(&cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("secret") == "true" {
			if err := loadSecret(f, v.Field(i)); err != nil {
				problems = append(problems, err.Error())
			}
			continue
		}
		if err := decodeField(f, v.Field(i)); err != nil {
			problems = append(problems, err.Error())
		}
	}
	problems = append(problems, unknownVariables(os.Environ())...)
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		return nil, problems
	}
	return &cfg, nil
}

// LoadDatabaseURL reads only M2A_DATABASE_URL (or its _FILE), for the
// operator commands that work on the state database alone.
func LoadDatabaseURL() (Secret, error) {
	f, _ := reflect.TypeOf(Config{}).FieldByName("DatabaseURL")
	var s Secret
	if err := loadSecret(f, reflect.ValueOf(&s).Elem()); err != nil {
		return "", err
	}
	if err := checkDatabaseURL(s.Reveal()); err != nil {
		return "", fmt.Errorf("M2A_DATABASE_URL: %w", err)
	}
	return s, nil
}

// Defaults returns the configuration with every default applied and nothing
// else set; the sandbox and tests fill in the rest and call Validate.
func Defaults() *Config {
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		def, ok := f.Tag.Lookup("default")
		if !ok {
			continue
		}
		// Parse the default with envconfig, through a variable nobody sets.
		tmp := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: f.Type,
			Tag: reflect.StructTag(`envconfig:"M2A_DEFAULTS_ONLY_` + strings.ToUpper(f.Name) + `" default:"` + def + `"`)}}))
		if err := envconfig.Process("", tmp.Interface()); err != nil {
			panic(fmt.Sprintf("config: default of %s does not parse: %v", f.Name, err))
		}
		v.Field(i).Set(tmp.Elem().Field(0))
	}
	return &cfg
}

// Validate checks a configuration built in code, as Load checks one read
// from the environment.
func (c *Config) Validate() error {
	if p := c.validate(); len(p) > 0 {
		return p
	}
	return nil
}

// varName returns the environment variable of a Config field.
func varName(f reflect.StructField) string { return Prefix + "_" + f.Tag.Get("envconfig") }

// loadSecret sets a Secret field from NAME, or from the file named by
// NAME_FILE. Setting both is an error, so an operator never wonders which
// one wins. A trailing newline in the file is dropped.
func loadSecret(f reflect.StructField, dst reflect.Value) error {
	name := varName(f)
	// An empty variable counts as unset, as an .env file lists them all.
	val, _ := os.LookupEnv(name)
	ok := val != ""
	path, _ := os.LookupEnv(name + "_FILE")
	fromFile := path != ""
	switch {
	case fromFile && ok:
		return fmt.Errorf("%s and %s_FILE are both set: set only one", name, name)
	case fromFile:
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s_FILE: cannot read the secret file: %v", name, err)
		}
		val = strings.TrimRight(string(b), "\r\n")
	case !ok:
		val = f.Tag.Get("default")
	}
	dst.SetString(val)
	return nil
}

// decodeField parses one field with envconfig's rules, by running envconfig
// on a struct holding only that field. Doing it field by field lets Load
// report every bad value instead of stopping at the first.
func decodeField(f reflect.StructField, dst reflect.Value) error {
	one := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "V", Type: f.Type, Tag: f.Tag,
	}}))
	if err := envconfig.Process(Prefix, one.Interface()); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s: cannot parse %q as %s", varName(f), pe.Value, pe.TypeName)
		}
		return fmt.Errorf("%s: %w", varName(f), err)
	}
	dst.Set(one.Elem().Field(0))
	return nil
}

func (c *Config) validate() Problems {
	var p Problems
	if c.TenantID == "" {
		p = append(p, "M2A_TENANT_ID is required: set it to your Microsoft Entra tenant (directory) id, a GUID shown on the app registration's Overview page")
	} else if !isGUID(c.TenantID) {
		p = append(p, fmt.Sprintf("M2A_TENANT_ID: %q is not a GUID such as 84bd8158-6d4d-4958-8b9f-9d6445542f95", c.TenantID))
	}
	if c.PublicURL == "" {
		p = append(p, "M2A_PUBLIC_URL is required: set it to the https:// address under which Microsoft Graph reaches this service, e.g. https://mail2archer.example.com")
	} else if err := checkPublicURL(c.PublicURL, c.AllowInsecurePublicURL); err != nil {
		p = append(p, "M2A_PUBLIC_URL: "+err.Error())
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		p = append(p, fmt.Sprintf("M2A_LISTEN_ADDR: %q is not host:port (e.g. :8080 or 127.0.0.1:8080)", c.ListenAddr))
	}
	if _, _, err := net.SplitHostPort(c.AdminListenAddr); err != nil {
		p = append(p, fmt.Sprintf("M2A_ADMIN_LISTEN_ADDR: %q is not host:port (e.g. 127.0.0.1:9090)", c.AdminListenAddr))
	} else if !c.AdminIsLoopback() && len(c.AdminToken.Reveal()) < 16 {
		p = append(p, fmt.Sprintf("M2A_ADMIN_TOKEN (or M2A_ADMIN_TOKEN_FILE) is required, at least 16 characters, because M2A_ADMIN_LISTEN_ADDR %q is not loopback: "+
			"every admin route (/readyz, /metrics, …) then asks for it as a bearer token; generate one with `openssl rand -hex 32`", c.AdminListenAddr))
	}
	if c.ListenAddr == c.AdminListenAddr {
		p = append(p, "M2A_ADMIN_LISTEN_ADDR must differ from M2A_LISTEN_ADDR: the admin routes must not share the public listener")
	}
	if err := checkDatabaseURL(c.DatabaseURL.Reveal()); err != nil {
		p = append(p, "M2A_DATABASE_URL: "+err.Error())
	}
	if c.MaxBodyBytes < 1024 {
		p = append(p, fmt.Sprintf("M2A_MAX_BODY_BYTES: %d is too small; Graph batches need at least 1024 (default 1048576)", c.MaxBodyBytes))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"M2A_READ_TIMEOUT", c.ReadTimeout}, {"M2A_WRITE_TIMEOUT", c.WriteTimeout}, {"M2A_SHUTDOWN_TIMEOUT", c.ShutdownTimeout}} {
		if d.v <= 0 {
			p = append(p, fmt.Sprintf("%s: must be a positive duration such as 10s", d.name))
		}
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		p = append(p, "M2A_TRUSTED_PROXIES: "+err.Error())
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		p = append(p, fmt.Sprintf("M2A_MAX_ATTEMPTS: %d is out of range 1..100", c.MaxAttempts))
	}
	p = append(p, c.validateGraph()...)
	p = append(p, c.validateArcher()...)
	if c.JobTimeout < time.Second || c.JobTimeout > 24*time.Hour {
		p = append(p, fmt.Sprintf("M2A_JOB_TIMEOUT: %s is out of range 1s..24h", c.JobTimeout))
	}
	if c.Workers < 1 || c.Workers > 256 {
		p = append(p, fmt.Sprintf("M2A_WORKERS: %d is out of range 1..256", c.Workers))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p = append(p, fmt.Sprintf("M2A_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "auto", "json", "console":
	default:
		p = append(p, fmt.Sprintf("M2A_LOG_FORMAT: %q is not one of auto, json, console", c.LogFormat))
	}
	return p
}

// AdminIsLoopback reports whether the admin listener is bound to a loopback
// address only (127.0.0.0/8, ::1 or localhost), where no token is needed.
func (c *Config) AdminIsLoopback() bool {
	host, _, err := net.SplitHostPort(c.AdminListenAddr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// TrustedProxyPrefixes parses TrustedProxies. A bare address is a /32 or /128.
func (c *Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// WebhookURL returns the public URL of the Graph notification endpoint.
func (c *Config) WebhookURL() string { return strings.TrimRight(c.PublicURL, "/") + "/webhooks/graph" }

// LifecycleURL returns the public URL of the Graph lifecycle endpoint.
func (c *Config) LifecycleURL() string {
	return strings.TrimRight(c.PublicURL, "/") + "/webhooks/graph/lifecycle"
}

func checkPublicURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host; write it as https://host[:port][/path]", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowInsecure {
			return fmt.Errorf("%q is http: Microsoft Graph delivers only to https; use the reverse proxy's https address (or set M2A_ALLOW_INSECURE_PUBLIC_URL=true for local tests)", raw)
		}
	default:
		return fmt.Errorf("%q must start with https://", raw)
	}
	return nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// checkDatabaseURL accepts the database URLs the store can open. The error
// never repeats the URL, which may hold a password.
func checkDatabaseURL(raw string) error {
	scheme, rest, ok := strings.Cut(raw, "://")
	switch {
	case !ok:
		return errors.New("must look like sqlite://./data/mail2archer.db")
	case scheme == "sqlite" && rest == "":
		return errors.New("sqlite:// needs a file path, e.g. sqlite://./data/mail2archer.db or sqlite:///var/lib/mail2archer/state.db")
	case scheme == "sqlite":
		return nil
	case scheme == "postgres" || scheme == "postgresql":
		u, err := url.Parse(raw)
		if err != nil {
			return errors.New("is not a valid postgres:// URL, e.g. postgres://mail2archer:PASSWORD@db.example.com:5432/mail2archer")
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return errors.New("postgres:// needs a host, e.g. postgres://mail2archer:PASSWORD@db.example.com:5432/mail2archer")
		}
		if strings.Trim(u.Path, "/") == "" {
			return errors.New("postgres:// needs a database name, e.g. postgres://mail2archer:PASSWORD@db.example.com:5432/mail2archer")
		}
		return nil
	default:
		return fmt.Errorf("unknown scheme %q; use sqlite://PATH or postgres://…", scheme)
	}
}

func (c *Config) validateGraph() Problems {
	var p Problems
	if c.ClientID == "" {
		p = append(p, "M2A_CLIENT_ID is required: the Application (client) ID of the app registration in Microsoft Entra ID")
	} else if !isGUID(c.ClientID) {
		p = append(p, fmt.Sprintf("M2A_CLIENT_ID: %q is not a GUID", c.ClientID))
	}
	if c.ClientSecret != "" && c.ClientCertificateFile != "" {
		p = append(p, "M2A_CLIENT_SECRET and M2A_CLIENT_CERTIFICATE_FILE are both set: choose one credential")
	}
	if err := checkHTTPSURL(c.GraphBaseURL, c.AllowInsecurePublicURL); err != nil {
		p = append(p, "M2A_GRAPH_BASE_URL: "+err.Error())
	}
	if c.GraphAuthorityHost != "" {
		if err := checkHTTPSURL(c.GraphAuthorityHost, false); err != nil {
			p = append(p, "M2A_GRAPH_AUTHORITY_HOST: "+err.Error())
		}
	}
	mailboxes := c.MailboxList()
	if len(mailboxes) == 0 {
		p = append(p, "M2A_MAILBOXES is required: the phishing-report mailbox(es), comma-separated, e.g. phish@contoso.com")
	}
	for _, m := range mailboxes {
		if strings.ContainsAny(m, " /\\?#'\"") {
			p = append(p, fmt.Sprintf("M2A_MAILBOXES: %q is not a mailbox address or user id", m))
		}
	}
	if c.SubscriptionLifetime < 45*time.Minute || c.SubscriptionLifetime > 10070*time.Minute {
		p = append(p, fmt.Sprintf("M2A_SUBSCRIPTION_LIFETIME: %s is outside Graph's 45m..10070m", c.SubscriptionLifetime))
	}
	if c.ResyncInterval < time.Minute {
		p = append(p, "M2A_RESYNC_INTERVAL: must be at least 1m")
	}
	if c.FullResyncWindow <= 0 {
		p = append(p, "M2A_FULL_RESYNC_WINDOW: must be a positive duration such as 72h")
	}
	if _, err := c.InitialSync(); err != nil {
		p = append(p, "M2A_INITIAL_SYNC_SINCE: "+err.Error())
	}
	if strings.TrimSpace(c.MailFolder) == "" || strings.ContainsAny(c.MailFolder, "'/\\") {
		p = append(p, fmt.Sprintf("M2A_MAIL_FOLDER: %q is not a folder name or id", c.MailFolder))
	}
	return p
}

func (c *Config) validateArcher() Problems {
	var p Problems
	if c.ArcherURL == "" {
		p = append(p, "M2A_ARCHER_URL is required: Archer's address with its virtual directory, e.g. https://archer.example.com/RSAArcher")
	} else if err := checkHTTPSURL(c.ArcherURL, c.ArcherAllowHTTP); err != nil {
		p = append(p, "M2A_ARCHER_URL: "+err.Error()+" (the API user's password would travel in clear; set M2A_ARCHER_ALLOW_HTTP=true only for tests)")
	}
	switch c.ArcherAPIPrefix {
	case "platformapi", "api":
	default:
		p = append(p, fmt.Sprintf("M2A_ARCHER_API_PREFIX: %q is neither platformapi (Archer 6.5 and later) nor api", c.ArcherAPIPrefix))
	}
	if c.ArcherInstance == "" {
		p = append(p, "M2A_ARCHER_INSTANCE is required: the instance name shown on Archer's login page (e.g. Default)")
	}
	if c.ArcherUsername == "" {
		p = append(p, "M2A_ARCHER_USERNAME is required: the Archer API user")
	}
	if c.ArcherPassword == "" {
		p = append(p, "M2A_ARCHER_PASSWORD (or M2A_ARCHER_PASSWORD_FILE) is required: the Archer API user's password")
	}
	if c.ArcherTimeout <= 0 {
		p = append(p, "M2A_ARCHER_TIMEOUT: must be a positive duration such as 60s")
	}
	if c.MappingFile == "" {
		p = append(p, "M2A_MAPPING_FILE is required: the mapping of Archer fields (see api/mapping.example.yaml)")
	}
	return p
}

// InitialSync parses InitialSyncSince; zero when it is empty.
func (c *Config) InitialSync() (time.Time, error) {
	if c.InitialSyncSince == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, c.InitialSyncSince)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", c.InitialSyncSince)
	}
	return t, nil
}

// MailboxList returns the configured mailboxes, trimmed, without empties
// and duplicates (compared ignoring case).
func (c *Config) MailboxList() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range c.Mailboxes {
		m = strings.TrimSpace(m)
		if m == "" || seen[strings.ToLower(m)] {
			continue
		}
		seen[strings.ToLower(m)] = true
		out = append(out, m)
	}
	return out
}

// checkHTTPSURL accepts an absolute https URL, or http when allowInsecure.
func checkHTTPSURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	if u.Scheme == "https" || (u.Scheme == "http" && allowInsecure) {
		return nil
	}
	return fmt.Errorf("%q must use https", raw)
}
