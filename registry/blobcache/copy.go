package blobcache

import (
	"crypto/sha256"
	"fmt"
	"io"
)

// hashDepth is the number of chunk buffers of one fetch: the copy reads
// and writes one while the hasher works through the others.
const hashDepth = 4

type hashChunk struct {
	buf *[]byte
	n   int
}

// copyHashed copies body into fl's file in chunks of up to chunkSize,
// publishing each to the readers once written, and hashes it in a second
// goroutine so hashing overlaps the reads and writes. It fails on more
// than limit bytes. Memory is hashDepth chunks, whatever the size.
func (s *Store) copyHashed(fl *flight, body io.Reader, limit int64, what string) (int64, []byte, error) {
	free := make(chan *[]byte, hashDepth)
	for range hashDepth {
		free <- chunkPool.Get().(*[]byte)
	}
	toHash := make(chan hashChunk, hashDepth)
	h := sha256.New()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range toHash {
			h.Write((*c.buf)[:c.n]) //nolint:errcheck // hash writes never fail
			free <- c.buf
		}
	}()
	n, err := s.copyChunks(fl, body, limit, what, free, toHash)
	close(toHash)
	<-hashed
	for range hashDepth {
		chunkPool.Put(<-free)
	}
	if err != nil {
		return n, nil, err
	}
	return n, h.Sum(nil), nil
}

// copyChunks is copyHashed's loop: fill a free buffer from body, hand it
// to the hasher, write it to the file, publish it.
func (s *Store) copyChunks(fl *flight, body io.Reader, limit int64, what string, free chan *[]byte, toHash chan<- hashChunk) (int64, error) {
	var total int64
	for {
		b := <-free
		// One Read per chunk: readers see bytes as soon as they arrive.
		n, rerr := body.Read(*b)
		if n == 0 {
			free <- b
		} else {
			if total+int64(n) > limit {
				free <- b
				return total, fmt.Errorf("%w: more than %s %d bytes", ErrMismatch, what, limit)
			}
			toHash <- hashChunk{b, n} // the hasher and the write only read b
			if _, err := fl.file.Write((*b)[:n]); err != nil {
				return total, fmt.Errorf("write temporary file: %w", err)
			}
			total += int64(n)
			s.stats.bytesFetched.Add(int64(n))
			fl.mu.Lock()
			fl.written = total
			fl.cond.Broadcast()
			fl.mu.Unlock()
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("read upstream: %w", rerr)
		}
	}
}
