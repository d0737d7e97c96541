package store

import (
	"context"
	"testing"
)

func TestDeltaLinks(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if l, err := s.DeltaLink(ctx, "phish@contoso.com", "Inbox"); err != nil || l != "" {
			t.Fatalf("no link stored: got %q, %v", l, err)
		}
		for _, link := range []string{"https://graph/delta?$deltatoken=1", "https://graph/delta?$deltatoken=2"} {
			if err := s.SaveDeltaLink(ctx, "phish@contoso.com", "Inbox", link); err != nil {
				t.Fatal(err)
			}
			if l, err := s.DeltaLink(ctx, "phish@contoso.com", "Inbox"); err != nil || l != link {
				t.Fatalf("got %q, %v; want %q", l, err, link)
			}
		}
		// Links are per mailbox and folder.
		if l, _ := s.DeltaLink(ctx, "phish@contoso.com", "Junk"); l != "" {
			t.Fatalf("other folder has link %q", l)
		}
		if l, _ := s.DeltaLink(ctx, "other@contoso.com", "Inbox"); l != "" {
			t.Fatalf("other mailbox has link %q", l)
		}
		if err := s.SaveDeltaLink(ctx, "phish@contoso.com", "Inbox", ""); err != nil {
			t.Fatal(err)
		}
		if l, err := s.DeltaLink(ctx, "phish@contoso.com", "Inbox"); err != nil || l != "" {
			t.Fatalf("after clearing: got %q, %v", l, err)
		}
	})
}
