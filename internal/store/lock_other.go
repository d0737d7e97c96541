//go:build !unix

package store

import "os"

// tryLock is a no-op where flock(2) does not exist: the service is built
// for Linux containers; elsewhere one process per database is the
// operator's responsibility.
func tryLock(*os.File) error { return nil }

func unlock(*os.File) error { return nil }
