//go:build unix

package blobcache

import (
	"fmt"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on dir's lock file, so that a second
// store on one folder fails to open rather than remove the partial files
// the first one is writing. Closing the returned file releases the lock
// (so does the process's exit).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(lockPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%v): give each proxy its own cache folder", ErrLocked, err)
	}
	return f, nil
}
