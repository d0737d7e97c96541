package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// DeltaLink returns the stored Graph delta link of a mailbox folder, or ""
// when none is stored (the next sweep starts a new round).
func (s *Store) DeltaLink(ctx context.Context, mailbox, folder string) (string, error) {
	var link string
	err := s.db.QueryRowContext(ctx, `SELECT link FROM m2a_delta_link WHERE mailbox = $1 AND folder = $2`,
		mailbox, folder).Scan(&link)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read delta link of %s/%s: %w", mailbox, folder, err)
	}
	return link, nil
}

// SaveDeltaLink stores the delta link of a mailbox folder, replacing the
// previous one. An empty link removes it, so the next sweep starts afresh.
func (s *Store) SaveDeltaLink(ctx context.Context, mailbox, folder, link string) error {
	var err error
	if link == "" {
		_, err = s.db.ExecContext(ctx, `DELETE FROM m2a_delta_link WHERE mailbox = $1 AND folder = $2`, mailbox, folder)
	} else {
		_, err = s.db.ExecContext(ctx, `
			INSERT INTO m2a_delta_link (mailbox, folder, link, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (mailbox, folder) DO UPDATE SET link = excluded.link, updated_at = excluded.updated_at`,
			mailbox, folder, link, s.now().UTC())
	}
	if err != nil {
		return fmt.Errorf("save delta link of %s/%s: %w", mailbox, folder, err)
	}
	return nil
}
