package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// These tests put the local state behind Archer, as operations do —
// a restored backup, a lost database, a power cut — and find exactly one
// incident per email every time. They run the real binary on real SQLite
// files against the simulators.

// dbPath is the world's state database (M2A_DATABASE_URL is relative to
// the binary's working directory).
func (w *world) dbPath() string { return filepath.Join(w.dir, "state", "m2a.db") }

// deliver puts emails first..last-1 into the mailbox.
func (w *world) deliver(t *testing.T, first, last int) {
	t.Helper()
	for i := first; i < last; i++ {
		if _, err := w.graph.Deliver(testMbox, "Inbox", testEmail(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// uniqueIncidents checks that no two incidents carry the same key and
// returns how many there are.
func (w *world) uniqueIncidents(t *testing.T) int {
	t.Helper()
	keys := map[string]bool{}
	for _, r := range w.incidents() {
		k := fmt.Sprint(r.Fields["Reported Email Key"])
		if keys[k] {
			t.Errorf("two incidents for %s", k)
		}
		keys[k] = true
	}
	return len(keys)
}

// waitLog waits until the process's log holds n lines containing s.
func (p *proc) waitLog(t *testing.T, s string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for strings.Count(p.Logs(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d log lines with %q after %s:\n%s", strings.Count(p.Logs(), s), n, s, d, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func removeDatabase(t *testing.T, path string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

func TestARestoredBackupMakesNoSecondIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	w.deliver(t, 0, 5)
	w.waitIncidents(t, 5, 30*time.Second)

	// A consistent copy while the service runs, as the README says.
	backup := filepath.Join(w.dir, "backup.db")
	db, err := sql.Open("sqlite", "file:"+w.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`VACUUM INTO '` + backup + `'`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	w.deliver(t, 5, 20)
	w.waitIncidents(t, 20, 60*time.Second)
	p.stop(t)

	removeDatabase(t, w.dbPath())
	if err := os.Rename(backup, w.dbPath()); err != nil {
		t.Fatal(err)
	}
	p2 := w.start(t)
	// The restored delta link is older: the start-up resync queues the 15
	// emails processed after the backup again, and each is found in
	// Archer and adopted.
	p2.waitLog(t, `"outcome":"adopted"`, 15, 60*time.Second)
	p2.stop(t)
	if n := w.uniqueIncidents(t); n != 20 || len(w.incidents()) != 20 {
		t.Fatalf("%d incidents (%d distinct) for 20 emails after restoring a backup", len(w.incidents()), n)
	}
}

func TestALostDatabaseIsSaidLoudlyAndRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	w.deliver(t, 0, 5)
	w.waitIncidents(t, 5, 30*time.Second)
	// Archer stops creating: the next 5 emails are acknowledged and queued
	// but not processed when the database is lost.
	w.archer.FailNext(1_000_000, http.StatusServiceUnavailable)
	w.deliver(t, 5, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.graph.WaitDelivered(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	removeDatabase(t, w.dbPath())
	w.archer.FailNext(0, 0)

	p2 := w.start(t)
	p2.waitLog(t, "does not know this deployment's Graph subscription", 1, 30*time.Second)
	w.waitIncidents(t, 10, 60*time.Second)
	p2.waitLog(t, `"incident recorded"`, 10, 60*time.Second)
	p2.stop(t)
	if n := w.uniqueIncidents(t); n != 10 || len(w.incidents()) != 10 {
		t.Fatalf("%d incidents (%d distinct) for 10 emails after losing the database", len(w.incidents()), n)
	}
	if n := strings.Count(p2.Logs(), `"outcome":"adopted"`); n != 5 {
		t.Errorf("%d of the 5 processed emails adopted after the loss", n)
	}
}

func TestCutWALFramesMakeNoDuplicate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	w.deliver(t, 0, 12)
	w.waitIncidents(t, 12, 60*time.Second)
	p.waitLog(t, `"incident recorded"`, 12, 30*time.Second)
	// A power cut: the process dies, and the last frames of the WAL
	// never reached the disk.
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	wal := w.dbPath() + "-wal"
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatalf("no WAL after the kill: %v", err)
	}
	const header, frame = 32, 24 + 4096
	frames := (fi.Size() - header) / frame
	if frames < 2 {
		t.Fatalf("the WAL holds %d frames", frames)
	}
	if err := os.Truncate(wal, header+frame*(frames/2)); err != nil {
		t.Fatal(err)
	}
	t.Logf("cut the WAL from %d to %d frames", frames, frames/2)
	p2 := w.start(t)
	// The restarted service redoes what the lost frames held: its start-up
	// resync queues again what they had recorded, and the jobs run.
	p2.waitLog(t, `"resync done"`, 1, 60*time.Second)
	queueDrained(t, w, 60*time.Second)
	p2.stop(t)
	if n := w.uniqueIncidents(t); n != 12 || len(w.incidents()) != 12 {
		t.Fatalf("%d incidents (%d distinct) for 12 emails after cutting the WAL", len(w.incidents()), n)
	}
}

// queueDrained waits until the state database holds no job that will run.
func queueDrained(t *testing.T, w *world, d time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+w.dbPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	deadline := time.Now().Add(d)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM river_job WHERE state IN ('available','running','retryable','scheduled','pending')`).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still pending after %s (%v)", n, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTwoMissedEventsSecondsApartBothResync(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	w := newWorld(t)
	p := w.start(t)
	subs := w.graph.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	// Graph loses notifications: only the missed events tell.
	w.graph.SetBehavior(graphsim.Behavior{Drop: true})
	w.deliver(t, 0, 5)
	if err := w.graph.Lifecycle(subs[0].ID, "missed"); err != nil {
		t.Fatal(err)
	}
	w.waitIncidents(t, 5, 30*time.Second)
	time.Sleep(5 * time.Second) // the second event comes 5 s after the first, by the scenario
	w.deliver(t, 5, 10)
	if err := w.graph.Lifecycle(subs[0].ID, "missed"); err != nil {
		t.Fatal(err)
	}
	// Well within the 15-minute periodic resync.
	w.waitIncidents(t, 10, 30*time.Second)
	p.stop(t)
	if n := w.uniqueIncidents(t); n != 10 {
		t.Fatalf("%d incidents for 10 emails", n)
	}
}

func TestAFullDiskIsNotReadyAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system for the database needs root (the CI runs as root)")
	}
	w := newWorldWith(t, func(o *graphsim.Options) {
		o.RetryBackoff = 200 * time.Millisecond
		o.RetryWindow = 5 * time.Minute
	})
	state := filepath.Join(w.dir, "state")
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", state).Run() })
	p := w.start(t)
	w.deliver(t, 0, 3)
	w.waitIncidents(t, 3, 30*time.Second)

	// Fill the file system.
	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	_ = f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for get(t, "http://"+w.admin+"/readyz", "") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("readiness stayed ready with a full disk:\n%s", p.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.deliver(t, 3, 6)
	deadline = time.Now().Add(30 * time.Second)
	for {
		refused := 0
		for _, d := range w.graph.Deliveries() {
			if d.Status == http.StatusServiceUnavailable {
				refused++
			}
		}
		if refused > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification was answered 503 with a full disk:\n%s", p.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Space returns: Graph's retries are accepted, nothing is lost.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.waitIncidents(t, 6, 90*time.Second)
	p.stop(t)
	if n := w.uniqueIncidents(t); n != 6 {
		t.Fatalf("%d incidents for 6 emails", n)
	}
}
