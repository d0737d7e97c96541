package spool

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRemovesOnlyItsLeftovers(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	d, removed, err := Open(dir, 0)
	if err != nil || removed != 0 {
		t.Fatalf("first open: %d removed, %v", removed, err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v %v", st, err)
	}
	left := d.Create()
	if _, err := io.WriteString(left, "From: a@b.example\r\n\r\nleft by a killed process\r\n"); err != nil {
		t.Fatal(err)
	}
	if !left.OnDisk() {
		t.Fatal("with no memory allowed the content is not on disk")
	}
	other := filepath.Join(dir, "operator-notes.txt")
	if err := os.WriteFile(other, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, removed, err = Open(dir, 0)
	if err != nil || removed != 1 {
		t.Fatalf("reopen: %d removed, %v; want the one leftover", removed, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "operator-notes.txt" {
		t.Errorf("after the reopen the directory holds %v, want only the operator's file", entries)
	}
}

func TestSmallStaysInMemoryLargeGoesToAFile(t *testing.T) {
	t.Parallel()
	d, _, err := Open(t.TempDir(), 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		chunks []string
		onDisk bool
	}{
		{"small", []string{"From: a@b.example\r\n", "\r\nhi\r\n"}, false},
		{"exactly the limit", []string{strings.Repeat("x", 64)}, false},
		{"grows past the limit", []string{strings.Repeat("a", 40), strings.Repeat("b", 40), "tail"}, true},
		{"one large write", []string{strings.Repeat("z", 1000)}, true},
	} {
		f := d.Create()
		for _, c := range tc.chunks {
			if _, err := io.WriteString(f, c); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		want := strings.Join(tc.chunks, "")
		if f.OnDisk() != tc.onDisk || f.Size() != int64(len(want)) {
			t.Errorf("%s: on disk %v size %d, want %v %d", tc.name, f.OnDisk(), f.Size(), tc.onDisk, len(want))
		}
		for i := 0; i < 2; i++ { // every Open starts from the beginning
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			_ = rc.Close()
			if string(got) != want {
				t.Errorf("%s: Open %d read %d bytes, want %d", tc.name, i, len(got), len(want))
			}
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s: ReadAt gave %d bytes (%v)", tc.name, len(got), err)
		}
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(d.Path()); len(entries) != 0 {
		t.Errorf("%d files left after Remove", len(entries))
	}
}

func TestAFailedWriteIsKept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	d, _, err := Open(dir, 8)
	if err != nil {
		t.Fatal(err)
	}
	// The directory disappears (an unmounted volume): the spill fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	f := d.Create()
	if _, err := io.WriteString(f, "small"); err != nil {
		t.Fatalf("in memory: %v", err)
	}
	if _, err := io.WriteString(f, " and now too large for memory"); err == nil {
		t.Fatal("the spill to a missing directory succeeded")
	}
	if f.Err() == nil || !strings.Contains(f.Err().Error(), dir) {
		t.Errorf("Err() = %v, want the failure naming the directory", f.Err())
	}
	if _, err := io.WriteString(f, "more"); err == nil {
		t.Error("a write after a failure succeeded")
	}
	if err := f.Remove(); err != nil {
		t.Errorf("Remove after a failed spill: %v", err)
	}
}

func TestSharedParentSweepsOnlyDeadProcessesDirectories(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	live, _, err := OpenInShared(parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := live.Create()
	if _, err := io.WriteString(f, "in flight"); err != nil {
		t.Fatal(err)
	}
	// A process that died mid-job: its directory, a message file, a lock
	// file nobody holds.
	dead := filepath.Join(parent, sharedPrefix+"dead")
	if err := os.MkdirAll(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".lock", "mime-1.eml"} {
		if err := os.WriteFile(filepath.Join(dead, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	second, removed, err := OpenInShared(parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 1 {
		t.Errorf("removed %d files, want the dead process's one", removed)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead process's directory is still there: %v", err)
	}
	if _, err := os.Stat(live.Path()); err != nil {
		t.Errorf("the live process's directory was removed: %v", err)
	}
	if got, _ := io.ReadAll(io.NewSectionReader(f, 0, f.Size())); string(got) != "in flight" {
		t.Errorf("the live process's file reads %q", got)
	}
	for _, d := range []*Dir{live, second} {
		path := d.Path()
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s is still there after Close", path)
		}
	}
}
