package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The container files cannot be built here (no Docker engine), so these
// tests read them and check the wiring a deployment depends on.

func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines so each instruction is one line.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var from []string
	instr := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		instr[op] = append(instr[op], rest)
		if op == "FROM" {
			from = append(from, rest)
		}
	}
	if len(from) != 2 || !strings.Contains(from[1], "distroless/static") {
		t.Errorf("want a two-stage build ending on distroless static, got FROM %v", from)
	}
	build := strings.Join(instr["RUN"], "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/mail2archer"} {
		if !strings.Contains(build, want) {
			t.Errorf("build step lacks %q", want)
		}
	}
	if u := instr["USER"]; len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("USER %v: must be one non-root user", u)
	}
	if v := strings.Join(instr["VOLUME"], " "); !strings.Contains(v, "/data") {
		t.Errorf("VOLUME %q lacks /data", v)
	}
	if h := strings.Join(instr["HEALTHCHECK"], " "); !strings.Contains(h, `"healthcheck"`) {
		t.Errorf("HEALTHCHECK %q does not run mail2archer healthcheck", h)
	}
	if env := strings.Join(instr["ENV"], " "); !strings.Contains(env, "sqlite:///data/") {
		t.Errorf("ENV %q: the database must live on the /data volume", env)
	}
}

type composeFile struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Build           any               `yaml:"build"`
		Command         any               `yaml:"command"`
		EnvFile         any               `yaml:"env_file"`
		Environment     map[string]string `yaml:"environment"`
		User            string            `yaml:"user"`
		Ports           []string          `yaml:"ports"`
		Expose          []string          `yaml:"expose"`
		Volumes         []string          `yaml:"volumes"`
		Restart         string            `yaml:"restart"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		Healthcheck     *struct {
			Test        []string `yaml:"test"`
			Interval    string   `yaml:"interval"`
			Timeout     string   `yaml:"timeout"`
			StartPeriod string   `yaml:"start_period"`
			Retries     int      `yaml:"retries"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	app, ok := c.Services["mail2archer"]
	if !ok {
		t.Fatal("no mail2archer service")
	}
	proxy, ok := c.Services["caddy"]
	if !ok {
		t.Fatal("no caddy service")
	}
	// The service publishes only its admin port, and only on the host's
	// loopback; the public listener is reached through Caddy alone.
	for _, p := range app.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("mail2archer publishes %q beyond the host's loopback", p)
		}
	}
	if !slicesContain(app.Ports, "127.0.0.1:9090:9090") || app.Environment["M2A_ADMIN_LISTEN_ADDR"] != "0.0.0.0:9090" {
		t.Errorf("the admin listener must be published on 127.0.0.1:9090 only: ports %v, M2A_ADMIN_LISTEN_ADDR %q",
			app.Ports, app.Environment["M2A_ADMIN_LISTEN_ADDR"])
	}
	for name, s := range c.Services {
		if name != "caddy" && name != "mail2archer" && len(s.Ports) > 0 {
			t.Errorf("service %s publishes ports", name)
		}
	}
	if !slicesContain(proxy.Ports, "443:443") {
		t.Errorf("caddy ports %v lack 443", proxy.Ports)
	}
	if proxy.Command != nil {
		t.Errorf("caddy command %v: it must run the shipped Caddyfile, not reverse-proxy everything", proxy.Command)
	}
	if !slicesContain(proxy.Volumes, "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro") ||
		!slicesContain(proxy.Volumes, "./deploy/webhooks.caddy:/etc/caddy/webhooks.caddy:ro") {
		t.Errorf("caddy volumes %v must mount deploy/Caddyfile and deploy/webhooks.caddy", proxy.Volumes)
	}
	if proxy.Environment["M2A_UPSTREAM"] != "mail2archer"+app.Environment["M2A_LISTEN_ADDR"] ||
		!strings.Contains(proxy.Environment["M2A_PUBLIC_HOST"], "${M2A_PUBLIC_HOST") {
		t.Errorf("caddy environment %v does not match the service's public listener %q", proxy.Environment, app.Environment["M2A_LISTEN_ADDR"])
	}
	caddyfile, err := os.ReadFile("../../deploy/Caddyfile")
	if err != nil || !strings.Contains(string(caddyfile), "{$M2A_PUBLIC_HOST}") || !strings.Contains(string(caddyfile), "import webhooks.caddy") {
		t.Errorf("deploy/Caddyfile must serve {$M2A_PUBLIC_HOST} with import webhooks.caddy: %v", err)
	}
	if !strings.HasPrefix(app.Environment["M2A_PUBLIC_URL"], "https://${M2A_PUBLIC_HOST") {
		t.Errorf("public URL %q must be https on the proxy's host", app.Environment["M2A_PUBLIC_URL"])
	}
	if app.EnvFile != ".env" {
		t.Errorf("env_file %v, want .env", app.EnvFile)
	}
	if app.Healthcheck == nil || !slicesContain(app.Healthcheck.Test, "healthcheck") {
		t.Errorf("healthcheck %+v must run mail2archer healthcheck", app.Healthcheck)
	}
	if proxy.DependsOn["mail2archer"].Condition != "service_healthy" {
		t.Error("caddy must wait for a healthy mail2archer")
	}
	if !slicesContain(app.Volumes, "state:/data") || c.Volumes == nil {
		t.Errorf("volumes %v: the state must be on a named volume at /data", app.Volumes)
	}
	if !slicesContain(app.Volumes, "./mapping.yaml:/etc/mail2archer/mapping.yaml:ro") ||
		app.Environment["M2A_MAPPING_FILE"] != "/etc/mail2archer/mapping.yaml" {
		t.Errorf("the mapping file must be mounted read-only where M2A_MAPPING_FILE points: %v %q",
			app.Volumes, app.Environment["M2A_MAPPING_FILE"])
	}
	if _, ok := c.Volumes["state"]; !ok {
		t.Error("named volume state is not declared")
	}
	if !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(app.User) {
		t.Errorf("user %q must be a non-root uid:gid", app.User)
	}
	// Docker must wait longer than the service's own shutdown deadline
	// (M2A_SHUTDOWN_TIMEOUT, 25s by default) before it kills the process.
	if grace, err := time.ParseDuration(app.StopGracePeriod); err != nil || grace <= 25*time.Second {
		t.Errorf("stop_grace_period %q must exceed the 25s shutdown timeout", app.StopGracePeriod)
	}
	for name, s := range c.Services {
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("service %s has no restart policy", name)
		}
	}
}

func slicesContain(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}
