//go:build unix

package spool

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// holdLock creates path and holds an exclusive lock on it until the
// returned function is called or the process ends, however it ends.
func holdLock(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f.Close, nil
}

// abandoned reports whether nobody holds the lock at path: its process is
// gone. A directory whose lock cannot be opened is left alone.
func abandoned(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// Made by a process that died before it took its lock, or by one
		// starting right now: only an old directory is taken as dead.
		st, err := os.Stat(filepath.Dir(path))
		return err == nil && time.Since(st.ModTime()) > time.Minute
	}
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
