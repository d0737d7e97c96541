package archer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultTimeout bounds one HTTP exchange when Config.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// DefaultLoginBackoff is the least time between two logins after Archer
// refused one, when Config.LoginBackoff is zero.
const DefaultLoginBackoff = time.Minute

// Config holds what the client needs to reach Archer. Password is a secret:
// it is sent only in the login body and never logged.
type Config struct {
	// BaseURL is the web server and virtual directory, e.g.
	// https://archer.example.com/RSAArcher. It must not contain credentials,
	// a query or a fragment.
	BaseURL string
	// APIPrefix is "platformapi" (Archer 6.5 and later, the default) or
	// "api" (older releases, and instances that still route it).
	APIPrefix string
	// Instance is the Archer instance name, e.g. "Default" or "50000".
	Instance string
	// Username and UserDomain identify the API user; UserDomain is empty for
	// local users.
	Username   string
	UserDomain string
	// Password of the API user.
	Password string
	// CAFile is an optional PEM file of extra root certificates (a corporate
	// CA); the system roots stay trusted. Ignored when HTTPClient is set.
	CAFile string
	// Timeout bounds each HTTP exchange, including the upload of an
	// attachment's body; zero means DefaultTimeout. Ignored when HTTPClient
	// is set.
	Timeout time.Duration
	// HTTPClient, when set, is used as is (its transport, TLS settings,
	// timeout and redirect policy).
	HTTPClient *http.Client
	// LoginBackoff is the least time between two login attempts after a
	// login that needs an operator (refused credentials, a sign-on page,
	// an untrusted certificate); zero means DefaultLoginBackoff. Calls in
	// between fail at once with the refusal.
	LoginBackoff time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// WrapTransport, when set, wraps the transport of the client in use
	// (for metrics); CAFile, Timeout and the redirect policy are kept.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// String describes the configuration without the password.
func (c Config) String() string {
	return fmt.Sprintf("archer{url=%s prefix=%s instance=%s user=%s domain=%s password=<secret>}", c.BaseURL, c.APIPrefix, c.Instance, c.Username, c.UserDomain)
}

// validate checks the configuration and returns the cleaned base URL and
// prefix.
func (c Config) validate() (*url.URL, string, error) {
	var errs []error
	base, err := url.Parse(strings.TrimSpace(c.BaseURL))
	switch {
	case c.BaseURL == "":
		errs = append(errs, errors.New("base URL is empty; set it to the web server and virtual directory, e.g. https://archer.example.com/RSAArcher"))
	case err != nil:
		errs = append(errs, fmt.Errorf("base URL is not a URL: %w", err))
	case base.Scheme != "https" && base.Scheme != "http":
		errs = append(errs, fmt.Errorf("base URL %q must start with https:// (or http://)", c.BaseURL))
	case base.Host == "":
		errs = append(errs, fmt.Errorf("base URL %q has no host", c.BaseURL))
	case base.User != nil:
		errs = append(errs, errors.New("base URL must not contain credentials; use the username and password settings"))
	case base.RawQuery != "" || base.Fragment != "":
		errs = append(errs, fmt.Errorf("base URL %q must not have a query or fragment", base.Redacted()))
	}
	prefix := strings.ToLower(strings.Trim(strings.TrimSpace(c.APIPrefix), "/"))
	if prefix == "" {
		prefix = "platformapi"
	}
	if prefix != "platformapi" && prefix != "api" {
		errs = append(errs, fmt.Errorf("API prefix %q must be \"platformapi\" or \"api\"", c.APIPrefix))
	}
	if strings.TrimSpace(c.Instance) == "" {
		errs = append(errs, errors.New("instance name is empty"))
	}
	if strings.TrimSpace(c.Username) == "" {
		errs = append(errs, errors.New("username is empty"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("password is empty"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, "", fmt.Errorf("archer configuration: %w", err)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	return base, prefix, nil
}

// httpClient returns the client in use, its transport wrapped by
// WrapTransport when that is set.
func (c Config) httpClient() (*http.Client, error) {
	hc, err := c.baseHTTPClient()
	if err != nil || c.WrapTransport == nil {
		return hc, err
	}
	wrapped := *hc
	base := wrapped.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped.Transport = c.WrapTransport(base)
	return &wrapped, nil
}

// baseHTTPClient is Config.HTTPClient, or else the default transport with
// the extra CA, the timeout, and redirects returned to the caller instead of
// followed (a redirect means SSO or a wrong URL).
func (c Config) baseHTTPClient() (*http.Client, error) {
	if c.HTTPClient != nil {
		return c.HTTPClient, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("archer configuration: read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("archer configuration: CA file %s holds no PEM certificate", c.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}
