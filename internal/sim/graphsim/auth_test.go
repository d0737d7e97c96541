package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jwtClaims decodes the payload of a token the simulator issued.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("token %q is not an unsigned JWT", tok)
	}
	var header map[string]any
	data, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(data, &header) != nil || header["alg"] != "none" || header["typ"] != "JWT" {
		t.Fatalf("header %s: %v", data, err)
	}
	data, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(data, &claims); err != nil {
		t.Fatalf("payload %s: %v", data, err)
	}
	return claims
}

func TestTokensCarryTheGrantedAppRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		roles []string
		want  any
	}{
		{"default", nil, []any{"Mail.Read", "Mail.ReadWrite", "Mail.Send"}},
		{"fewer", []string{"Mail.Read"}, []any{"Mail.Read"}},
		// Entra ID leaves the claim out when nothing is granted.
		{"none", []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Options{AppID: "app-1", TenantID: "tenant-1", AppRoles: tt.roles})
			v := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app-1"}, "client_secret": {"pw"}, "scope": {"https://graph.microsoft.com/.default"}}
			r := b.do(t, "POST", "/tenant-1/oauth2/v2.0/token", v.Encode(), "Content-Type", "application/x-www-form-urlencoded")
			tok, _ := r.json(t)["access_token"].(string)
			if r.status != http.StatusOK {
				t.Fatalf("token: %d %s", r.status, r.body)
			}
			c := jwtClaims(t, tok)
			if !reflect.DeepEqual(c["roles"], tt.want) {
				t.Errorf("roles = %v, want %v", c["roles"], tt.want)
			}
			exp, _ := c["exp"].(float64)
			if c["aud"] != "https://graph.microsoft.com" || c["tid"] != "tenant-1" || c["appid"] != "app-1" || c["idtyp"] != "app" ||
				c["uti"] == "" || time.Until(time.Unix(int64(exp), 0)) <= 50*time.Minute {
				t.Errorf("claims = %v", c)
			}
			// The token works on Graph, and no two tokens are alike.
			b.token = tok
			if r := b.do(t, "GET", "/v1.0/subscriptions", nil); r.status != http.StatusOK {
				t.Errorf("issued token rejected: %d", r.status)
			}
			if other := b.sim.IssueToken(); other == tok || jwtClaims(t, other)["uti"] == c["uti"] {
				t.Error("two tokens are alike")
			}
		})
	}
}

// TestRolesAreFixedWhenTheTokenIsIssued: the caller's copy of
// Options.AppRoles does not change what the simulator grants.
func TestRolesAreFixedWhenTheTokenIsIssued(t *testing.T) {
	t.Parallel()
	roles := []string{"Mail.Read", "Mail.Send"}
	b := setup(t, Options{AppRoles: roles})
	roles[1] = "Mail.ReadWrite"
	if got := jwtClaims(t, b.token)["roles"]; !reflect.DeepEqual(got, []any{"Mail.Read", "Mail.Send"}) {
		t.Errorf("roles = %v", got)
	}
	if r := b.do(t, "POST", sendPath, ackBody(nil)); r.status != http.StatusAccepted {
		t.Errorf("sendMail: %d %s", r.status, r.body)
	}
}
