package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// ErrLocked means another process serves from the same SQLite database.
var ErrLocked = errors.New("the database is in use by another mail2archer service")

// OpenService opens the database for a serving process. On SQLite it first
// takes an exclusive lock on a file beside the database (PATH.lock) that the
// process holds until Close: a second service on the same database fails
// with ErrLocked, naming the holder's process id, because two processes
// sharing one SQLite queue would each release the other's running jobs at
// start. It then checks the file's integrity and drops the leases a dead
// process left. On PostgreSQL it is Open: any number of replicas share the
// database. The operator commands use Open and work beside a running
// service.
func OpenService(ctx context.Context, rawURL string, log zerolog.Logger) (*Store, error) {
	if IsPostgres(rawURL) {
		return Open(ctx, rawURL, log)
	}
	path, err := sqlitePath(rawURL)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database directory %s: %w", dir, err)
		}
	}
	if err := checkWritable(path); err != nil {
		return nil, err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	s, err := openSQLite(ctx, rawURL, log)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	s.unlock = unlock
	if err := s.quickCheck(ctx, path); err != nil {
		_ = s.Close()
		return nil, err
	}
	// The lock proves that no other process uses this database: a lease
	// left by a process that died is its own, and waiting for it to expire
	// would only delay the start-up resync.
	if _, err := s.db.ExecContext(ctx, `UPDATE m2a_campaign SET holder = '', held_until = 0 WHERE holder <> ''`); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("release campaigns held by a previous process: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM m2a_lease`); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("release leases of a previous process: %w", err)
	}
	return s, nil
}

// checkWritable names a database file or directory the service cannot write,
// which SQLite would otherwise report later as "attempt to write a readonly
// database".
func checkWritable(path string) error {
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the database file %s is not writable by this process (%w): fix its owner or mode, or the volume's read-only mount", path, err)
	}
	probe, err := os.CreateTemp(filepath.Dir(path), ".write-probe-*")
	if err != nil {
		return fmt.Errorf("the database directory %s is not writable by this process (%w): SQLite writes its journal beside the database", filepath.Dir(path), err)
	}
	name := probe.Name()
	_ = probe.Close()
	return os.Remove(name)
}

// quickCheck runs SQLite's quick integrity check and refuses a damaged
// database with the ways to recover.
func (s *Store) quickCheck(ctx context.Context, path string) error {
	t0 := time.Now()
	rows, err := s.db.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	defer func() { _ = rows.Close() }()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check of %s: %w", path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the database %s is damaged (%s). To recover: stop the service and either restore the last backup "+
			"(emails processed since are found in Archer and not created twice), or move the file and its -wal and -shm "+
			"files away and start with a new database: the service then finds its Graph subscription unknown, replaces it "+
			"and resyncs the mailbox over M2A_FULL_RESYNC_WINDOW", path, strings.Join(problems, "; "))
	}
	s.log.Debug().Dur("took", time.Since(t0)).Msg("database integrity check passed")
	return nil
}

// lockFile takes an exclusive, non-blocking lock on path and writes the
// holder's description into it.
func lockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "unknown process"
		}
		return nil, fmt.Errorf("%w (%s holds %s): stop it first: one service runs per SQLite database", ErrLocked, who, path)
	}
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))), 0)
	return func() error {
		_ = f.Truncate(0)
		return errors.Join(unlock(f), f.Close())
	}, nil
}
