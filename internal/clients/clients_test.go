package clients

import (
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/config"
)

func TestEverySettingReachesItsClient(t *testing.T) {
	t.Parallel()
	cfg := config.Defaults()
	cfg.TenantID, cfg.ClientID, cfg.ClientSecret = "t", "c", config.Secret("s")
	cfg.ClientCertificateFile, cfg.ClientCertificatePassword = "cert.pem", config.Secret("p")
	cfg.GraphAuthorityHost = "https://login.example/"
	cfg.ArcherURL, cfg.ArcherAPIPrefix, cfg.ArcherInstance = "https://archer.example/RSAArcher", "api", "Prod"
	cfg.ArcherUsername, cfg.ArcherUserDomain, cfg.ArcherPassword = "u", "d", config.Secret("pw")
	cfg.ArcherCAFile, cfg.ArcherTimeout = "ca.pem", 7*time.Second
	g := Graph(cfg, nil)
	if g.TenantID != "t" || g.ClientID != "c" || g.ClientSecret != "s" || g.CertificateFile != "cert.pem" ||
		g.CertificatePassword != "p" || g.BaseURL != cfg.GraphBaseURL || g.AuthorityHost != "https://login.example/" {
		t.Errorf("graph config %+v", g)
	}
	a := Archer(cfg, nil)
	if a.BaseURL != cfg.ArcherURL || a.APIPrefix != "api" || a.Instance != "Prod" || a.Username != "u" ||
		a.UserDomain != "d" || a.Password != "pw" || a.CAFile != "ca.pem" || a.Timeout != 7*time.Second {
		t.Errorf("archer config %+v", a)
	}
	if strings.Contains(a.String(), "pw") {
		t.Errorf("the password prints: %s", a)
	}
}
