package ops

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

func TestCheckSendPermission(t *testing.T) {
	t.Parallel()
	granted := func(roles ...string) func(context.Context) ([]string, error) {
		return func(context.Context) ([]string, error) { return roles, nil }
	}
	failing := func(err error) func(context.Context) ([]string, error) {
		return func(context.Context) ([]string, error) { return nil, err }
	}
	tests := []struct {
		name   string
		roles  func(context.Context) ([]string, error)
		ok     bool
		detail []string
		fix    []string
	}{
		{"granted", granted("Mail.Read", "Mail.ReadWrite", "Mail.Send"), true,
			[]string{"carries Mail.Send", "application access policy"}, nil},
		{"missing", granted("Mail.Read", "Mail.ReadWrite"), false,
			[]string{"Mail.Read, Mail.ReadWrite but not Mail.Send", "ack:"},
			[]string{"Mail.Send", "admin consent", "application access policy", "New-ApplicationAccessPolicy", "Application Mail.Send", rbacForApplications}},
		{"other permissions only", granted("User.Read.All"), true,
			[]string{"cannot be seen", "RBAC for Applications", "Application Mail.Send"}, nil},
		{"nothing granted in Entra ID", granted(), true,
			[]string{"no Mail permission", rbacForApplications}, nil},
		{"wrong credential", failing(&graph.Error{Op: "read", Class: graph.ClassPermission, Message: "Entra ID rejected the application's credential"}), false,
			[]string{"could not read", "rejected"}, []string{"Entra ID rejected the application's credential"}},
		{"unreadable token", failing(&graph.Error{Op: "read", Class: graph.ClassPermanent, Message: "the access token is encrypted (JWE)"}), false,
			[]string{"encrypted"}, []string{"cannot be checked", "Mail.Send", "admin consent", rbacForApplications}},
		{"no answer", failing(&graph.Error{Op: "read", Class: graph.ClassTransient, Err: context.DeadlineExceeded}), false,
			[]string{"could not read"}, []string{"run the check again"}},
		{"not a graph error", failing(errors.New("boom")), false, []string{"boom"}, []string{"again"}},
	}
	for _, tt := range tests {
		ok, detail, fix := CheckSendPermission(context.Background(), tt.roles)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v (%s / %s)", tt.name, ok, tt.ok, detail, fix)
		}
		if ok && fix != "" {
			t.Errorf("%s: a passing line with a fix %q", tt.name, fix)
		}
		for _, s := range tt.detail {
			if !strings.Contains(detail, s) {
				t.Errorf("%s: detail %q lacks %q", tt.name, detail, s)
			}
		}
		for _, s := range tt.fix {
			if !strings.Contains(fix, s) {
				t.Errorf("%s: fix %q lacks %q", tt.name, fix, s)
			}
		}
	}
}

// TestCheckSendPermissionAgainstTheSimulator reads the roles of a real
// token through graph.Client.AppRoles.
func TestCheckSendPermissionAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	const tenant, app, secret = "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000", "sim-secret"
	for _, tt := range []struct {
		roles []string
		ok    bool
	}{
		{nil, true},
		{[]string{"Mail.Read", "Mail.ReadWrite"}, false},
	} {
		sim := graphsim.New(graphsim.Options{TenantID: tenant, AppID: app, ClientSecret: secret, AppRoles: tt.roles})
		srv := httptest.NewTLSServer(sim)
		t.Cleanup(func() {
			sim.Close()
			srv.Close()
		})
		gc, err := graph.New(graph.Config{TenantID: tenant, ClientID: app, ClientSecret: secret, BaseURL: srv.URL + "/v1.0",
			AuthorityHost: srv.URL, HTTPClient: srv.Client(), MaxRetries: -1}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if ok, detail, fix := CheckSendPermission(context.Background(), gc.AppRoles); ok != tt.ok {
			t.Errorf("roles %q: ok = %v (%s / %s), want %v", tt.roles, ok, detail, fix, tt.ok)
		}
	}
}
