package graph

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// tokenRequests counts the token requests the simulator received.
func tokenRequests(sim *graphsim.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") {
			n++
		}
	}
	return n
}

// TestAppRolesReadsTheTokenGraphIsCalledWith gets the roles through the
// real azidentity credential from the simulator's token endpoint, which
// issues what Options.AppRoles grants.
func TestAppRolesReadsTheTokenGraphIsCalledWith(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		roles []string
		want  []string
	}{
		{"default grant", nil, []string{"Mail.Read", "Mail.ReadWrite", "Mail.Send"}},
		{"read only", []string{"Mail.Read"}, []string{"Mail.Read"}},
		{"sorted", []string{"Mail.Send", "Mail.Read"}, []string{"Mail.Read", "Mail.Send"}},
		{"no permission at all", []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, graphsim.Options{AppRoles: tt.roles})
			ctx := context.Background()
			if _, err := b.client.ListSubscriptions(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := b.client.AppRoles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AppRoles = %q, want %q", got, tt.want)
			}
			// The token the Graph call used came from the credential's
			// cache: reading its roles asked Entra ID for nothing more.
			if n := tokenRequests(b.sim); n != 1 {
				t.Errorf("%d token requests, want the 1 of the Graph call", n)
			}
		})
	}
}

func TestAppRolesReportsACredentialFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{}, func(c *Config) { c.ClientSecret = "wrong" })
	roles, err := b.client.AppRoles(context.Background())
	if e := asError(t, err); e.Class != ClassPermission || !strings.Contains(e.Message, "credential") || roles != nil {
		t.Errorf("AppRoles with a wrong secret = %q, %v (class %s)", roles, err, e.Class)
	}
}

func TestTokenRoles(t *testing.T) {
	t.Parallel()
	b64 := base64.RawURLEncoding.EncodeToString
	jwt := func(payload string) string {
		return b64([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + b64([]byte(payload)) + ".c2lnbmF0dXJl"
	}
	many := make([]string, maxTokenRoles+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("Role.", i))
	}
	tests := []struct {
		name  string
		token string
		want  []string
		err   string
	}{
		{"roles", jwt(`{"aud":"https://graph.microsoft.com","roles":["Mail.Send","Mail.Read"]}`), []string{"Mail.Read", "Mail.Send"}, ""},
		{"no roles claim", jwt(`{"aud":"https://graph.microsoft.com"}`), []string{}, ""},
		{"duplicates and blanks", jwt(`{"roles":["Mail.Read"," ","Mail.Read"]}`), []string{"Mail.Read"}, ""},
		{"padded payload", b64([]byte("{}")) + "." + base64.URLEncoding.EncodeToString([]byte(`{"roles":["Mail.Send"]}`)) + ".", []string{"Mail.Send"}, ""},
		{"a long role is cut", jwt(`{"roles":["` + strings.Repeat("x", 300) + `"]}`), []string{strings.Repeat("x", maxRoleLength-1) + "…"}, ""},
		{"opaque", "graphsim.abcdef", nil, "not a JWT"},
		{"empty", "", nil, "not a JWT"},
		{"encrypted", "a.b.c.d.e", nil, "encrypted"},
		{"not base64", "a.!!!.c", nil, "base64url"},
		{"not JSON", jwt(`roles`), nil, "JSON"},
		{"roles not a list", jwt(`{"roles":"Mail.Send"}`), nil, "JSON"},
		{"too many roles", jwt(`{"roles":[` + strings.Join(many, ",") + `]}`), nil, "roles, more than"},
		{"too long", jwt(`{"x":"` + strings.Repeat("x", maxTokenLength) + `"}`), nil, "more than"},
	}
	for _, tt := range tests {
		got, err := tokenRoles(tt.token)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: err = %v, want one about %q", tt.name, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err == "" && !reflect.DeepEqual(got, tt.want):
			t.Errorf("%s: roles = %q, want %q", tt.name, got, tt.want)
		}
	}
}
