//go:build !unix

package spool

import "os"

// holdLock creates path; without advisory locks nothing holds it.
func holdLock(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return f.Close, nil
}

// abandoned cannot tell a live process's directory from a dead one's here:
// it leaves every directory alone.
func abandoned(string) bool { return false }
