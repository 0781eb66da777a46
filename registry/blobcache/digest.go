package blobcache

import (
	"errors"
	"fmt"
	"path/filepath"
)

// ErrInvalidDigest is returned for a digest that is not "sha256:"
// followed by 64 lowercase hex digits. Digests become file names, so
// nothing else is accepted.
var ErrInvalidDigest = errors.New("invalid digest")

const (
	digestPrefix = "sha256:"
	hexLen       = 64
	// partialPrefix starts the name of a temporary file being fetched.
	partialPrefix = ".partial-"
)

// checkDigest validates d before it is used as a file name.
func checkDigest(d string) error {
	if len(d) != len(digestPrefix)+hexLen || d[:len(digestPrefix)] != digestPrefix || !isHex(d[len(digestPrefix):]) {
		return fmt.Errorf("%w %q: want sha256:<64 lowercase hex>", ErrInvalidDigest, d)
	}
	return nil
}

// isHex reports whether s is only lowercase hex digits.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// path is the file of a validated digest.
func (s *Store) path(digest string) string {
	return filepath.Join(s.dir, digest[len(digestPrefix):])
}
