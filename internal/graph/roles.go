package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mail2archer/mail2archer/internal/clip"
)

// Bounds on what AppRoles reads from a token. Entra ID access tokens are a
// few kilobytes; the bounds only keep a malformed one from costing much.
const (
	maxTokenLength = 64 << 10
	maxTokenRoles  = 500
	maxRoleLength  = 200
)

// AppRoles returns the application permissions (app roles) of Microsoft
// Graph that Entra ID granted the application, such as Mail.Read or
// Mail.Send, sorted: the roles claim of the access token the client sends
// to Graph. It fetches the token through the client's credential, which
// serves it from its cache when it can, so a permission consented to
// since the token was issued shows once the token is renewed (within an
// hour, or in a new process).
//
// The token's payload is decoded without checking its signature: the
// token is our own, straight from Entra ID to this process over TLS, and
// the roles are only reported (by `mail2archer check`), never used to
// allow anything. Microsoft reserves the right to change the format of
// tokens for its own APIs, or to encrypt them; a token that cannot be
// read is an error, which a caller reports as "cannot tell".
//
// The claim shows only what was granted with admin consent in Entra ID.
// An Exchange Online application access policy, which narrows a
// permission to some mailboxes, is not visible in it, nor is a permission
// granted through Exchange Online RBAC for Applications
// (learn.microsoft.com/exchange/permissions-exo/application-rbac). A
// token without a roles claim yields an empty list and no error.
//
// A credential failure is an *Error classified as for every call; a token
// that is not a readable JWT is a ClassPermanent *Error.
func (c *Client) AppRoles(ctx context.Context) ([]string, error) {
	const op = "read the application permissions of the access token"
	// The options of the SDK's token provider, so that the credential's
	// cache serves the token Graph calls use.
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{graphScope}, EnableCAE: true})
	if err != nil {
		return nil, c.wrap(op, "", nil, err)
	}
	roles, err := tokenRoles(tok.Token)
	if err != nil {
		return nil, &Error{Op: op, Class: ClassPermanent, Message: err.Error(), Err: err}
	}
	return roles, nil
}

// tokenRoles reads the roles claim from the payload of a JWS compact
// token (header.payload.signature) without verifying it.
func tokenRoles(token string) ([]string, error) {
	if len(token) > maxTokenLength {
		return nil, fmt.Errorf("the access token has %d bytes, more than the %d expected of a JWT", len(token), maxTokenLength)
	}
	parts := strings.Split(token, ".")
	switch {
	case len(parts) == 5:
		return nil, errors.New("the access token is encrypted (JWE); its roles cannot be read")
	case len(parts) != 3:
		return nil, errors.New("the access token is not a JWT (header.payload.signature)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("the access token's payload is not base64url: %w", err)
	}
	var claims struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("the access token's payload is not a JSON object with a list of roles: %w", err)
	}
	if len(claims.Roles) > maxTokenRoles {
		return nil, fmt.Errorf("the access token lists %d roles, more than the %d expected", len(claims.Roles), maxTokenRoles)
	}
	roles := make([]string, 0, len(claims.Roles))
	for _, r := range claims.Roles {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, clip.String(r, maxRoleLength))
		}
	}
	slices.Sort(roles)
	return slices.Compact(roles), nil
}
