package ops

import (
	"context"
	"strings"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// rbacForApplications is Microsoft's documentation of Exchange Online RBAC
// for Applications, which scopes an application permission to some
// mailboxes and replaces application access policies.
const rbacForApplications = "https://learn.microsoft.com/exchange/permissions-exo/application-rbac"

// sendPermissionFix says how to let the application send the
// acknowledgments, and how to keep it from sending as anyone else.
const sendPermissionFix = "in the app registration add the Microsoft Graph application permission Mail.Send and grant admin consent; " +
	"without a restriction the application may then send as any user, so limit it to the phishing mailbox: " +
	"the Exchange Online application access policy that limits Mail.Read to that mailbox covers Mail.Send too " +
	"(New-ApplicationAccessPolicy -AccessRight RestrictAccess), or, as Microsoft now recommends, " +
	"assign the role \"Application Mail.Send\" scoped to the mailbox with RBAC for Applications instead of the consent (" +
	rbacForApplications + ")"

// CheckSendPermission is the check line "graph permission Mail.Send", run
// when the mapping turns acknowledgments on: it reads the application
// permissions in the access token through roles (graph.Client.AppRoles)
// and reports whether Mail.Send is among them. detail says what was
// found; fix, for a failure, what to do. It sends nothing.
//
// The token shows only what was granted with admin consent in Entra ID.
// When it carries no Mail permission at all, the mailbox access comes
// from Exchange Online RBAC for Applications, which no token shows: the
// line then passes with a detail saying so, since the read check of the
// mailbox already fails when there is no access at all. The application
// access policy or RBAC scope that keeps the permission to the phishing
// mailbox cannot be seen from the token either; the detail reminds of it.
func CheckSendPermission(ctx context.Context, roles func(context.Context) ([]string, error)) (ok bool, detail, fix string) {
	granted, err := roles(ctx)
	if err != nil {
		switch d := graph.Decide(err); d.Action {
		case outcome.WaitOperator:
			fix = d.Fix
		case outcome.End:
			// A token that cannot be read says nothing about the grant.
			fix = "Mail.Send cannot be checked from this token: make sure the app registration has the Microsoft Graph application permission Mail.Send with admin consent, " +
				"or the Exchange Online role \"Application Mail.Send\" (" + rbacForApplications + ")"
		default:
			fix = "Entra ID did not answer in time; run the check again"
		}
		return false, "could not read the application permissions: " + clip.String(err.Error(), 300), fix
	}
	var mail []string
	for _, r := range granted {
		if strings.EqualFold(r, "Mail.Send") {
			return true, "the access token carries Mail.Send (admin consent granted); keep it limited to the phishing mailbox with an application access policy or RBAC for Applications", ""
		}
		if len(r) > 5 && strings.EqualFold(r[:5], "Mail.") {
			mail = append(mail, r)
		}
	}
	if len(mail) == 0 {
		return true, "cannot be seen: the access token carries no Mail permission at all, as when the mailbox access is granted with Exchange Online RBAC for Applications; " +
			"make sure the application has the role \"Application Mail.Send\" scoped to the phishing mailbox (" + rbacForApplications + ")", ""
	}
	return false, "the access token carries " + clip.String(strings.Join(mail, ", "), 200) + " but not Mail.Send, which the acknowledgments (ack: in the mapping) need", sendPermissionFix
}
