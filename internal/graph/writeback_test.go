package graph

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/mail2archer/mail2archer/subscriptions"
)

func TestDeltaRounds(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	ctx := context.Background()
	old := deliver(t, b)
	b.sim.Advance(time.Hour)
	since := b.sim.Now().Truncate(time.Second)
	var fresh []graphsim.Message
	for range 60 {
		fresh = append(fresh, deliver(t, b))
	}

	// A new round from "since" skips the old message and pages by 50.
	var ids []string
	page, err := b.client.Delta(ctx, testMailbox, "inbox", "", since)
	if err != nil {
		t.Fatal(err)
	}
	pages := 1
	for {
		for _, it := range page.Items {
			if it.Removed || it.ReceivedAt.Before(since) {
				t.Errorf("unexpected item %+v", it)
			}
			ids = append(ids, it.ID)
		}
		if page.DeltaLink != "" {
			break
		}
		page, err = b.client.Delta(ctx, testMailbox, "inbox", page.NextLink, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		pages++
	}
	if len(ids) != 60 || pages != 2 {
		t.Fatalf("first round: %d items in %d pages", len(ids), pages)
	}
	for _, id := range ids {
		if id == old.ImmutableID {
			t.Error("the $filter on receivedDateTime was not applied")
		}
	}
	if !strings.HasPrefix(ids[0], "AAkALg") {
		t.Errorf("delta ids are not immutable: %s", ids[0])
	}

	// The next round reports the move out of the folder as a removal.
	if _, err := b.client.Move(ctx, testMailbox, fresh[0].ImmutableID, "archive"); err != nil {
		t.Fatal(err)
	}
	next, err := b.client.Delta(ctx, testMailbox, "inbox", page.DeltaLink, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Items) != 1 || !next.Items[0].Removed || next.Items[0].ID != fresh[0].ImmutableID || next.DeltaLink == "" {
		t.Errorf("incremental round = %+v", next)
	}

	b.sim.ExpireDeltaLinks(graphsim.SyncStateNotFound)
	_, err = b.client.Delta(ctx, testMailbox, "inbox", next.DeltaLink, time.Time{})
	if ClassOf(err) != ClassNotFound || !errors.Is(err, subscriptions.ErrDeltaExpired) {
		t.Errorf("expired delta link: %v", err)
	}
	_, err = b.client.Delta(ctx, testMailbox, "inbox", "https://evil.example/v1.0/users/x/mailFolders('inbox')/messages/delta?$deltatoken=1", time.Time{})
	if ClassOf(err) != ClassPermanent || !strings.Contains(err.Error(), "does not point at") || errors.Is(err, subscriptions.ErrDeltaExpired) {
		t.Errorf("foreign link: %v", err)
	}
	if _, err := b.client.Delta(ctx, testMailbox, "in/box", "", time.Time{}); ClassOf(err) != ClassPermanent {
		t.Errorf("hostile folder: %v", err)
	}
}

func TestCategorizeAndMove(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	ctx := context.Background()
	m := deliver(t, b)
	if err := b.client.Categorize(ctx, testMailbox, m.ImmutableID, []string{"Archer 123456", "Phishing"}); err != nil {
		t.Fatal(err)
	}
	got, _ := b.sim.Message(testMailbox, m.ImmutableID)
	if strings.Join(got.Categories, ",") != "Archer 123456,Phishing" {
		t.Errorf("categories = %v", got.Categories)
	}
	fetched, err := b.client.FetchMessage(ctx, testMailbox, m.ImmutableID, io.Discard)
	if err != nil || strings.Join(fetched.Categories, ",") != "Archer 123456,Phishing" {
		t.Errorf("fetched categories = %v (%v)", fetched, err)
	}

	folderID, err := b.sim.AddFolder(testMailbox, "Processed")
	if err != nil {
		t.Fatal(err)
	}
	newID, err := b.client.Move(ctx, testMailbox, m.ImmutableID, "Processed")
	if err != nil {
		t.Fatal(err)
	}
	if newID != m.ImmutableID {
		t.Errorf("immutable id changed on move: %s", newID)
	}
	moved, _ := b.sim.Message(testMailbox, m.ImmutableID)
	if moved.FolderID != folderID {
		t.Errorf("message in %s, want the Processed folder %s", moved.FolderID, folderID)
	}
	// The old REST id is gone after the move: not-found, not an error to retry.
	if _, err := b.client.FetchMessage(ctx, testMailbox, m.ID, io.Discard); ClassOf(err) != ClassNotFound {
		t.Errorf("old REST id after the move: %v", err)
	}
	if _, err := b.client.Move(ctx, testMailbox, m.ImmutableID, "No Such Folder"); ClassOf(err) != ClassNotFound {
		t.Errorf("move to a missing folder: %v", err)
	}
}

// failingWriter refuses every write, as a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestFetchMessageStreamsTheMIMEAndTellsALocalWriteFailureApart(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Options{})
	ctx := context.Background()
	m := deliver(t, b)
	var got bytes.Buffer
	msg, err := b.client.FetchMessage(ctx, testMailbox, m.ImmutableID, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), m.MIME) || msg.Size != int64(len(m.MIME)) {
		t.Errorf("streamed %d bytes (Size %d), want the %d delivered", got.Len(), msg.Size, len(m.MIME))
	}
	_, err = b.client.FetchMessage(ctx, testMailbox, m.ImmutableID, failingWriter{})
	var we *WriteError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("a failed local write: %v (%T), want a *WriteError", err, err)
	}
	var ge *Error
	if errors.As(err, &ge) {
		t.Errorf("a local write failure reads as a Graph failure: %v", ge)
	}
}
