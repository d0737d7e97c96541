// Package spool holds the raw MIME of the messages being processed: small
// ones in memory, large ones in temporary files, so that a large email is
// read from Graph to disk and parsed and uploaded from there instead of
// being held in memory whole, while the usual small one costs no disk
// traffic beside the state database.
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultMemory is the size up to which a message stays in memory.
const DefaultMemory = 1 << 20

// prefix and suffix name the files of a spool directory; Open removes only
// files named so.
const (
	prefix = "mime-"
	suffix = ".eml"
)

// Dir is a spool directory used by one process.
type Dir struct {
	path   string
	memory int
	// release gives up a directory of OpenInShared.
	release func() error
}

// Open creates path (mode 0700) when needed and removes the files a process
// that stopped mid-job left there. It returns how many it removed. Messages
// up to memory bytes stay in memory (0: every message goes to a file). Only
// one process may use a directory: the caller guarantees it (the SQLite
// database's lock does).
func Open(path string, memory int) (*Dir, int, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool: create %s: %w", path, err)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: list %s: %w", path, err)
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
			continue
		}
		if err := os.Remove(filepath.Join(path, name)); err != nil {
			return nil, removed, fmt.Errorf("spool: remove leftover %s: %w", name, err)
		}
		removed++
	}
	return &Dir{path: path, memory: max(memory, 0)}, removed, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Create returns an empty File. The caller removes it with Remove once the
// job is over.
func (d *Dir) Create() *File { return &File{dir: d} }

// File is one message's MIME as it is written: in memory up to the
// directory's limit, then in a file of the directory readable by this
// process only. Write, then read; it is not safe for concurrent use.
type File struct {
	dir  *Dir
	buf  []byte
	f    *os.File
	size int64
	err  error
}

// Write appends p, moving the content to a file once it outgrows memory.
func (s *File) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && len(s.buf)+len(p) <= s.dir.memory {
		s.buf = append(s.buf, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir.path, prefix+"*"+suffix)
		if err != nil {
			s.err = fmt.Errorf("spool: create a file in %s: %w", s.dir.path, err)
			return 0, s.err
		}
		s.f = f
		if _, err := f.Write(s.buf); err != nil {
			s.err = fmt.Errorf("spool: write %s: %w", f.Name(), err)
			return 0, s.err
		}
		s.buf = nil
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err != nil {
		s.err = fmt.Errorf("spool: write %s: %w", s.f.Name(), err)
	}
	return n, s.err
}

// Err is the first write failure (a full disk), or nil.
func (s *File) Err() error { return s.err }

// Size is the number of bytes written.
func (s *File) Size() int64 { return s.size }

// OnDisk reports whether the content went to a file.
func (s *File) OnDisk() bool { return s.f != nil }

// ReadAt reads the content written so far.
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	return bytes.NewReader(s.buf).ReadAt(p, off)
}

// Open gives the content from its start, as a reader of its own; an open
// file (*os.File) for content on disk, so that an upload knows its length
// and can rewind it.
func (s *File) Open() (io.ReadCloser, error) {
	if s.f != nil {
		return os.Open(s.f.Name())
	}
	return io.NopCloser(bytes.NewReader(s.buf)), nil
}

// Remove releases the content and deletes its file, if any.
func (s *File) Remove() error {
	s.buf = nil
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	cerr := f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", f.Name(), err)
	}
	if cerr != nil {
		return fmt.Errorf("spool: close %s: %w", f.Name(), cerr)
	}
	return nil
}

// sharedPrefix names the per-process directories OpenInShared makes.
const sharedPrefix = "mail2archer-spool-"

// OpenInShared makes a spool directory of this process's own inside
// parent, which several processes may share (the temporary directory of a
// host running replicas), and removes the directories of processes that
// are gone: each process holds a lock on its directory while it lives. It
// returns how many files it removed with those directories. Close releases
// the directory.
func OpenInShared(parent string, memory int) (*Dir, int, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool: create %s: %w", parent, err)
	}
	removed := sweepShared(parent)
	path, err := os.MkdirTemp(parent, sharedPrefix)
	if err != nil {
		return nil, removed, fmt.Errorf("spool: create a directory in %s: %w", parent, err)
	}
	release, err := holdLock(filepath.Join(path, ".lock"))
	if err != nil {
		_ = os.RemoveAll(path)
		return nil, removed, fmt.Errorf("spool: lock %s: %w", path, err)
	}
	return &Dir{path: path, memory: max(memory, 0), release: func() error {
		err := release()
		return errors.Join(err, os.RemoveAll(path))
	}}, removed, nil
}

// Close releases a directory of OpenInShared and removes it; for a
// directory of Open it does nothing.
func (d *Dir) Close() error {
	if d.release == nil {
		return nil
	}
	err := d.release()
	d.release = nil
	return err
}

// sweepShared removes the spool directories in parent whose lock nobody
// holds, and returns how many message files they held.
func sweepShared(parent string) int {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), sharedPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if !abandoned(filepath.Join(dir, ".lock")) {
			continue
		}
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if strings.HasPrefix(f.Name(), prefix) {
				removed++
			}
		}
		_ = os.RemoveAll(dir)
	}
	return removed
}
