package health

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestChangesAreReportedOnceAndReadinessReadsState(t *testing.T) {
	t.Parallel()
	var changes []Change
	s := NewSet(func(c Change) { changes = append(changes, c) }, "archer")
	clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	check := s.Check("archer", "no call to Archer yet", false)
	if d, err := s.Check("graph", "no message read yet", true)(context.Background()); err != nil || d != "no message read yet" {
		t.Fatalf("unknown but fine: %q %v", d, err)
	}
	if d, err := check(context.Background()); err == nil || d != "no call to Archer yet" {
		t.Fatalf("unknown: %q %v", d, err)
	}
	for i := 0; i < 1000; i++ {
		s.Fail("archer", "login refused", "check M2A_ARCHER_PASSWORD")
	}
	s.Fail("archer", "HTTP 503", "")
	s.OK("archer", "last call succeeded")
	s.OK("archer", "last call succeeded")
	want := []string{"unknown→fail:login refused", "fail→fail:HTTP 503", "fail→ok:last call succeeded"}
	if len(changes) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(changes), len(want), changes)
	}
	for i, c := range changes {
		from := map[bool]string{true: "ok", false: "fail"}[c.From.OK]
		if !c.From.Known {
			from = "unknown"
		}
		got := from + "→" + map[bool]string{true: "ok", false: "fail"}[c.To.OK] + ":" + c.To.Detail
		if got != want[i] {
			t.Errorf("change %d: %s, want %s", i, got, want[i])
		}
	}
	if d, err := check(context.Background()); err != nil || d != "last call succeeded" {
		t.Fatalf("ok: %q %v", d, err)
	}
	s.Fail("archer", "login refused", "check M2A_ARCHER_PASSWORD")
	if d, err := check(context.Background()); err == nil || !strings.Contains(d, "fix: check M2A_ARCHER_PASSWORD") {
		t.Fatalf("fail: %q %v", d, err)
	}
	st := s.State("archer")
	if st.Since.After(st.Last) || st.OK {
		t.Fatalf("state %+v", st)
	}
}
