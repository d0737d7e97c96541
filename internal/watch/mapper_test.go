package watch_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/health"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/watch"
)

// The mapping component's detail once the test mapping passed.
const passedDetail = `Incidents / Incident: every field resolved, records found by "Key"`

// reachableFix is the mapping's fix when Decide has none.
const reachableFix = "check that Archer is reachable; the preflight is retried"

// unreachableFix is the Archer component's fix when Archer does not answer.
const unreachableFix = "check that Archer is up and reachable from this host at M2A_ARCHER_URL (network, proxy, firewall); jobs retry by themselves"

// The tests of the Mapper run in a synctest bubble: its clock is fake, so the
// waits between attempts are measured exactly and take no time.

func TestMapperRetriesAFailedPreflightWithADoublingWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		retry    time.Duration
		failures int
		waits    []time.Duration
	}{
		{"default first wait", 0, 3, []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}},
		{"configured first wait", 10 * time.Millisecond, 3, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}},
		{"doubling stops at five minutes", 2 * time.Minute, 4, []time.Duration{2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}},
		{"first attempt passes", time.Second, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				a := &fakeArcher{application: failFirst(tc.failures, refused(), incidentsApp(true))}
				var changes changeLog
				h := health.NewSet(changes.add, watch.Archer, watch.Mapping)
				m := watch.NewMapper(testMapping(t, "zip"), a, h, user, tc.retry, zerolog.Nop())

				// Run returns by itself once the preflight passed.
				await(t, goRun(func() { m.Run(t.Context()) }), "the preflight's pass")

				at := a.times("application")
				var waits []time.Duration
				for i := 1; i < len(at); i++ {
					waits = append(waits, at[i].Sub(at[i-1]))
				}
				if !slices.Equal(waits, tc.waits) {
					t.Errorf("waits between attempts %v, want %v", waits, tc.waits)
				}
				// Every retry reads Archer's metadata afresh.
				want := []string{"application"}
				for range tc.failures {
					want = append(want, "refresh", "application")
				}
				want = append(want, "find")
				if got := a.calls(); !slices.Equal(got, want) {
					t.Errorf("calls %v, want %v", got, want)
				}

				wantMapping := []string{"unknown→ok: " + passedDetail + " | "}
				wantArcher := []string{"unknown→ok: answering; logged in as " + user + " | "}
				if tc.failures > 0 {
					// A failure repeated with the same detail is one change.
					wantMapping = []string{
						"unknown→fail: mapping preflight against Archer: preflight: application \"Incidents\": " + refused().Error() + " | " + reachableFix,
						"fail→ok: " + passedDetail + " | ",
					}
					wantArcher = []string{
						"unknown→fail: mapping preflight against Archer: preflight: application \"Incidents\": " + refused().Error() + " | " + unreachableFix,
						"fail→ok: answering; logged in as " + user + " | ",
					}
				}
				if got := changes.of(watch.Mapping); !slices.Equal(got, wantMapping) {
					t.Errorf("mapping changes\n%q\nwant\n%q", got, wantMapping)
				}
				if got := changes.of(watch.Archer); !slices.Equal(got, wantArcher) {
					t.Errorf("archer changes\n%q\nwant\n%q", got, wantArcher)
				}
			})
		})
	}
}

func TestMapperServesTheMappingOnlyOnceThePreflightPassed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := &fakeArcher{application: failFirst(1, refused(), incidentsApp(true))}
		h := health.NewSet(nil, watch.Archer, watch.Mapping)
		m := watch.NewMapper(testMapping(t, "zip"), a, h, user, time.Second, zerolog.Nop())
		start := time.Now()

		type result struct {
			c     *incident.Compiled
			after time.Duration
		}
		waiting := make(chan result, 1)
		go func() {
			c := m.Compiled(context.Background())
			waiting <- result{c, time.Since(start)}
		}()
		done := goRun(func() { m.Run(t.Context()) })

		// The first attempt failed; Run waits a second before the next.
		synctest.Wait()
		if st := h.State(watch.Mapping); !st.Known || st.OK {
			t.Fatalf("mapping state after a failed preflight: %+v", st)
		}
		if c := m.Current(); c != nil {
			t.Fatalf("Current before the preflight passed: %+v", c)
		}
		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		if c := m.Compiled(cancelled); c != nil || time.Since(start) != 0 {
			t.Fatalf("Compiled with a cancelled context: %+v after %v", c, time.Since(start))
		}

		await(t, done, "the loop's return")
		got := <-waiting
		if got.c == nil || got.after != time.Second {
			t.Fatalf("a waiting Compiled got %+v after %v, want the mapping after 1s", got.c, got.after)
		}
		if got.c.App.Name != "Incidents" || got.c.Level.Name != "Incident" || got.c.KeyField.Name != "Key" {
			t.Errorf("compiled %s / %s / %s", got.c.App.Name, got.c.Level.Name, got.c.KeyField.Name)
		}
		if c := m.Current(); c != got.c {
			t.Errorf("Current %p, want the compiled mapping %p", c, got.c)
		}
		if c := m.Compiled(cancelled); c != got.c {
			t.Errorf("Compiled once passed %p, want %p", c, got.c)
		}
		if st := h.State(watch.Mapping); !st.OK || st.Detail != passedDetail {
			t.Errorf("mapping state %+v", st)
		}
	})
}

func TestMapperCompiledGivesUpAfterTenSeconds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := &fakeArcher{application: func(context.Context, string) (*archer.Application, error) { return nil, refused() }}
		m := watch.NewMapper(testMapping(t, "zip"), a, health.NewSet(nil), user, time.Minute, zerolog.Nop())
		ctx, cancel := context.WithCancel(t.Context())
		done := goRun(func() { m.Run(ctx) })

		start := time.Now()
		if c := m.Compiled(context.Background()); c != nil {
			t.Fatalf("Compiled without a passed preflight: %+v", c)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("Compiled waited %v, want 10s", waited)
		}
		cancel()
		await(t, done, "the loop's return")
	})
}

func TestMapperNamesTheProblemAsTheFix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		app   func(context.Context, string) (*archer.Application, error)
		find  func(context.Context) error
		fixed bool
		// detail and fix are parts of the mapping component's state; an
		// empty fix only asks for one.
		detail, fix string
		// archerOK is whether the archer component works after the failure.
		archerOK bool
	}{
		{
			name:     "mapping names a field the application lacks",
			app:      failFirst(0, nil, incidentsApp(false)),
			detail:   `key.field: "Key" is not a field of level "Incident"`,
			fix:      "fix the mapping file (M2A_MAPPING_FILE) and restart, or the Archer application it names; the preflight is retried",
			archerOK: true,
		},
		{
			name:   "refused login",
			app:    func(context.Context, string) (*archer.Application, error) { return nil, loginRefused() },
			detail: "archer login refused", fix: loginFix,
		},
		{
			name: "sign-on page",
			app: func(context.Context, string) (*archer.Application, error) {
				return nil, &archer.HTMLError{Op: "login", URL: "u", StatusCode: 302, Cause: "single sign-on is intercepting the API user"}
			},
			detail: "HTML page instead of JSON", fix: webPageFix + "single sign-on is intercepting the API user",
		},
		{
			name:   "content API cannot read the level",
			app:    failFirst(0, nil, incidentsApp(true)),
			find:   func(context.Context) error { return fmt.Errorf("archer find records: %w", archer.ErrNoContentAPI) },
			detail: `look up a record by the key field "Key"`, fix: contentFix,
		},
		{
			name:   "unreachable",
			app:    func(context.Context, string) (*archer.Application, error) { return nil, refused() },
			detail: "connection refused", fix: reachableFix,
		},
		{
			// Archer answered, so the archer component works; the
			// mapping's fix is then the generic one (see the report).
			name: "lookup refused with a validation message",
			app:  failFirst(0, nil, incidentsApp(true)),
			find: func(context.Context) error {
				return &archer.ValidationError{Op: "find records", Messages: []string{"The field is not searchable."}}
			},
			detail: "The field is not searchable.", archerOK: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				a := &fakeArcher{application: tc.app, find: tc.find}
				h := health.NewSet(nil, watch.Archer, watch.Mapping)
				m := watch.NewMapper(testMapping(t, "zip"), a, h, user, time.Minute, zerolog.Nop())
				ctx, cancel := context.WithCancel(t.Context())
				done := goRun(func() { m.Run(ctx) })
				synctest.Wait()

				st := h.State(watch.Mapping)
				switch {
				case !st.Known || st.OK:
					t.Errorf("mapping state %+v, want a failure", st)
				case !strings.Contains(st.Detail, tc.detail):
					t.Errorf("mapping detail %q does not name %q", st.Detail, tc.detail)
				case st.Fix == "" || !strings.Contains(st.Fix, tc.fix):
					t.Errorf("mapping fix %q, want one saying %q", st.Fix, tc.fix)
				}
				if st := h.State(watch.Archer); st.OK != tc.archerOK {
					t.Errorf("archer state %+v, want OK = %v", st, tc.archerOK)
				}
				if m.Current() != nil {
					t.Error("a mapping is served after a failed preflight")
				}
				cancel()
				await(t, done, "the loop's return")
			})
		})
	}
}

// TestMapperStopsWithoutReportingTheCancelledPreflight stops the service in
// the middle of a preflight: the cancelled call says nothing of Archer or of
// the mapping, so neither is reported failing (nor logged as such).
func TestMapperStopsWithoutReportingTheCancelledPreflight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		a := &fakeArcher{application: func(ctx context.Context, name string) (*archer.Application, error) {
			close(started)
			<-ctx.Done()
			return nil, fmt.Errorf("archer get applications: %w", ctx.Err())
		}}
		var changes changeLog
		h := health.NewSet(changes.add, watch.Archer, watch.Mapping)
		m := watch.NewMapper(testMapping(t, "zip"), a, h, user, time.Second, zerolog.Nop())
		ctx, cancel := context.WithCancel(t.Context())
		done := goRun(func() { m.Run(ctx) })
		await(t, started, "preflight")
		cancel()
		await(t, done, "the loop's return")
		if got := append(changes.of(watch.Archer), changes.of(watch.Mapping)...); len(got) != 0 {
			t.Errorf("changes reported by a stopped preflight: %q", got)
		}
		if m.Current() != nil {
			t.Error("a mapping is served after a cancelled preflight")
		}
	})
}

// TestMapperSeesAnApplicationFixedInArcher shows why a retry refreshes the
// client's metadata: the preflight passes once an administrator added the
// missing field, without a restart.
func TestMapperSeesAnApplicationFixedInArcher(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var fixed atomic.Bool
		a := &fakeArcher{application: func(context.Context, string) (*archer.Application, error) {
			// The client caches metadata until Refresh; the fix reaches it
			// only through one.
			return incidentsApp(fixed.Load()), nil
		}}
		var refreshed atomic.Bool
		a.refresh = func() { fixed.Store(refreshed.Load()) }
		var changes changeLog
		h := health.NewSet(changes.add, watch.Archer, watch.Mapping)
		m := watch.NewMapper(testMapping(t, "zip"), a, h, user, time.Second, zerolog.Nop())
		done := goRun(func() { m.Run(t.Context()) })

		// Two attempts fail while the field is missing.
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if n := len(a.times("application")); n != 2 {
			t.Fatalf("%d attempts in 1.5 s, want 2", n)
		}
		refreshed.Store(true) // the administrator adds the field
		await(t, done, "the loop's return")
		if m.Current() == nil {
			t.Fatal("no mapping after the application was fixed")
		}
		want := []string{
			`unknown→fail: mapping preflight against Archer: the mapping has problems:` + "\n" + `  - key.field: "Key" is not a field of level "Incident" | ` +
				"fix the mapping file (M2A_MAPPING_FILE) and restart, or the Archer application it names; the preflight is retried",
			"fail→ok: " + passedDetail + " | ",
		}
		if got := changes.of(watch.Mapping); !slices.Equal(got, want) {
			t.Errorf("mapping changes\n%q\nwant\n%q", got, want)
		}
	})
}

func TestMapperLogsTheMappingsWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attachments string
		warnings    []string
	}{
		{"raw", []string{"attachments: raw uploads the suspect email's attachments as they are"}},
		{"zip", nil},
	} {
		t.Run(tc.attachments, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			a := &fakeArcher{application: failFirst(0, nil, incidentsApp(true))}
			m := watch.NewMapper(testMapping(t, tc.attachments), a, health.NewSet(nil), user, 0, zerolog.New(&logs))
			synctest.Test(t, func(t *testing.T) {
				await(t, goRun(func() { m.Run(t.Context()) }), "the preflight's pass")
			})
			if m.Current() == nil {
				t.Fatal("preflight did not pass")
			}
			var got []string
			for _, l := range logs.lines(t) {
				if l["level"] != "warn" || l["component"] != "mapping" {
					t.Errorf("unexpected log line %v", l)
					continue
				}
				got = append(got, fmt.Sprint(l["message"]))
			}
			if len(got) != len(tc.warnings) {
				t.Fatalf("warnings logged %q, want %q", got, tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %q, want %q…", got[i], w)
				}
			}
		})
	}
}

// TestMapperAgainstTheArcherSimulator runs the example mapping's preflight
// through the real Archer client.
func TestMapperAgainstTheArcherSimulator(t *testing.T) {
	t.Parallel()
	mapping, err := incident.Load("../../api/mapping.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, password string
		ok             bool
		archerFix      string
	}{
		{"working credentials", "mail2archer-sandbox", true, ""},
		{"refused password", "wrong", false, loginFix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := simClient(t, serve(t, newSim(t)).URL, tc.password)
			first := make(chan health.Change, 8)
			h := health.NewSet(func(ch health.Change) {
				if ch.Component == watch.Mapping {
					first <- ch
				}
			}, watch.Archer, watch.Mapping)
			m := watch.NewMapper(mapping, c, h, user, time.Hour, zerolog.Nop())
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := goRun(func() { m.Run(ctx) })

			var ch health.Change
			select {
			case ch = <-first:
			case <-time.After(30 * time.Second):
				t.Fatal("no mapping state within 30 s")
			}
			if ch.To.OK != tc.ok {
				t.Fatalf("mapping %+v, want OK = %v", ch.To, tc.ok)
			}
			// The mapping is served before its state says so.
			if c := m.Current(); tc.ok && (c == nil || c.App.Name != "Security Incidents") {
				t.Errorf("compiled %+v", c)
			} else if !tc.ok && c != nil {
				t.Errorf("compiled %+v after a refused login", c)
			}
			if !tc.ok && !strings.Contains(ch.To.Fix, tc.archerFix) {
				t.Errorf("mapping fix %q does not say %q", ch.To.Fix, tc.archerFix)
			}
			checkArcherState(t, h.State(watch.Archer), tc.ok, map[bool]string{true: "answering; logged in as " + user, false: "archer login refused"}[tc.ok], tc.archerFix)
			cancel()
			<-done
		})
	}
}
