package blobcache

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Reader reads one blob for one caller of Fetch: a cached file, or a
// fetch in progress that it follows as it grows. A Reader of a fetch in
// progress returns the blob's last byte only once the whole blob matched
// its digest, and an error instead if it did not. Close it when done.
// A Reader is not safe for concurrent use.
type Reader struct {
	s      *Store
	digest string
	size   int64
	ent    *Entry // a hit: the cached file

	fl     *flight
	ctx    context.Context
	stop   func() bool // stops the ctx watch
	off    int64
	closed bool
}

// Size is the blob's length: the expected size given to Fetch or
// announced by the upstream, -1 if neither knew it.
func (r *Reader) Size() int64 { return r.size }

// Cached reports whether the bytes come from a verified cached file
// rather than a fetch in progress.
func (r *Reader) Cached() bool { return r.ent != nil }

var errReaderClosed = errors.New("read from a closed blob reader")

// Read reads the next bytes of the blob, waiting for the fetch if
// needed. It returns io.EOF only after the last byte of a verified blob.
func (r *Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	if r.ent != nil {
		n, err := r.ent.f.Read(p)
		r.s.stats.bytesServed.Add(int64(n))
		return n, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	end, err := r.wait()
	if err != nil {
		return 0, err
	}
	return r.readAt(p[:min(int64(len(p)), end-r.off)])
}

// WriteTo copies the rest of the blob to w: a cached file by
// io.Copy (so sendfile when w is a connection or an
// http.ResponseWriter), a fetch in progress in 256 KiB chunks as they
// arrive.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	if r.ent != nil {
		n, err := io.Copy(w, r.ent.f)
		r.s.stats.bytesServed.Add(n)
		return n, err
	}
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	var total int64
	for {
		end, err := r.wait()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := r.readAt((*bufp)[:min(int64(len(*bufp)), end-r.off)])
		if err != nil {
			return total, err
		}
		m, err := w.Write((*bufp)[:n])
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
}

// wait blocks until bytes past r.off may be read and returns where they
// end. The last byte written is held back until the fetch is verified.
func (r *Reader) wait() (int64, error) {
	fl := r.fl
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for {
		if fl.err != nil {
			return 0, fl.err
		}
		if err := r.ctx.Err(); err != nil {
			return 0, fmt.Errorf("read blob %s: %w", r.digest, err)
		}
		end := fl.written
		if !fl.done {
			end--
		}
		if r.off < end {
			return end, nil
		}
		if fl.done {
			return 0, io.EOF
		}
		fl.cond.Wait()
	}
}

// readAt reads len(p) bytes that the fetch has written, at r.off.
func (r *Reader) readAt(p []byte) (int, error) {
	n, err := r.fl.file.ReadAt(p, r.off)
	r.off += int64(n)
	r.s.stats.bytesStreamed.Add(int64(n))
	if n == len(p) {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, fmt.Errorf("read blob %s from its temporary file: %w", r.digest, err)
}

// Close releases the Reader. The last Reader of a fetch still in
// progress cancels the fetch.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.ent != nil {
		return r.ent.Close()
	}
	r.stop()
	r.s.leave(r.fl)
	return nil
}
