// Package clients turns the service's configuration into the
// configurations of its two outside systems' clients, Microsoft Graph and
// Archer, and of the subscriptions manager, so that the service and the
// operator commands build them alike.
package clients

import (
	"net/http"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// Graph is the Graph client's configuration from the service's; hc, when
// set, is the parent HTTP client (a test CA, metrics).
func Graph(cfg *config.Config, hc *http.Client) graph.Config {
	return graph.Config{
		TenantID: cfg.TenantID, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret.Reveal(),
		CertificateFile: cfg.ClientCertificateFile, CertificatePassword: cfg.ClientCertificatePassword.Reveal(),
		BaseURL: cfg.GraphBaseURL, AuthorityHost: cfg.GraphAuthorityHost, HTTPClient: hc,
	}
}

// Archer is the Archer client's configuration from the service's; hc, when
// set, replaces the client's own HTTP client.
func Archer(cfg *config.Config, hc *http.Client) archer.Config {
	return archer.Config{
		BaseURL: cfg.ArcherURL, APIPrefix: cfg.ArcherAPIPrefix, Instance: cfg.ArcherInstance,
		Username: cfg.ArcherUsername, UserDomain: cfg.ArcherUserDomain, Password: cfg.ArcherPassword.Reveal(),
		CAFile: cfg.ArcherCAFile, Timeout: cfg.ArcherTimeout, HTTPClient: hc,
	}
}

// Subscriptions is the subscriptions manager's configuration from the
// service's.
func Subscriptions(cfg *config.Config) subscriptions.Config {
	since, _ := cfg.InitialSync() // validated with the configuration
	return subscriptions.Config{
		Mailboxes: cfg.MailboxList(), Folder: cfg.MailFolder,
		NotificationURL: cfg.WebhookURL(), LifecycleURL: cfg.LifecycleURL(),
		AllowHTTP: cfg.AllowInsecurePublicURL, MaxLifetime: cfg.SubscriptionLifetime,
		ResyncInterval: cfg.ResyncInterval, InitialSyncSince: since, FullResyncWindow: cfg.FullResyncWindow,
	}
}
