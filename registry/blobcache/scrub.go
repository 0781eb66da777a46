package blobcache

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// ScrubResult counts what a Scrub did.
type ScrubResult struct {
	// Checked files were hashed whole; Corrupt ones were deleted.
	Checked, Corrupt int
	// Bytes is the total size of the files hashed.
	Bytes int64
}

// Scrub hashes every cached file again, deleting those that changed,
// one file at a time. It reads the whole cache, so run it rarely (for
// example daily, from a goroutine of the caller's), and cancel ctx to
// stop it early. A file being read meanwhile is checked too; if it is
// corrupt, the reads already under way are cut short.
func (s *Store) Scrub(ctx context.Context) (ScrubResult, error) {
	s.mu.Lock()
	digests := make([]string, 0, len(s.entries))
	for d := range s.entries {
		digests = append(digests, d)
	}
	s.mu.Unlock()
	var res ScrubResult
	for _, d := range digests {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("scrub blob cache: %w", err)
		}
		corrupt, size, err := s.scrubOne(d)
		if err != nil {
			return res, fmt.Errorf("scrub blob cache: %w", err)
		}
		if size < 0 {
			continue // evicted meanwhile
		}
		res.Checked++
		res.Bytes += size
		if corrupt {
			res.Corrupt++
		}
	}
	return res, nil
}

// scrubOne hashes the file of digest if it is still cached. size is -1
// if it is not.
func (s *Store) scrubOne(digest string) (corrupt bool, size int64, err error) {
	s.mu.Lock()
	e, ok := s.entries[digest]
	if !ok {
		s.mu.Unlock()
		return false, -1, nil
	}
	// Pinned without counting as a use: scrubbing must not change the
	// eviction order.
	e.refs++
	s.mu.Unlock()
	f, err := os.Open(s.path(digest))
	if errors.Is(err, os.ErrNotExist) {
		s.discard(e, "file is gone")
		return true, e.size, nil
	}
	if err != nil {
		s.unpin(e)
		return false, e.size, fmt.Errorf("open blob %s: %w", digest, err)
	}
	defer f.Close()
	reason, err := s.check(e, f, true)
	if err != nil {
		s.unpin(e)
		return false, e.size, fmt.Errorf("hash blob %s: %w", digest, err)
	}
	if reason != "" {
		s.discard(e, reason)
		return true, e.size, nil
	}
	s.unpin(e)
	return false, e.size, nil
}
