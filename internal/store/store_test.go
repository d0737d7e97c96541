package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/pgdb"
	"github.com/mail2archer/mail2archer/subscriptions"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	return openURL(t, "sqlite://"+path)
}

func openURL(t *testing.T, rawURL string) *Store {
	t.Helper()
	s, err := Open(context.Background(), rawURL, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// eachURL runs test with the URL of a new SQLite database and, when the
// tests have a PostgreSQL server, of a new PostgreSQL database.
func eachURL(t *testing.T, test func(t *testing.T, rawURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, "sqlite://"+filepath.Join(t.TempDir(), "state.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(t, pgdb.Database(t))
	})
}

// eachStore runs test on a new SQLite store and, when the tests have a
// PostgreSQL server (M2A_TEST_POSTGRES_URL), on a new PostgreSQL store.
func eachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, open(t, filepath.Join(t.TempDir(), "state.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(t, openURL(t, pgdb.Database(t)))
	})
}

func TestOpenCreatesDirectoryAndMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "state.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path) // a second start runs no migration twice
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM m2a_migration`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	if n != len(files) || n < 3 {
		t.Errorf("%d migration rows, want one per file (%d)", n, len(files))
	}
	for _, table := range []string{"river_job", "m2a_subscription", "m2a_message", "m2a_delta_link"} {
		if _, err := s.DB().Exec(`SELECT count(*) FROM ` + table); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
	if c, err := s.JobCounts(context.Background()); err != nil || len(c) != 0 {
		t.Errorf("job counts %v %v", c, err)
	}
}

func TestPostgresMigratesOnceWhenReplicasStartTogether(t *testing.T) {
	t.Parallel()
	dbURL := pgdb.Database(t)
	ctx := context.Background()
	const replicas = 4
	errs := make(chan error, replicas)
	stores := make(chan *Store, replicas)
	for range replicas {
		go func() {
			s, err := OpenService(ctx, dbURL, zerolog.Nop())
			if err == nil {
				stores <- s
			}
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatalf("a replica could not start: %v", err)
		}
	}
	close(stores)
	for s := range stores {
		t.Cleanup(func() { _ = s.Close() })
	}
	s := openURL(t, dbURL)
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM m2a_migration`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(migrations, "migrations/*.sql")
	if n != len(files) {
		t.Errorf("%d migration rows after %d replicas started, want %d", n, replicas, len(files))
	}
	if !s.Postgres() || s.Dir() != "" {
		t.Errorf("Postgres() %v, Dir() %q", s.Postgres(), s.Dir())
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "sqlite://", "postgres://127.0.0.1:1/x?connect_timeout=1", "sqlite://x.db?_pragma=foo", "x.db"} {
		if _, err := Open(context.Background(), u, zerolog.Nop()); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestSubscriptions(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		exp := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		sub := subscriptions.Record{ID: "sub-1", Mailbox: "phish@contoso.com", Folder: "Inbox", ClientState: "secret", ExpiresAt: exp}
		if err := s.SaveSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
		got, err := s.Subscription(ctx, "sub-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientState != "secret" || !got.ExpiresAt.Equal(exp) || got.Mailbox != sub.Mailbox {
			t.Errorf("got %+v", got)
		}
		sub.ExpiresAt = exp.Add(72 * time.Hour)
		if err := s.SaveSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
		all, err := s.Subscriptions(ctx)
		if err != nil || len(all) != 1 || !all[0].ExpiresAt.Equal(sub.ExpiresAt) {
			t.Fatalf("list %+v %v", all, err)
		}
		if err := s.DeleteSubscription(ctx, "sub-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscription(ctx, "sub-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestMessageIntentThenRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.Message(ctx, "mb", "m1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("before intent: %v", err)
		}
		m, err := s.SaveIntent(ctx, Message{Mailbox: "mb", MessageID: "m1", RecordKey: "mb/m1"})
		if err != nil || m.RecordID != 0 || m.RecordKey != "mb/m1" {
			t.Fatalf("intent %+v %v", m, err)
		}
		// A second intent keeps the first row.
		if m, err = s.SaveIntent(ctx, Message{Mailbox: "mb", MessageID: "m1", RecordKey: "other"}); err != nil || m.RecordKey != "mb/m1" {
			t.Fatalf("second intent %+v %v", m, err)
		}
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.saveRecord(inSQLTx(ctx, tx), "mb", "m1", 239643); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if m, err = s.Message(ctx, "mb", "m1"); err != nil || m.RecordID != 239643 {
			t.Fatalf("after record %+v %v", m, err)
		}
		tx, _ = s.DB().BeginTx(ctx, nil)
		if err := s.saveRecord(inSQLTx(ctx, tx), "mb", "unknown", 1); err == nil {
			t.Error("record without intent accepted")
		}
		_ = tx.Rollback()
	})
}

func TestASecondServiceOnTheSameDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := "sqlite://" + filepath.Join(t.TempDir(), "state.db")
	first, err := OpenService(ctx, url, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenService(ctx, url, zerolog.Nop())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("second exclusive open: %v", err)
	}
	// Operator commands open beside the service.
	op, err := Open(ctx, url, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = op.Close()
	if err := first.Ping(ctx); err != nil {
		t.Fatalf("the first service's database: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenService(ctx, url, zerolog.Nop())
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	_ = again.Close()
}

func TestWritesAndIntegrityAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "state.db")
	s, err := OpenService(ctx, url, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ProbeWrite(ctx); err != nil {
		t.Fatal(err)
	}
	// A lease left by a process that died is released at the next start.
	if ok, err := s.TryAcquireLease(ctx, "subscriptions", "dead-process", time.Now(), time.Hour); err != nil || !ok {
		t.Fatal(ok, err)
	}
	_ = s.Close()
	s, err = OpenService(ctx, url, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryAcquireLease(ctx, "subscriptions", "new-process", time.Now(), time.Hour); err != nil || !ok {
		t.Fatalf("the dead process's lease was not released: %v %v", ok, err)
	}
	_ = s.Close()

	// A damaged file is refused with the ways to recover.
	path := filepath.Join(dir, "state.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096 + 100; i < len(b) && i < 4096*3; i++ {
		b[i] ^= 0xA5
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenService(ctx, url, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "restore the last backup") && !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("a damaged database was opened: %v", err)
	}
}

func TestAReadOnlyDatabaseIsNamedAtStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s, err := Open(ctx, "sqlite://"+path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if os.Geteuid() == 0 {
		// Root writes read-only files: make the directory a read-only
		// mount instead, as a volume mounted :ro would be.
		if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
			t.Skipf("cannot bind-mount as root here: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
		if out, err := exec.Command("mount", "-o", "remount,ro,bind", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only: %v %s", err, out)
		}
	} else if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err = OpenService(ctx, "sqlite://"+path, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("a read-only database: %v", err)
	}
}

// inSQLTx runs statements in a database/sql transaction (on PostgreSQL,
// over the same pool).
func inSQLTx(ctx context.Context, tx *sql.Tx) execFunc {
	return func(q string, args ...any) (int64, error) { return sqlExec(ctx, tx, q, args...) }
}

type testArgs struct {
	Mailbox   string `json:"mailbox"`
	MessageID string `json:"message_id"`
}

func (testArgs) Kind() string { return "process_message" }

func TestEndedJobsOfAProcessedEmailAreForgotten(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		q, err := s.NewQueue(&river.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, a := range []testArgs{{"mb", "m1"}, {"mb", "m1"}, {"mb", "m2"}, {"other", "m1"}} {
			r, err := q.Insert(ctx, a, nil)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.Job.ID)
		}
		// The first three ended; the fourth (another mailbox) too.
		if _, err := s.DB().Exec(`UPDATE river_job SET state = 'discarded', finalized_at = CURRENT_TIMESTAMP WHERE id IN ($1, $2, $3)`, ids[0], ids[2], ids[3]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().Exec(`UPDATE river_job SET state = 'cancelled', finalized_at = CURRENT_TIMESTAMP WHERE id = $1`, ids[1]); err != nil {
			t.Fatal(err)
		}
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := forgetEndedJobs(inSQLTx(ctx, tx), "mb", "m1")
		if err != nil || n != 2 {
			t.Fatalf("forgot %d jobs: %v", n, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.DB().QueryRow(`SELECT count(*) FROM river_job`).Scan(&left); err != nil || left != 2 {
			t.Fatalf("%d jobs left, want 2: %v", left, err)
		}
	})
}
