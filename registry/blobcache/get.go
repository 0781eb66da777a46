package blobcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// chunkSize is the buffer size for hashing and copying.
const chunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Entry is an open, verified cached file. Close it when done: until
// then the file is pinned (never evicted).
type Entry struct {
	// Digest names the bytes; Size is their length.
	Digest string
	Size   int64

	f      *os.File
	s      *Store
	e      *entry
	closed atomic.Bool
}

// File returns the open file, positioned at its start, for
// http.ServeContent (which then uses sendfile) or reads. Do not close it:
// close the Entry. Bytes read from it directly are not counted in
// Stats.BytesServed.
func (e *Entry) File() *os.File { return e.f }

// Close releases the file.
func (e *Entry) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	err := e.f.Close()
	e.s.unpin(e.e)
	return err
}

// Get opens the cached file of digest. It reports false, with a nil
// error, when the blob is not cached or its file was found corrupt (and
// deleted). The first Get of a file after Open hashes it whole before
// returning.
func (s *Store) Get(digest string) (*Entry, bool, error) {
	if err := checkDigest(digest); err != nil {
		return nil, false, err
	}
	ent, err := s.open(digest)
	if err != nil {
		return nil, false, fmt.Errorf("open cached blob %s: %w", digest, err)
	}
	if ent == nil {
		s.stats.misses.Add(1)
		return nil, false, nil
	}
	s.stats.hits.Add(1)
	return ent, true, nil
}

// open pins and opens the cached file of digest after the size check and
// the first-use hash. It returns nil, nil on a miss.
func (s *Store) open(digest string) (*Entry, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := s.entries[digest]
	if !ok {
		s.mu.Unlock()
		return nil, nil
	}
	touch := s.pinLocked(e)
	lastUse := e.lastUse
	s.mu.Unlock()

	path := s.path(digest)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.discard(e, "file is gone")
			return nil, nil
		}
		s.unpin(e)
		return nil, err
	}
	if reason, err := s.check(e, f, false); err != nil || reason != "" {
		f.Close()
		if err != nil {
			s.unpin(e)
			return nil, err
		}
		s.discard(e, reason)
		return nil, nil
	}
	if touch {
		// Best effort: a stale mtime only changes the eviction order
		// after a restart.
		if err := os.Chtimes(path, lastUse, lastUse); err != nil {
			s.log.Debug("blob cache: record last use", "digest", digest, "err", err)
		}
	}
	return &Entry{Digest: digest, Size: e.size, f: f, s: s, e: e}, nil
}

// check compares the open file with the index: its size always, its
// hash on first use, or always when rehash is set (the scrub). It
// returns why the file is corrupt, or "".
func (s *Store) check(e *entry, f *os.File, rehash bool) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() != e.size {
		return fmt.Sprintf("size %d, indexed as %d", fi.Size(), e.size), nil
	}
	e.verifyMu.Lock()
	defer e.verifyMu.Unlock()
	if rehash {
		e.verified = false
	} else if e.verified || e.bad != "" {
		return e.bad, nil
	}
	return s.hashCheck(e, f)
}

// hashCheck hashes f whole (without moving its offset) and marks e
// verified if it matches, or records why not. Call with e.verifyMu held.
func (s *Store) hashCheck(e *entry, f *os.File) (string, error) {
	h := sha256.New()
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, e.size+1), *buf)
	if err != nil {
		return "", err
	}
	switch got := digestPrefix + hex.EncodeToString(h.Sum(nil)); {
	case n != e.size:
		e.bad = fmt.Sprintf("read %d bytes, indexed as %d", n, e.size)
	case got != e.digest:
		e.bad = "content hashes to " + got
	default:
		e.verified = true
	}
	return e.bad, nil
}

// discard deletes the file of a pinned entry found corrupt or missing.
// Concurrent readers of the same entry report it once.
func (s *Store) discard(e *entry, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	if s.entries[e.digest] != e {
		return
	}
	s.stats.corrupt.Add(1)
	s.log.Warn("blob cache: corrupt file deleted", "digest", e.digest, "reason", reason)
	if err := s.dropLocked(e); err != nil {
		s.log.Warn("blob cache: delete corrupt file", "digest", e.digest, "err", err)
	}
}
