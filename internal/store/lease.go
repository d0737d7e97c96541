package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TryAcquireLease takes or extends the lease name for holder until now+ttl.
// It succeeds when nobody holds the lease, when holder already holds it, or
// when the other holder's lease ended before now. It reports whether holder
// holds the lease afterwards. now comes from the caller's clock, so every
// replica must keep its clock in sync (NTP) to well within ttl.
func (s *Store) TryAcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, errors.New("acquire lease: name and holder must not be empty")
	}
	if ttl <= 0 {
		return false, fmt.Errorf("acquire lease %s: ttl %s must be positive", name, ttl)
	}
	nowMS := now.UnixMilli()
	res, err := s.db.ExecContext(ctx, `
		INSERT INTO m2a_lease (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE m2a_lease.holder = excluded.holder OR m2a_lease.expires_at < $4`,
		name, holder, now.Add(ttl).UnixMilli(), nowMS)
	if err != nil {
		return false, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	return n == 1, nil
}

// ReleaseLease gives up the lease name if holder holds it, so another
// replica can take it at once. Releasing a lease held by someone else, or by
// nobody, does nothing.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM m2a_lease WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("release lease %s for %s: %w", name, holder, err)
	}
	return nil
}

// SetOnce stores value under name unless a value is already stored, and
// returns the stored value: the first writer wins, later calls read it.
func (s *Store) SetOnce(ctx context.Context, name, value string) (string, error) {
	if name == "" {
		return "", errors.New("set setting: name must not be empty")
	}
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO m2a_setting (name, value, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, name, value, s.now().UTC()); err != nil {
		return "", fmt.Errorf("set setting %s: %w", name, err)
	}
	var stored string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM m2a_setting WHERE name = $1`, name).Scan(&stored); err != nil {
		return "", fmt.Errorf("read setting %s: %w", name, err)
	}
	return stored, nil
}
