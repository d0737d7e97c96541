package main

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/internal/config"
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
		Deploy *struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
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
	if proxy.Environment["M2A_UPSTREAM_HOST"] != "mail2archer" ||
		":"+proxy.Environment["M2A_UPSTREAM_PORT"] != app.Environment["M2A_LISTEN_ADDR"] ||
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

// TestComposeHAFile checks the wiring of docker-compose.ha.yml, the override
// that runs three replicas on PostgreSQL: the official image on a named
// volume with a healthcheck, the replicas' database URL pointing at that
// service with its password required from .env, the replicas waiting for a
// healthy database, the base file's lists replaced rather than appended to,
// one admin port per replica, and Caddy routing to every replica.
func TestComposeHAFile(t *testing.T) {
	t.Parallel()
	base := readComposeFile(t, "../../docker-compose.yml")
	ha := readComposeFile(t, "../../docker-compose.ha.yml")
	raw, err := os.ReadFile("../../docker-compose.ha.yml")
	if err != nil {
		t.Fatal(err)
	}

	// The database: the official image, its data on a named volume, a
	// healthcheck, no published port.
	var dbName string
	for name, s := range ha.Services {
		if strings.HasPrefix(s.Image, "postgres:") {
			dbName = name
		}
	}
	db, ok := ha.Services[dbName]
	if !ok || db.Image != "postgres:17" {
		images := map[string]string{}
		for name, s := range ha.Services {
			images[name] = s.Image
		}
		t.Fatalf("no service on the official postgres:17 image: %v", images)
	}
	user, dbname := db.Environment["POSTGRES_USER"], db.Environment["POSTGRES_DB"]
	if user != "mail2archer" || dbname != "mail2archer" {
		t.Errorf("POSTGRES_USER %q and POSTGRES_DB %q, want mail2archer", user, dbname)
	}
	requiredPassword := regexp.MustCompile(`\$\{M2A_POSTGRES_PASSWORD:\?[^}]+\}`)
	if pw := db.Environment["POSTGRES_PASSWORD"]; !requiredPassword.MatchString(pw) || requiredPassword.ReplaceAllString(pw, "") != "" {
		t.Errorf("POSTGRES_PASSWORD %q must be ${M2A_POSTGRES_PASSWORD:?message}, required from .env", pw)
	}
	var dataVolume string
	for _, v := range db.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == "/var/lib/postgresql/data" {
			dataVolume = src
		}
	}
	if _, declared := ha.Volumes[dataVolume]; !declared || strings.ContainsAny(dataVolume, "./") {
		t.Errorf("postgres volumes %v: the data must be on a declared named volume at /var/lib/postgresql/data", db.Volumes)
	}
	if db.Healthcheck == nil || !slicesContain(db.Healthcheck.Test, "pg_isready") {
		t.Errorf("postgres healthcheck %+v must run pg_isready", db.Healthcheck)
	}
	if len(db.Ports) > 0 || db.Restart == "" || db.Restart == "no" {
		t.Errorf("postgres: ports %v must be none, restart %q must be a policy", db.Ports, db.Restart)
	}

	// The replicas share that database and wait until it is healthy.
	app := ha.Services["mail2archer"]
	if app.Deploy == nil || app.Deploy.Replicas != 3 {
		t.Fatalf("mail2archer deploy %+v, want replicas: 3", app.Deploy)
	}
	dsn := app.Environment["M2A_DATABASE_URL"]
	if n := len(requiredPassword.FindAllString(dsn, -1)); n != 1 {
		t.Errorf("M2A_DATABASE_URL %q must carry ${M2A_POSTGRES_PASSWORD:?message} once, not %d times", dsn, n)
	}
	u, err := url.Parse(requiredPassword.ReplaceAllString(dsn, "PASSWORD"))
	if err != nil {
		t.Fatalf("M2A_DATABASE_URL %q: %v", dsn, err)
	}
	if pw, _ := u.User.Password(); u.Scheme != "postgres" || u.Hostname() != dbName || u.Port() != "5432" ||
		u.User.Username() != user || pw != "PASSWORD" || u.Path != "/"+dbname {
		t.Errorf("M2A_DATABASE_URL %q must be postgres://%s:${M2A_POSTGRES_PASSWORD…}@%s:5432/%s", dsn, user, dbName, dbname)
	}
	if app.DependsOn[dbName].Condition != "service_healthy" {
		t.Errorf("mail2archer depends_on %+v: it must wait for a healthy %s", app.DependsOn, dbName)
	}

	// The base file's volumes and ports are replaced (!override), not
	// appended to: no SQLite volume, and no 127.0.0.1:9090 that only one
	// container can publish. The tag needs Docker Compose 2.24.4.
	for _, key := range []string{"volumes", "ports"} {
		if tag := serviceKeyTag(t, raw, "mail2archer", key); tag != "!override" {
			t.Errorf("mail2archer %s is tagged %q: it must replace the base file's list with !override", key, tag)
		}
	}
	if !strings.Contains(string(raw), "Docker Compose 2.24.4") {
		t.Error("docker-compose.ha.yml uses !override but does not say it needs Docker Compose 2.24.4")
	}
	for _, v := range app.Volumes {
		if strings.Contains(v, ":/data") {
			t.Errorf("mail2archer volumes %v: the replicas need no SQLite state volume", app.Volumes)
		}
	}
	if !slicesContain(app.Volumes, "./mapping.yaml:/etc/mail2archer/mapping.yaml:ro") {
		t.Errorf("mail2archer volumes %v lost the mapping file", app.Volumes)
	}

	// One admin port per replica, on the host's loopback only, to the
	// admin listener the base file configures.
	_, adminPort, err := net.SplitHostPort(base.Services["mail2archer"].Environment["M2A_ADMIN_LISTEN_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Ports) != 1 {
		t.Fatalf("mail2archer ports %v, want one loopback range", app.Ports)
	}
	m := regexp.MustCompile(`^127\.0\.0\.1:(\d+)-(\d+):(\d+)$`).FindStringSubmatch(app.Ports[0])
	if m == nil {
		t.Fatalf("mail2archer ports %q, want 127.0.0.1:FIRST-LAST:%s", app.Ports[0], adminPort)
	}
	first, _ := strconv.Atoi(m[1])
	last, _ := strconv.Atoi(m[2])
	if last-first+1 != app.Deploy.Replicas || m[3] != adminPort {
		t.Errorf("mail2archer ports %q: want %d host ports, one per replica, to the admin port %s", app.Ports[0], app.Deploy.Replicas, adminPort)
	}

	// Caddy is the base file's, routing to every address of the service
	// name with the shipped routing file, which reads those variables.
	if _, overridden := ha.Services["caddy"]; overridden {
		t.Error("docker-compose.ha.yml overrides caddy: the base file's routing must serve both layouts")
	}
	proxy := base.Services["caddy"]
	if !slicesContain(proxy.Volumes, "./deploy/webhooks.caddy:/etc/caddy/webhooks.caddy:ro") ||
		proxy.Environment["M2A_UPSTREAM_HOST"] != "mail2archer" || proxy.DependsOn["mail2archer"].Condition != "service_healthy" {
		t.Errorf("caddy must mount deploy/webhooks.caddy, route to the name mail2archer and wait for it: volumes %v, environment %v",
			proxy.Volumes, proxy.Environment)
	}
	routing, err := os.ReadFile("../../deploy/webhooks.caddy")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(routing), "dynamic a {$M2A_UPSTREAM_HOST:mail2archer} {$M2A_UPSTREAM_PORT:8080}") ||
		!strings.Contains(string(routing), "lb_policy round_robin") {
		t.Error("deploy/webhooks.caddy must balance round robin over every address of {$M2A_UPSTREAM_HOST}, port {$M2A_UPSTREAM_PORT}")
	}
}

// TestComposeVariablesAreKnownToTheService checks every M2A_ variable the
// compose files read from .env: the service gets the same .env as its
// env_file and refuses M2A_ variables it does not know, so each must be a
// setting or a deployment-only name, and .env.example must show it.
func TestComposeVariablesAreKnownToTheService(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range config.KnownNames() {
		known[n] = true
	}
	ref := regexp.MustCompile(`\$\{(M2A_[A-Z0-9_]+)`)
	for _, file := range []string{"../../docker-compose.yml", "../../docker-compose.ha.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		refs := ref.FindAllStringSubmatch(string(b), -1)
		if len(refs) == 0 {
			t.Errorf("%s reads no M2A_ variable from .env", file)
		}
		for _, m := range refs {
			name := m[1]
			if !known[name] {
				t.Errorf("%s reads %s from .env, which would stop the service (not in config.DeploymentOnly)", file, name)
			}
			if !regexp.MustCompile(`(?m)^#?` + name + `=`).Match(example) {
				t.Errorf("%s reads %s, which .env.example does not show", file, name)
			}
		}
	}
}

// readComposeFile parses a compose file, refusing keys the tests do not know.
func readComposeFile(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return c
}

// serviceKeyTag returns the YAML tag of services.<service>.<key>, such as
// !override, or "" when the key is absent.
func serviceKeyTag(t *testing.T, doc []byte, service, key string) string {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil || len(root.Content) == 0 {
		t.Fatalf("parse compose file: %v", err)
	}
	node := root.Content[0]
	for _, k := range []string{"services", service, key} {
		var next *yaml.Node
		for i := 0; node.Kind == yaml.MappingNode && i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == k {
				next = node.Content[i+1]
			}
		}
		if next == nil {
			return ""
		}
		node = next
	}
	return node.Tag
}
