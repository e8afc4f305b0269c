//go:build !unix

package ckpt

import "os"

// LockFile is the file LockDir locks inside a folder (unused on this system).
const LockFile = ".lock"

// LockDir creates dir; advisory locking is not available on this system, so it locks nothing.
func LockDir(dir string) (unlock func(), err error) {
	return func() {}, os.MkdirAll(dir, 0o755)
}
