package blobcache

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrMismatch is the error of a fetch whose bytes do not hash to the
// digest, or whose length is not the expected size. Nothing is cached.
var ErrMismatch = errors.New("upstream bytes do not match the digest")

// FetchFunc opens a blob at its source: its body, and its length if the
// source says (-1 if not). The body must stop when ctx is cancelled: the
// store cancels it when no Reader is left before the fetch completed, or
// at Close. An error before the body (a 404, a refused connection) is
// returned by Fetch to every caller waiting for the blob.
type FetchFunc func(ctx context.Context) (body io.ReadCloser, size int64, err error)

// Fetch returns a Reader of digest: from the cache on a hit, otherwise
// from an upstream fetch shared with every other caller asking for
// digest meanwhile (fetch is called only if this caller starts it, and
// only if the Shared store, when there is one, does not hold digest). size
// is the expected length, -1 if unknown; a different length upstream is
// a mismatch. Fetch returns once the upstream answered, so an upstream
// error can still be answered with a status code; errors after that come
// from the Reader, always before the blob's last byte. ctx bounds this
// caller's wait and reads, not the shared fetch.
func (s *Store) Fetch(ctx context.Context, digest string, size int64, fetch FetchFunc) (*Reader, error) {
	if err := checkDigest(digest); err != nil {
		return nil, err
	}
	return s.fetch(ctx, digest, size, false, fetch)
}

// fetch is Fetch; local skips the shared store (Keep's bytes are here).
func (s *Store) fetch(ctx context.Context, digest string, size int64, local bool, fetch FetchFunc) (*Reader, error) {
	for {
		ent, err := s.open(digest)
		if err != nil {
			return nil, fmt.Errorf("fetch blob %s: %w", digest, err)
		}
		if ent != nil {
			s.stats.hits.Add(1)
			return &Reader{s: s, digest: digest, size: ent.Size, ent: ent}, nil
		}
		fl, err := s.join(digest, size, local, fetch)
		if err != nil {
			return nil, fmt.Errorf("fetch blob %s: %w", digest, err)
		}
		if fl != nil {
			return s.await(ctx, fl)
		}
		// Committed between the two looks: open it.
	}
}

// join adds a reader to the fetch of digest, starting it if there is
// none. It returns nil if the blob was committed meanwhile.
func (s *Store) join(digest string, size int64, local bool, fetch FetchFunc) (*flight, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, ok := s.entries[digest]; ok {
		return nil, nil
	}
	fl, ok := s.flights[digest]
	if ok && fl.failed() {
		// Its goroutine is cleaning up: start afresh rather than share
		// an error this caller did not wait for.
		ok = false
	}
	if ok {
		s.stats.joins.Add(1)
	} else {
		fl = &flight{digest: digest, started: make(chan struct{}), size: size, fileRefs: 1, local: local}
		fl.cond.L = &fl.mu
		fl.ctx, fl.cancel = context.WithCancel(s.ctx)
		s.flights[digest] = fl
		s.stats.inFlight.Add(1)
		s.wg.Add(1)
		go s.run(fl, fetch)
	}
	fl.readers++
	fl.fileRefs++
	return fl, nil
}

// await waits until the upstream answered and returns a Reader of fl.
func (s *Store) await(ctx context.Context, fl *flight) (*Reader, error) {
	select {
	case <-fl.started:
	case <-ctx.Done():
		s.leave(fl)
		return nil, fmt.Errorf("fetch blob %s: %w", fl.digest, ctx.Err())
	}
	fl.mu.Lock()
	err := fl.err
	fl.mu.Unlock()
	if err != nil {
		s.leave(fl)
		return nil, err
	}
	r := &Reader{s: s, digest: fl.digest, size: fl.size, fl: fl, ctx: ctx}
	r.stop = context.AfterFunc(ctx, func() {
		fl.mu.Lock()
		fl.cond.Broadcast()
		fl.mu.Unlock()
	})
	return r, nil
}

// leave drops a reader of fl. The last reader to leave a fetch still in
// progress cancels it.
func (s *Store) leave(fl *flight) {
	s.mu.Lock()
	fl.readers--
	if fl.entry != nil {
		s.unpinLocked(fl.entry)
	} else if fl.readers == 0 && !fl.abandoned {
		fl.mu.Lock()
		done := fl.done
		fl.mu.Unlock()
		if !done {
			fl.abandoned = true
			if s.flights[fl.digest] == fl {
				delete(s.flights, fl.digest)
			}
			fl.cancel()
		}
	}
	last, keep := s.unrefFileLocked(fl)
	s.mu.Unlock()
	if last {
		s.closeFlightFile(fl, keep)
	}
}
