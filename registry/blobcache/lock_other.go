//go:build !unix

package blobcache

import (
	"fmt"
	"os"
)

// lockDir creates dir's lock file. Without flock(2) it takes no lock:
// on these systems, give each proxy its own cache folder.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(lockPath(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the folder: %w", err)
	}
	return f, nil
}
