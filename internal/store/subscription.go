package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// The Store keeps the subscriptions manager's state: the subscriptions with
// their clientState secrets (here), the delta links (delta.go), the lease
// and the write-once settings (lease.go).
var _ subscriptions.Store = (*Store)(nil)

// SaveSubscription inserts or updates a subscription.
func (s *Store) SaveSubscription(ctx context.Context, sub subscriptions.Record) error {
	now := s.now().UTC()
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO m2a_subscription (id, mailbox, folder, client_state, expires_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (id) DO UPDATE SET mailbox = excluded.mailbox, folder = excluded.folder,
			client_state = excluded.client_state, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
		sub.ID, sub.Mailbox, sub.Folder, sub.ClientState, sub.ExpiresAt.UTC(), now)
	if err != nil {
		return fmt.Errorf("save subscription %s: %w", sub.ID, err)
	}
	return nil
}

// Subscription returns the subscription with the given id, or ErrNotFound.
func (s *Store) Subscription(ctx context.Context, id string) (subscriptions.Record, error) {
	var sub subscriptions.Record
	err := s.db.QueryRowContext(ctx, `
		SELECT id, mailbox, folder, client_state, expires_at FROM m2a_subscription WHERE id = $1`, id).
		Scan(&sub.ID, &sub.Mailbox, &sub.Folder, &sub.ClientState, &sub.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return subscriptions.Record{}, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return subscriptions.Record{}, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return sub, nil
}

// Subscriptions returns every stored subscription, ordered by mailbox.
func (s *Store) Subscriptions(ctx context.Context) ([]subscriptions.Record, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, mailbox, folder, client_state, expires_at FROM m2a_subscription ORDER BY mailbox, folder, id`)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []subscriptions.Record
	for rows.Next() {
		var sub subscriptions.Record
		if err := rows.Scan(&sub.ID, &sub.Mailbox, &sub.Folder, &sub.ClientState, &sub.ExpiresAt); err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

// DeleteSubscription removes a subscription. Deleting an unknown id is not an
// error.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM m2a_subscription WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	return nil
}
