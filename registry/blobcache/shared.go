package blobcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrNotShared is the error of Shared.Open for a digest the shared store
// does not hold.
var ErrNotShared = errors.New("not in the shared store")

// Shared is a second store that several proxies share, such as a bucket
// of S3-compatible object storage (see package registry/blobcache/bucket):
// a fetch looks there before it calls its FetchFunc, and a blob fetched
// through a FetchFunc is copied there once it matched its digest. The
// shared store is trusted no more than an upstream: its bytes are hashed
// as they arrive, exactly like an upstream's, and an object that does not
// match is deleted from it.
type Shared interface {
	// Open returns the object of digest and its length; an error
	// wrapping ErrNotShared if there is none. The body must stop when
	// ctx is cancelled.
	Open(ctx context.Context, digest string) (body io.ReadCloser, size int64, err error)
	// Put stores the size bytes of r as the object of digest. A reader
	// of the object must never see it partly written.
	Put(ctx context.Context, digest string, size int64, r io.Reader) error
	// Delete removes the object of digest, if any.
	Delete(ctx context.Context, digest string) error
	// String names the store in logs and errors.
	String() string
}

// sharedOpenTimeout bounds the wait for the shared store's answer before
// a fetch goes to its FetchFunc instead; sharedPutTimeout bounds a copy
// into the shared store.
const (
	sharedOpenTimeout = 10 * time.Second
	sharedPutTimeout  = 15 * time.Minute
)

// HasShared reports whether the store has a shared store.
func (s *Store) HasShared() bool { return s.shared != nil }

// openSource opens the bytes of fl: from the shared store if it holds
// them (and fl is not a local Keep), else through fetch.
func (s *Store) openSource(fl *flight, fetch FetchFunc) (io.ReadCloser, int64, error) {
	if s.shared != nil && !fl.local {
		body, size, err := s.openShared(fl)
		switch {
		case err == nil && fl.size >= 0 && size >= 0 && size != fl.size:
			body.Close()
			s.stats.sharedMismatches.Add(1)
			s.log.Warn("blob cache: shared object has the wrong length; deleting it", "shared", s.shared.String(), "digest", fl.digest, "size", size, "expected", fl.size)
			s.deleteShared(fl.digest)
		case err == nil:
			fl.fromShared = true
			s.stats.sharedHits.Add(1)
			return body, size, nil
		case errors.Is(err, ErrNotShared):
			s.stats.sharedMisses.Add(1)
		case fl.ctx.Err() != nil:
			return nil, 0, fl.ctx.Err()
		default:
			s.stats.sharedErrors.Add(1)
			s.log.Warn("blob cache: shared store unavailable; fetching from the source", "shared", s.shared.String(), "digest", fl.digest, "err", err)
		}
	}
	if !fl.local {
		s.stats.fetches.Add(1)
	}
	return fetch(fl.ctx)
}

// openShared opens fl's object in the shared store, giving up after
// sharedOpenTimeout; the body then reads under fl.ctx.
func (s *Store) openShared(fl *flight) (io.ReadCloser, int64, error) {
	ctx, cancel := context.WithCancel(fl.ctx)
	t := time.AfterFunc(sharedOpenTimeout, cancel)
	body, size, err := s.shared.Open(ctx, fl.digest)
	if !t.Stop() && err == nil {
		body.Close()
		err = fmt.Errorf("no answer within %v", sharedOpenTimeout)
	}
	if err != nil {
		cancel()
		return nil, 0, err
	}
	return &cancelOnClose{ReadCloser: body, cancel: cancel}, size, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// share copies a committed blob into the shared store, in the
// background; a failure only costs other proxies a fetch of their own.
// The file is opened before share returns, so an eviction meanwhile does
// not stop the copy.
func (s *Store) share(digest string) {
	if s.shared == nil {
		return
	}
	f, err := os.Open(s.path(digest))
	if err != nil {
		s.log.Warn("blob cache: copy to the shared store", "shared", s.shared.String(), "digest", digest, "err", err)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer f.Close()
		fi, err := f.Stat()
		if err == nil {
			ctx, cancel := context.WithTimeout(s.ctx, sharedPutTimeout)
			err = s.shared.Put(ctx, digest, fi.Size(), f)
			cancel()
		}
		if err != nil {
			s.stats.sharedErrors.Add(1)
			s.log.Warn("blob cache: copy to the shared store", "shared", s.shared.String(), "digest", digest, "err", err)
			return
		}
		s.stats.sharedPuts.Add(1)
	}()
}

// deleteShared deletes a shared object found not to match its digest.
func (s *Store) deleteShared(digest string) {
	ctx, cancel := context.WithTimeout(s.ctx, sharedOpenTimeout)
	defer cancel()
	if err := s.shared.Delete(ctx, digest); err != nil {
		s.log.Warn("blob cache: delete a bad shared object", "shared", s.shared.String(), "digest", digest, "err", err)
	}
}

// Keep stores body, whose digest the caller has checked, as the blob of
// digest (a manifest the proxy verified): it is hashed again, written
// like a fetched blob and copied to the shared store. An error only means
// it is not kept.
func (s *Store) Keep(ctx context.Context, digest string, body []byte) error {
	if err := checkDigest(digest); err != nil {
		return err
	}
	size := int64(len(body))
	rd, err := s.fetch(ctx, digest, size, true, func(context.Context) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(body)), size, nil
	})
	if err != nil {
		return err
	}
	defer rd.Close()
	// Read to the end: the store commits a fetch that completed.
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return fmt.Errorf("keep blob %s: %w", digest, err)
	}
	return nil
}
