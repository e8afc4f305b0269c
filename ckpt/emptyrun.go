package ckpt

import (
	"os"
	"path/filepath"
)

// RemoveEmptyRun removes dir if it holds nothing but its lock file (LockDir's), so that a run that
// failed before writing anything leaves no folder behind. Call it while holding the lock.
func RemoveEmptyRun(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != LockFile {
			return nil
		}
	}
	if err := os.Remove(filepath.Join(dir, LockFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.Remove(dir)
}
