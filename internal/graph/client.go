// Package graph is the service's only gateway to Microsoft Graph. It wraps
// msgraph-sdk-go behind small domain types (Subscription, Message, DeltaPage),
// classifies every failure into one of a few classes the callers can act on,
// and keeps each mailbox within Graph's per-mailbox limits.
package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
	textserialization "github.com/microsoft/kiota-serialization-text-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	graphauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/rs/zerolog"
)

// DefaultBaseURL is the Microsoft Graph v1.0 endpoint used when Config.BaseURL is empty.
const DefaultBaseURL = "https://graph.microsoft.com/v1.0"

// DefaultMaxMIMEBytes is the largest raw message FetchMessage reads when
// Config.MaxMIMEBytes is zero.
const DefaultMaxMIMEBytes = 50 << 20

// Graph's documented budget per app and mailbox is 10,000 requests in 10
// minutes (about 16.7 per second). The default bucket stays below it.
const (
	defaultMailboxRPS   = 15
	defaultMailboxBurst = 20
	mailboxConcurrency  = 4
	graphScope          = "https://graph.microsoft.com/.default"
	defaultHTTPTimeout  = 100 * time.Second
)

// Environment variables of Azure workload identity and managed identity.
// The AKS workload identity webhook sets both in a pod whose service account
// is federated with an Entra ID identity.
const (
	envFederatedTokenFile = "AZURE_FEDERATED_TOKEN_FILE"
	envClientID           = "AZURE_CLIENT_ID"
)

// The instance metadata service answers managed identity token requests on
// Azure VMs, scale sets and AKS nodes. Before the first token request the
// credential checks that something listens there, so that a host without a
// managed identity fails at once instead of after the token request's
// retries.
const (
	imdsTokenEndpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
	imdsProbeTimeout  = time.Second
)

// Config holds everything New needs. Secrets are plain strings here; they are
// never logged.
type Config struct {
	// TenantID is the Entra ID tenant (directory) id.
	TenantID string
	// ClientID is the application (client) id of the app registration.
	ClientID string
	// ClientSecret selects the client-secret credential when non-empty.
	ClientSecret string
	// CertificateFile selects the client-certificate credential when
	// non-empty: a PEM or PKCS#12 file holding the certificate and its key.
	CertificateFile string
	// CertificatePassword decrypts CertificateFile when it is encrypted.
	CertificatePassword string
	// BaseURL is the Graph endpoint including the version; default DefaultBaseURL.
	BaseURL string
	// AuthorityHost overrides the Entra ID authority (for example the Graph
	// simulator's https URL). Empty means the public cloud.
	AuthorityHost string
	// HTTPClient, when set, is the parent transport: the SDK's middleware
	// (retry, redirect, compression, headers) is wrapped around its
	// Transport, and the credential uses it too. Its Timeout is kept when
	// non-zero.
	HTTPClient *http.Client
	// MailboxRequestsPerSecond is the sustained request rate allowed per
	// mailbox, shared by every caller of one Client. Zero means 15 (Graph
	// allows about 16.7).
	MailboxRequestsPerSecond float64
	// MailboxBurst is the token bucket size per mailbox. Zero means 20.
	MailboxBurst int
	// MaxRetries is how often the SDK retries a 429, 503 or 504 (and the
	// credential retries the token endpoint) before the error reaches the
	// caller; SendMail is never retried. Zero means the default of 3; a
	// negative value disables retries; at most 10.
	MaxRetries int
	// RetryDelay is the base of the SDK's exponential backoff when the
	// server sends no Retry-After. It is rounded up to whole seconds; zero
	// means the SDK default of 3 s.
	RetryDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the SDK waits out by itself.
	// A longer one is returned at once as a ClassRetryAfter error so the
	// caller can reschedule the work. Zero means 30 s.
	MaxRetryAfter time.Duration
	// MaxMIMEBytes caps the raw message size FetchMessage reads. Zero means
	// DefaultMaxMIMEBytes.
	MaxMIMEBytes int64
}

// Client talks to Microsoft Graph on behalf of the application. It is safe
// for concurrent use; the per-mailbox limits are shared by all its callers,
// so a process should build one Client and pass it around. It holds no
// goroutines and needs no Close.
type Client struct {
	// adapter sends every request. The request builders of the SDK are
	// made from it one at a time (see messages.go and subscriptions.go):
	// the SDK's root client would make every builder of Graph reachable
	// and keep them all in the binary.
	adapter abstractions.RequestAdapter
	// cred is the credential behind adapter; AppRoles reads its token.
	cred    azcore.TokenCredential
	baseURL string
	limits  *mailboxLimits
	maxMIME int64
	log     zerolog.Logger
	folders folderCache
}

// New builds a Client. The credential is a client secret when
// cfg.ClientSecret is set, a client certificate when cfg.CertificateFile is
// set, and otherwise the identity of the workload: Azure workload identity
// when AZURE_FEDERATED_TOKEN_FILE is set (a Kubernetes service account
// federated with the app registration), else the host's managed identity
// (user-assigned when AZURE_CLIENT_ID names one, system-assigned otherwise).
// No other credential type is built or linked.
func New(cfg Config, log zerolog.Logger) (*Client, error) {
	cred, err := newCredential(cfg)
	if err != nil {
		return nil, err
	}
	return newWithCredential(cfg, cred, log)
}

func newCredential(cfg Config) (azcore.TokenCredential, error) {
	opts, disableDiscovery, err := credentialOptions(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.ClientSecret != "" && cfg.CertificateFile != "":
		return nil, errors.New("graph: set either a client secret or a certificate file, not both")
	case cfg.ClientSecret != "":
		if cfg.TenantID == "" || cfg.ClientID == "" {
			return nil, errors.New("graph: a client secret needs the tenant id and the client id")
		}
		cred, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, fmt.Errorf("graph: client secret credential: %w", err)
		}
		return cred, nil
	case cfg.CertificateFile != "":
		if cfg.TenantID == "" || cfg.ClientID == "" {
			return nil, errors.New("graph: a client certificate needs the tenant id and the client id")
		}
		data, err := os.ReadFile(cfg.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("graph: read certificate file: %w", err)
		}
		var pw []byte
		if cfg.CertificatePassword != "" {
			pw = []byte(cfg.CertificatePassword)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, fmt.Errorf("graph: parse certificate file %s (PEM or PKCS#12 with its private key expected): %w", cfg.CertificateFile, err)
		}
		cred, err := azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, fmt.Errorf("graph: client certificate credential: %w", err)
		}
		return cred, nil
	default:
		return newWorkloadCredential(cfg, opts, disableDiscovery, os.LookupEnv)
	}
}

// credentialOptions are the options of every credential: the authority
// host (with instance discovery off, as a custom authority cannot answer
// it), the transport and the retry budget of Graph calls.
func credentialOptions(cfg Config) (opts azcore.ClientOptions, disableDiscovery bool, err error) {
	if cfg.AuthorityHost != "" {
		u, err := url.Parse(cfg.AuthorityHost)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return opts, false, fmt.Errorf("graph: authority host %q must be an https URL", cfg.AuthorityHost)
		}
		host := strings.TrimSuffix(cfg.AuthorityHost, "/") + "/"
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: host, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
		disableDiscovery = true
	}
	if cfg.HTTPClient != nil {
		opts.Transport = cfg.HTTPClient
	}
	switch {
	case cfg.MaxRetries < 0:
		opts.Retry.MaxRetries = -1
	case cfg.MaxRetries > 0:
		opts.Retry.MaxRetries = int32(min(cfg.MaxRetries, 10))
	}
	if cfg.RetryDelay > 0 {
		opts.Retry.RetryDelay = cfg.RetryDelay
	}
	return opts, disableDiscovery, nil
}

// newWorkloadCredential is the credential of a service without a secret of
// its own. With AZURE_FEDERATED_TOKEN_FILE set it is workload identity:
// the Kubernetes service account token is exchanged for a Graph token of
// AZURE_CLIENT_ID (set by the webhook), else of cfg.ClientID. Otherwise it
// is the host's managed identity: the user-assigned identity AZURE_CLIENT_ID
// names, else the system-assigned one. lookupEnv reads the environment.
func newWorkloadCredential(cfg Config, opts azcore.ClientOptions, disableDiscovery bool, lookupEnv func(string) (string, bool)) (azcore.TokenCredential, error) {
	envClient, _ := lookupEnv(envClientID)
	envClient = strings.TrimSpace(envClient)
	if file, _ := lookupEnv(envFederatedTokenFile); strings.TrimSpace(file) != "" {
		clientID := envClient
		if clientID == "" {
			clientID = cfg.ClientID
		}
		if clientID == "" {
			return nil, fmt.Errorf("graph: workload identity (%s is set) needs %s or the client id", envFederatedTokenFile, envClientID)
		}
		// An empty TenantID makes azidentity read AZURE_TENANT_ID.
		cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: clientID, TenantID: cfg.TenantID, TokenFilePath: strings.TrimSpace(file),
			DisableInstanceDiscovery: disableDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("graph: workload identity credential from %s: %w", file, err)
		}
		return cred, nil
	}
	miOpts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
	if envClient != "" {
		miOpts.ID = azidentity.ClientID(envClient)
	}
	cred, err := azidentity.NewManagedIdentityCredential(miOpts)
	if err != nil {
		return nil, fmt.Errorf("graph: managed identity credential (no client secret, certificate or %s given): %w", envFederatedTokenFile, err)
	}
	// App Service, Container Apps, Arc and the others announce their
	// endpoint in the environment; only the metadata service is guessed.
	if src, err := managedidentity.GetSource(); err != nil || src != managedidentity.DefaultToIMDS {
		return cred, nil
	}
	probe := &http.Client{Transport: http.DefaultTransport, Timeout: imdsProbeTimeout}
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		probe.Transport = cfg.HTTPClient.Transport
	}
	return &imdsCredential{cred: cred, endpoint: imdsTokenEndpoint, client: probe}, nil
}

// imdsCredential is a managed identity credential that first checks that
// the instance metadata service exists. Any HTTP answer counts; after one,
// the check is not repeated.
type imdsCredential struct {
	cred     azcore.TokenCredential
	endpoint string
	client   *http.Client

	mu    sync.Mutex
	found bool
}

// GetToken probes the metadata service until it has answered once, then
// asks the managed identity credential for a token.
func (c *imdsCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if err := c.probe(ctx); err != nil {
		return azcore.AccessToken{}, err
	}
	return c.cred.GetToken(ctx, opts)
}

func (c *imdsCredential) probe(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found {
		return nil
	}
	// A request without the Metadata header is refused by the service;
	// only whether it answers matters.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint, nil)
	if err != nil {
		return fmt.Errorf("managed identity: probe %s: %w", c.endpoint, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("managed identity: probe %s: %w", c.endpoint, ctx.Err())
		}
		return &credentialUnavailableError{msg: fmt.Sprintf("managed identity: no instance metadata service answers at %s (%v)", c.endpoint, err)}
	}
	_ = resp.Body.Close()
	c.found = true
	return nil
}

// credentialUnavailableError says that the environment offers no
// credential; retrying will not change that.
type credentialUnavailableError struct{ msg string }

// Error returns the message.
func (e *credentialUnavailableError) Error() string { return e.msg }

// NonRetriable marks the error as one that no retry can fix, like
// azidentity's own errors for an unavailable credential.
func (e *credentialUnavailableError) NonRetriable() {}

// newWithCredential builds the Client around any token credential.
func newWithCredential(cfg Config, cred azcore.TokenCredential, log zerolog.Logger) (*Client, error) {
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	bu, err := url.Parse(base)
	if err != nil || (bu.Scheme != "https" && bu.Scheme != "http") || bu.Host == "" {
		return nil, fmt.Errorf("graph: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	hosts := []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us",
		"graph.microsoft.de", "microsoftgraph.chinacloudapi.cn", "canary.graph.microsoft.com"}
	if h := bu.Hostname(); !contains(hosts, h) {
		hosts = append(hosts, h)
	}
	if bu.Scheme == "http" && !isLoopback(bu.Hostname()) {
		return nil, fmt.Errorf("graph: base URL %q must use https (plain http only on localhost)", cfg.BaseURL)
	}
	auth, err := graphauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{graphScope}, hosts)
	if err != nil {
		return nil, fmt.Errorf("graph: authentication provider: %w", err)
	}

	limits := newMailboxLimits(cfg.MailboxRequestsPerSecond, cfg.MailboxBurst)
	httpClient := newHTTPClient(cfg, limits)
	parse, write := newSerializers()
	adapter, err := khttp.NewNetHttpRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, parse, write, httpClient)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(base)
	maxMIME := cfg.MaxMIMEBytes
	if maxMIME <= 0 {
		maxMIME = DefaultMaxMIMEBytes
	}
	return &Client{
		adapter: adapter,
		cred:    cred,
		baseURL: base,
		limits:  limits,
		maxMIME: maxMIME,
		log:     log.With().Str("component", "graph").Logger(),
	}, nil
}

// newSerializers returns this client's own registries of JSON and text
// (de)serializers, wrapped with the backing store as the SDK's root client
// wraps the global ones: a model serializes only the properties changed
// since it was made or read, so a renewal PATCH carries the expiry alone.
// Nothing global is written.
func newSerializers() (absser.ParseNodeFactory, absser.SerializationWriterFactory) {
	parse := absser.NewParseNodeFactoryRegistry()
	for _, f := range []absser.ParseNodeFactory{jsonserialization.NewJsonParseNodeFactory(), textserialization.NewTextParseNodeFactory()} {
		if ct, err := f.GetValidContentType(); err == nil {
			parse.ContentTypeAssociatedFactories[ct] = f
		}
	}
	write := absser.NewSerializationWriterFactoryRegistry()
	for _, f := range []absser.SerializationWriterFactory{jsonserialization.NewJsonSerializationWriterFactory(), textserialization.NewTextSerializationWriterFactory()} {
		if ct, err := f.GetValidContentType(); err == nil {
			write.ContentTypeAssociatedFactories[ct] = f
		}
	}
	return abstractions.EnableBackingStoreForParseNodeFactory(parse), abstractions.EnableBackingStoreForSerializationWriterFactory(write)
}

// newHTTPClient assembles the SDK's default middleware (with the configured
// retry policy) around the parent transport and the per-mailbox limiter.
func newHTTPClient(cfg Config, limits *mailboxLimits) *http.Client {
	var parent http.RoundTripper = http.DefaultTransport
	timeout := defaultHTTPTimeout
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			parent = cfg.HTTPClient.Transport
		}
		if cfg.HTTPClient.Timeout > 0 {
			timeout = cfg.HTTPClient.Timeout
		}
	}
	maxAfter := cfg.MaxRetryAfter
	if maxAfter <= 0 {
		maxAfter = 30 * time.Second
	}
	retries := cfg.MaxRetries
	delaySec := int((cfg.RetryDelay + time.Second - 1) / time.Second)
	retryOpts := &khttp.RetryHandlerOptions{
		MaxRetries:   max(retries, 0),
		DelaySeconds: delaySec,
		ShouldRetry: func(_ time.Duration, _ int, req *http.Request, resp *http.Response) bool {
			if retries < 0 {
				return false
			}
			// A sendMail is never resent: the caller decides, knowing
			// whether the message may have gone out (see SendMail).
			if oneShotFrom(req.Context()) != nil {
				return false
			}
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && d > maxAfter {
				return false
			}
			return true
		},
	}
	// Request bodies go uncompressed: kiota-http-go v1.5.4 retries a
	// compressed POST or PATCH with the gzip header but the plain body,
	// which Graph refuses with 400 (kiota-http-go#183). Bodies here are
	// small (categories, a move, a subscription, an acknowledgment).
	kiota, err := khttp.GetDefaultMiddlewaresWithOptions(retryOpts, khttp.NewCompressionOptionsReference(false))
	if err != nil {
		// Only unknown option types fail; the retry option is known.
		kiota = khttp.GetDefaultMiddlewares()
	}
	opts := msgraphcore.GraphClientOptions{GraphServiceVersion: "v1.0"}
	mws := append([]khttp.Middleware{
		msgraphcore.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, msgraphcore.ReplacementPairs),
	}, kiota...)
	transport := khttp.NewCustomTransportWithParentTransport(&limitTransport{next: &oneShotTransport{next: parent}, limits: limits}, mws...)
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the configuration with its secrets redacted, so that a
// Config printed by mistake leaks nothing.
func (c Config) String() string {
	redact := func(s string) string {
		if s == "" {
			return `""`
		}
		return "<secret>"
	}
	return fmt.Sprintf("graph.Config{TenantID:%q ClientID:%q ClientSecret:%s CertificateFile:%q CertificatePassword:%s BaseURL:%q AuthorityHost:%q}",
		c.TenantID, c.ClientID, redact(c.ClientSecret), c.CertificateFile, redact(c.CertificatePassword), c.BaseURL, c.AuthorityHost)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }
