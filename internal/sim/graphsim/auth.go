package graphsim

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// tokenLifetime is how long issued access tokens live.
const tokenLifetime = time.Hour

func externalBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveOpenIDConfig answers MSAL's tenant discovery for
// {authority}/{tenant}/v2.0/.well-known/openid-configuration.
func (s *Server) serveOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	s.record(r, nil)
	tenant := firstSegment(r.URL.Path)
	if !s.knownTenant(tenant) {
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":             "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found.",
		})
		return
	}
	base := externalBase(r) + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "EU",
	})
}

func (s *Server) knownTenant(t string) bool {
	return strings.EqualFold(t, s.opts.TenantID) || strings.EqualFold(t, "organizations")
}

// serveToken implements the client-credentials grant with a client secret
// or a client assertion (certificate credential).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, 1<<20)
	s.record(r, redactForm(body))
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body could not be read.")
		return
	}
	if fr := s.fault(RouteToken, ""); fr != nil {
		s.applyFault(w, r, fr)
		return
	}
	if r.Method != http.MethodPost {
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.")
		return
	}
	tenant := firstSegment(r.URL.Path)
	if !s.knownTenant(tenant) {
		tokenError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	}
	form, err := parseForm(body)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain a form.")
		return
	}
	if form.Get("grant_type") != "client_credentials" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return
	}
	clientID := form.Get("client_id")
	if clientID != s.opts.AppID {
		tokenError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory.")
		return
	}
	scope := form.Get("scope")
	if !strings.HasSuffix(strings.Fields(scope + " x")[0], "/.default") {
		tokenError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	}
	switch {
	case form.Get("client_secret") != "":
		if s.opts.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(form.Get("client_secret")), []byte(s.opts.ClientSecret)) != 1 {
			tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
	case form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
		if !assertionFor(form.Get("client_assertion"), s.opts.AppID) {
			tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation.")
			return
		}
	default:
		tokenError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	tok := s.IssueToken()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(tokenLifetime.Seconds()),
		"ext_expires_in": int(tokenLifetime.Seconds()), "access_token": tok,
	})
}

// assertionFor checks the claims of a client assertion JWT: issuer and
// subject must be the app. The signature is not verified.
func assertionFor(jwt, appID string) bool {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return false
	}
	return claims.Iss == appID && claims.Sub == appID
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": desc, "error_codes": []int{},
		"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": newGUID(), "correlation_id": newGUID(),
	})
}

// defaultAppRoles are the application permissions tokens carry when
// Options.AppRoles is nil: everything mail2archer may use.
var defaultAppRoles = []string{"Mail.Read", "Mail.ReadWrite", "Mail.Send"}

// grant is what an issued access token allows.
type grant struct {
	expires time.Time
	roles   []string
}

// hasRole reports whether the token carries the application permission.
func (g grant) hasRole(role string) bool {
	return slices.Contains(g.roles, role)
}

// IssueToken mints an access token the Graph endpoints accept for an hour,
// as the token endpoint does. Token lifetimes follow the wall clock, like
// the credential caches in clients, so Advance does not expire them.
//
// The token is shaped like an Entra ID access token for Graph: a JWT
// whose payload carries the audience, the tenant (tid), the application
// (appid), idtyp "app", the lifetime (iat, nbf, exp), a random unique id
// (uti) and, when there are any, the application permissions in roles
// (Options.AppRoles). It is not signed ("alg": "none", empty signature):
// the simulator recognises its tokens by looking them up, and the random
// uti makes them unguessable.
func (s *Server) IssueToken() string {
	now := time.Now()
	exp := now.Add(tokenLifetime)
	roles := slices.Clone(s.opts.AppRoles)
	claims := map[string]any{
		"aud":   "https://graph.microsoft.com",
		"iss":   "https://sts.windows.net/" + s.opts.TenantID + "/",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   exp.Unix(),
		"appid": s.opts.AppID,
		"idtyp": "app",
		"tid":   s.opts.TenantID,
		"uti":   newOpaque(),
		"ver":   "1.0",
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	payload, _ := json.Marshal(claims)
	tok := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "."
	s.mu.Lock()
	s.tokens[tok] = grant{expires: exp, roles: roles}
	s.mu.Unlock()
	return tok
}

// authorize checks the bearer token and returns what it allows; it writes
// the 401 itself. With Options.AnyBearer a token the simulator did not
// issue carries Options.AppRoles.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (grant, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return grant{}, false
	}
	s.mu.Lock()
	g, ok := s.tokens[tok]
	s.mu.Unlock()
	if s.opts.AnyBearer {
		if !ok {
			g = grant{roles: s.opts.AppRoles}
		}
		return g, true
	}
	if !ok {
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return grant{}, false
	}
	if !time.Now().Before(g.expires) {
		writeError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return grant{}, false
	}
	return g, true
}
