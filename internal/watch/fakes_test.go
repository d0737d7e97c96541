package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
)

// user is the Archer API user the loops name in their details.
const user = "svc-mail2archer"

// event is one call made to a fake, at the (bubble's) time it was made.
type event struct {
	what string
	at   time.Time
}

// fakeArcher is the Archer client of the loops. Each behaviour is a func so
// that a test states only what it needs; every call is recorded in order.
type fakeArcher struct {
	application func(ctx context.Context, name string) (*archer.Application, error)
	find        func(ctx context.Context) error
	ping        func(ctx context.Context) error
	refresh     func()

	mu     sync.Mutex
	events []event
}

func (a *fakeArcher) record(what string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, event{what: what, at: time.Now()})
}

// calls returns the names of the calls made, in order.
func (a *fakeArcher) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for _, e := range a.events {
		names = append(names, e.what)
	}
	return names
}

// times returns when each call named what was made.
func (a *fakeArcher) times(what string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var at []time.Time
	for _, e := range a.events {
		if e.what == what {
			at = append(at, e.at)
		}
	}
	return at
}

func (a *fakeArcher) Application(ctx context.Context, name string) (*archer.Application, error) {
	a.record("application")
	return a.application(ctx, name)
}

func (a *fakeArcher) ValuesListValues(_ context.Context, listID int64) ([]archer.Value, error) {
	a.record("values")
	return nil, fmt.Errorf("values list %d: the fake Archer has none", listID)
}

func (a *fakeArcher) FindByField(ctx context.Context, _ *archer.Application, _ *archer.Level, f archer.Field, value string) ([]int64, error) {
	a.record("find")
	if f.Name != "Key" || value != incident.ProbeKey {
		return nil, fmt.Errorf("find %q in %q: the preflight should probe the key field", value, f.Name)
	}
	if a.find == nil {
		return nil, nil
	}
	return nil, a.find(ctx)
}

func (a *fakeArcher) Ping(ctx context.Context) error {
	a.record("ping")
	return a.ping(ctx)
}

func (a *fakeArcher) Refresh() {
	a.record("refresh")
	if a.refresh != nil {
		a.refresh()
	}
}

// incidentsApp is an Archer application with one level; withKey adds the
// text field the test mapping uses as its key.
func incidentsApp(withKey bool) *archer.Application {
	fields := []archer.Field{{ID: 11, Name: "Title", Alias: "Title", Type: archer.FieldText, Required: true, LevelID: 1}}
	if withKey {
		fields = append(fields, archer.Field{ID: 10, Name: "Key", Alias: "Key", Type: archer.FieldText, LevelID: 1})
	}
	return &archer.Application{ID: 1, Name: "Incidents", Alias: "Incidents",
		Levels: []archer.Level{{ID: 1, Name: "Incident", Alias: "Incident", Fields: fields}}}
}

// testMapping maps incidentsApp with the given attachments mode.
func testMapping(t *testing.T, attachments string) *incident.Mapping {
	t.Helper()
	m, err := incident.Parse([]byte("application: Incidents\nattachments: " + attachments +
		"\nkey: {field: Key}\nfields:\n  Title: {value: Reported phishing}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// failFirst answers the first n calls with err, then with app.
func failFirst(n int, err error, app *archer.Application) func(context.Context, string) (*archer.Application, error) {
	var mu sync.Mutex
	calls := 0
	return func(context.Context, string) (*archer.Application, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= n {
			return nil, err
		}
		return app, nil
	}
}

// refused is the error the Archer client returns when nothing listens.
func refused() error {
	return &url.Error{Op: "Post", URL: "https://archer.example/RSAArcher/platformapi/core/security/login",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
}

// loginRefused is the error the Archer client returns for bad credentials.
func loginRefused() error {
	return fmt.Errorf("%w as %q on instance %q: %w", archer.ErrLogin, user, "Default",
		&archer.ValidationError{Op: "login", Messages: []string{"Invalid credentials"}})
}

// changeLog collects a health.Set's changes.
type changeLog struct {
	mu      sync.Mutex
	changes []health.Change
}

func (c *changeLog) add(ch health.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, ch)
}

// of describes the changes of component, one "from→to: detail | fix" each.
func (c *changeLog) of(component string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ch := range c.changes {
		if ch.Component == component {
			out = append(out, stateName(ch.From)+"→"+stateName(ch.To)+": "+ch.To.Detail+" | "+ch.To.Fix)
		}
	}
	return out
}

func stateName(s health.State) string {
	switch {
	case !s.Known:
		return "unknown"
	case s.OK:
		return "ok"
	}
	return "fail"
}

// logBuffer collects zerolog's JSON lines from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines decodes every line written so far.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// await receives from ch, failing the test when nothing comes within a day:
// of the fake clock in a synctest bubble, so a regression that loops or
// blocks fails at once instead of hanging.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(24 * time.Hour):
		t.Fatalf("%s: nothing within a day", what)
	}
	var zero T
	return zero
}

// goRun runs f in a goroutine; the channel is closed when f returns.
func goRun(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}
