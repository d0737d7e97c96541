package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), "sqlite://"+path, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
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
	if n != 2 {
		t.Errorf("%d migration rows, want 2", n)
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

func TestOpenRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "sqlite://", "postgres://db/x", "sqlite://x.db?_pragma=foo", "x.db"} {
		if _, err := Open(context.Background(), u, zerolog.Nop()); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	exp := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sub := Subscription{ID: "sub-1", Mailbox: "phish@contoso.com", Folder: "Inbox", ClientState: "secret", ExpiresAt: exp}
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
}

func TestMessageIntentThenRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
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
	if err := s.SaveRecordTx(ctx, tx, "mb", "m1", 239643); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if m, err = s.Message(ctx, "mb", "m1"); err != nil || m.RecordID != 239643 {
		t.Fatalf("after record %+v %v", m, err)
	}
	tx, _ = s.DB().BeginTx(ctx, nil)
	if err := s.SaveRecordTx(ctx, tx, "mb", "unknown", 1); err == nil {
		t.Error("record without intent accepted")
	}
	_ = tx.Rollback()
	if err := s.ForgetMessage(ctx, "mb", "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(ctx, "mb", "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after forget: %v", err)
	}
}
