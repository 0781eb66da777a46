package blobcache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// flight is one upstream fetch into a temporary file, shared by the
// Readers of every caller that asked for the digest meanwhile.
type flight struct {
	digest    string
	ctx       context.Context
	cancel    context.CancelFunc
	started   chan struct{} // closed once the upstream answered, or failed
	startOnce sync.Once

	// Set by the fetch goroutine before started is closed, then fixed.
	file       *os.File
	tmp        string
	size       int64 // expected length, -1 if unknown
	local      bool  // Keep: bytes from the caller, not looked up in Shared
	fromShared bool  // the bytes come from the Shared store

	mu      sync.Mutex
	cond    sync.Cond // on mu: broadcast when written, done or a Reader's ctx changes
	written int64     // bytes in file
	done    bool
	err     error // why the fetch failed; nil if done and verified

	// Guarded by Store.mu.
	readers   int    // Readers not closed
	fileRefs  int    // readers + the fetch goroutine: file closes at 0
	entry     *entry // the cache entry once committed; readers pin it
	abandoned bool   // every reader left before done: cancelled
	keep      bool   // the file was renamed into the cache
}

func (fl *flight) markStarted() { fl.startOnce.Do(func() { close(fl.started) }) }

// failed reports whether fl ended in an error.
func (fl *flight) failed() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.err != nil
}

// finish records the outcome and wakes every reader.
func (fl *flight) finish(err error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.done = true
	if err != nil {
		fl.err = fmt.Errorf("fetch blob %s: %w", fl.digest, err)
	}
	fl.cond.Broadcast()
}

// unrefFileLocked drops a reference to fl's file and reports whether it
// was the last, and whether the file is now in the cache.
func (s *Store) unrefFileLocked(fl *flight) (last, keep bool) {
	fl.fileRefs--
	return fl.fileRefs == 0, fl.keep
}

// closeFlightFile closes fl's file and removes it unless it was
// committed.
func (s *Store) closeFlightFile(fl *flight, keep bool) {
	if fl.file == nil {
		return
	}
	fl.file.Close()
	if !keep {
		if err := os.Remove(fl.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("blob cache: remove temporary file", "file", fl.tmp, "err", err)
		}
	}
}

// run is the fetch goroutine: fill the temporary file, then commit it
// or clean up.
func (s *Store) run(fl *flight, fetch FetchFunc) {
	defer s.wg.Done()
	defer s.stats.inFlight.Add(-1)
	defer fl.cancel()
	err := s.fill(fl, fetch)
	if errors.Is(err, ErrMismatch) && fl.fromShared {
		// Deleted before the readers hear of it, so that a client's
		// retry goes to the source.
		s.stats.sharedMismatches.Add(1)
		s.deleteShared(fl.digest)
	}
	fl.finish(err)
	fl.markStarted()
	if err == nil {
		if s.commit(fl) && !fl.fromShared {
			s.share(fl.digest)
		}
		return
	}
	if errors.Is(err, ErrMismatch) {
		s.stats.mismatches.Add(1)
	} else {
		s.stats.fetchErrors.Add(1)
	}
	level := slog.LevelWarn
	if errors.Is(err, context.Canceled) {
		level = slog.LevelDebug // every reader left, or Close
	}
	s.log.Log(context.Background(), level, "blob cache: fetch failed", "digest", fl.digest, "err", err)
	// Readers have the error and read no further: remove the file now
	// rather than when the last one closes.
	if fl.tmp != "" {
		os.Remove(fl.tmp)
	}
	s.mu.Lock()
	if s.flights[fl.digest] == fl {
		delete(s.flights, fl.digest)
	}
	last, _ := s.unrefFileLocked(fl)
	s.mu.Unlock()
	if last {
		s.closeFlightFile(fl, false)
	}
}

// fill copies the upstream body into the temporary file, hashing it, and
// checks length and digest. Readers see each chunk once it is written.
func (s *Store) fill(fl *flight, fetch FetchFunc) error {
	f, err := os.CreateTemp(s.dir, partialPrefix+fl.digest[len(digestPrefix):]+"-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	fl.file, fl.tmp = f, f.Name()
	body, upSize, err := s.openSource(fl, fetch)
	if err != nil {
		return err
	}
	defer body.Close()
	if fl.size < 0 {
		fl.size = upSize
	} else if upSize >= 0 && upSize != fl.size {
		return fmt.Errorf("%w: upstream announced %d bytes, expected %d", ErrMismatch, upSize, fl.size)
	}
	fl.markStarted()

	limit, what := fl.size, "expected"
	if limit < 0 {
		limit, what = s.max, "the cache size bound for a blob of unknown size,"
	}
	n, sum, err := s.copyHashed(fl, body, limit, what)
	if err != nil {
		return err
	}
	if fl.size >= 0 && n != fl.size {
		return fmt.Errorf("%w: got %d bytes, expected %d", ErrMismatch, n, fl.size)
	}
	if got := digestPrefix + hex.EncodeToString(sum); got != fl.digest {
		return fmt.Errorf("%w: bytes hash to %s", ErrMismatch, got)
	}
	return nil
}

// commit moves a verified temporary file under its digest name and into
// the index, pinned by the readers still reading it, and reports whether
// it did. A blob larger than the bound, or one every reader left, is not
// kept.
func (s *Store) commit(fl *flight) bool {
	size := fl.written // final: written only by this goroutine
	s.mu.Lock()
	skip := fl.abandoned || s.closed || size > s.max
	s.mu.Unlock()
	var err error
	if !skip {
		err = s.persist(fl)
	}
	s.mu.Lock()
	if s.flights[fl.digest] == fl {
		delete(s.flights, fl.digest)
	}
	if !skip && err == nil {
		fl.keep = true
		if _, ok := s.entries[fl.digest]; !ok {
			now := s.now()
			e := &entry{digest: fl.digest, size: size, lastUse: now, touched: now, refs: fl.readers, verified: true}
			e.elem = s.lru.PushFront(e)
			s.entries[fl.digest] = e
			s.size += size
			fl.entry = e
			s.evictLocked()
		}
	}
	last, keep := s.unrefFileLocked(fl)
	s.mu.Unlock()
	if err != nil {
		s.stats.fetchErrors.Add(1)
		s.log.Warn("blob cache: keep fetched blob", "digest", fl.digest, "err", err)
	}
	if last {
		s.closeFlightFile(fl, keep)
	}
	return !skip && err == nil
}

// persist syncs the temporary file, stamps its last use and renames it
// to its digest name.
func (s *Store) persist(fl *flight) error {
	if err := fl.file.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", fl.tmp, err)
	}
	now := s.now()
	if err := os.Chtimes(fl.tmp, now, now); err != nil {
		return fmt.Errorf("stamp %s: %w", fl.tmp, err)
	}
	if err := os.Rename(fl.tmp, s.path(fl.digest)); err != nil {
		return fmt.Errorf("rename %s: %w", fl.tmp, err)
	}
	// The file is in place; a failed folder sync only risks losing it
	// in a crash.
	if err := syncDir(s.dir); err != nil {
		s.log.Warn("blob cache: sync folder", "dir", s.dir, "err", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
