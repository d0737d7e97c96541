// Package store opens the state database, runs the queue's and the
// application's migrations, and keeps the application's own tables:
// subscriptions with their clientState secrets, processed messages with their
// Archer record ids, and delta links.
//
// Two databases hold it: an embedded SQLite file (sqlite://PATH, one service
// process) or a PostgreSQL server (postgres://…, any number of replicas).
// The application's tables are read and written with the same SQL on both;
// the queue (River) uses the driver of each, and lives in the same
// database, so a job and the state it changes commit in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Store is the state database. It is safe for concurrent use.
type Store struct {
	// dir is the directory of the SQLite database file; empty on
	// PostgreSQL.
	dir string
	// db reads and writes the application's tables on either database.
	db *sql.DB
	// sqlite is River's driver on SQLite; pg (with pool) on PostgreSQL.
	sqlite *riversqlite.Driver
	pg     *postgres
	log    zerolog.Logger
	now    func() time.Time
	// unlock releases OpenService's lock; nil after Open.
	unlock func() error
}

// Open opens the database named by rawURL — sqlite://PATH (the file's
// directory is created when needed) or postgres://… (postgresql:// too) —
// and runs every pending migration. The caller must Close the store after
// stopping every queue client built on it.
func Open(ctx context.Context, rawURL string, log zerolog.Logger) (*Store, error) {
	if IsPostgres(rawURL) {
		return openPostgres(ctx, rawURL, log)
	}
	return openSQLite(ctx, rawURL, log)
}

// IsPostgres reports whether rawURL names a PostgreSQL database.
func IsPostgres(rawURL string) bool {
	scheme, _, _ := strings.Cut(rawURL, "://")
	return isPostgresScheme(scheme)
}

// Postgres reports whether the store is on PostgreSQL.
func (s *Store) Postgres() bool { return s.pg != nil }

func openSQLite(ctx context.Context, rawURL string, log zerolog.Logger) (*Store, error) {
	path, err := sqlitePath(rawURL)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory %s: %w", dir, err)
		}
	}
	// WAL lets readers proceed beside the writer; busy_timeout absorbs
	// short lock waits. synchronous(NORMAL) in WAL mode keeps every commit
	// through a process crash or kill -9; only a power cut or kernel crash
	// can lose the last commits, and the delta sweep at start finds again
	// any message whose job was lost that way (its delta link, stored after
	// the jobs, is then older too). FULL would fsync every commit, and the
	// queue's own commits would then make webhook acknowledgements wait tens
	// of milliseconds behind the disk.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	// SQLite allows one writer at a time; River's SQLite driver documents one
	// connection as the way to avoid SQLITE_BUSY between its own goroutines.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &Store{dir: filepath.Dir(path), db: db, sqlite: riversqlite.New(db), log: log, now: time.Now}
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func sqlitePath(rawURL string) (string, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || scheme != "sqlite" || rest == "" {
		return "", errors.New("database URL must be sqlite://PATH")
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return "", errors.New("database URL must not carry options; the store sets them")
	}
	return rest, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var res *rivermigrate.MigrateResult
	var err error
	if s.pg != nil {
		res, err = migrateQueue[pgx.Tx](ctx, s.pg.driver)
	} else {
		res, err = migrateQueue[*sql.Tx](ctx, s.sqlite)
	}
	if err != nil {
		return err
	}
	for _, v := range res.Versions {
		s.log.Info().Int("version", v.Version).Msg("queue migration applied")
	}
	return s.migrateApp(ctx)
}

// migrateQueue runs River's own migrations with its driver for the
// database.
func migrateQueue[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) (*rivermigrate.MigrateResult, error) {
	m, err := rivermigrate.New(driver, nil)
	if err != nil {
		return nil, fmt.Errorf("prepare queue migrations: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("run queue migrations: %w", err)
	}
	return res, nil
}

// migrateApp applies the embedded migrations/NNN_name.sql files in order,
// each in its own transaction with its version row.
func (s *Store) migrateApp(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS m2a_migration (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)`); err != nil {
		return fmt.Errorf("create migration table: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		name := filepath.Base(f)
		var version int
		if _, err := fmt.Sscanf(name, "%03d_", &version); err != nil {
			return fmt.Errorf("migration %s: name must start with a three-digit version", name)
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM m2a_migration WHERE version = $1`, version).Scan(&n); err != nil {
			return fmt.Errorf("read migration state: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO m2a_migration (version, name, applied_at) VALUES ($1, $2, $3)`,
				version, name, s.now().UTC())
			return err
		}); err != nil {
			return fmt.Errorf("apply migration %s: %w", name, err)
		}
		s.log.Info().Str("migration", name).Msg("state migration applied")
	}
	return nil
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// DB returns the database handle of the application's tables (on
// PostgreSQL, database/sql over the same pool as the queue).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// ProbeWrite rewrites the heartbeat row: it fails when the database cannot
// take writes (disk full, read-only), which readiness reports.
func (s *Store) ProbeWrite(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO m2a_heartbeat (id, written_at) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at`, s.now().UTC()); err != nil {
		return fmt.Errorf("write to the database: %w", err)
	}
	return nil
}

// Close closes the database and releases the lock of OpenService.
func (s *Store) Close() error {
	err := s.closeDB()
	if s.unlock != nil {
		err = errors.Join(err, s.unlock())
		s.unlock = nil
	}
	return err
}

// closeDB closes the database handles.
func (s *Store) closeDB() error {
	err := s.db.Close()
	if s.pg != nil {
		s.pg.pool.Close()
	}
	return err
}

// Dir is the directory of the SQLite database file: the service's data
// directory, where the spool lives too. It is empty on PostgreSQL.
func (s *Store) Dir() string { return s.dir }

// JobCounts returns the number of queue jobs in each state.
func (s *Store) JobCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, count(*) FROM river_job GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// ReleaseOrphanedJobs makes jobs that were running when the process last
// stopped available again, and returns how many there were. With the
// embedded SQLite database one process owns the queue, so at its start a
// job marked running can only belong to a process that died; without this,
// the queue would wait for its stuck-job rescue (the job timeout plus a
// minute) before retrying them. The exactly-once record creation makes the
// retry safe. Call it before starting the queue's workers.
//
// On PostgreSQL, where replicas share the queue, it does nothing: a job a
// dead replica left running is rescued by River once it has been running
// longer than the queue's RescueStuckJobsAfter.
func (s *Store) ReleaseOrphanedJobs(ctx context.Context) (int, error) {
	if s.pg != nil {
		return 0, nil
	}
	res, err := s.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("release orphaned jobs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("release orphaned jobs: %w", err)
	}
	return int(n), nil
}
