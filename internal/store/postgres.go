package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"
)

// postgres is what the store holds on PostgreSQL: the connection pool that
// River's pgx driver uses (with LISTEN/NOTIFY, so a new job is picked up at
// once), and that the application's tables share through database/sql.
type postgres struct {
	pool   *pgxpool.Pool
	driver *riverpgxv5.Driver
}

// migrationLock is the key of the advisory lock that serializes the
// migrations of replicas starting at the same time.
const migrationLock = 0x6d326172 // "m2ar"

func openPostgres(ctx context.Context, rawURL string, log zerolog.Logger) (*Store, error) {
	where := redactURL(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("postgres database URL %s: %w", where, err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "mail2archer"
	// A commit does not wait for the WAL to reach the disk, as SQLite's
	// synchronous=NORMAL: a crash of the service loses nothing, a crash of
	// the database server can lose its last fraction of a second of
	// commits, which the resync finds again and the lookup by key keeps
	// from becoming duplicates. A URL that sets synchronous_commit wins.
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres database %s: %w", where, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	s := &Store{db: db, pg: &postgres{pool: pool, driver: riverpgxv5.New(pool)}, log: log, now: time.Now}
	if err := s.Ping(ctx); err != nil {
		s.closeDB()
		return nil, fmt.Errorf("open postgres database %s: %w", where, err)
	}
	if err := s.migrateLocked(ctx); err != nil {
		s.closeDB()
		return nil, err
	}
	return s, nil
}

// migrateLocked runs the migrations under a session advisory lock, so that
// replicas that start together migrate one after the other: the later ones
// find nothing left to do.
func (s *Store) migrateLocked(ctx context.Context) error {
	conn, err := s.pg.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrations: acquire a connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("migrations: take the advisory lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has ended.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	}()
	return s.migrate(ctx)
}

// redactURL is rawURL without its password, for errors and logs.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.Redacted()
}

// pgExec runs one statement in a pgx transaction and returns the rows it
// affected, for the statements that share a transaction with River's.
func pgExec(ctx context.Context, tx pgx.Tx, query string, args ...any) (int64, error) {
	tag, err := tx.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// sqlExec is pgExec for a database/sql transaction.
func sqlExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// isPostgresURL is IsPostgres for a URL already split.
func isPostgresScheme(scheme string) bool {
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}
