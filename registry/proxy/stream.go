package proxy

import (
	"crypto/sha256"
	"io"
	"net/http"
	"sync"
)

// streamChunk is the read size when streaming blobs.
const streamChunk = 256 << 10

// Each pooled buffer has one spare byte in front for the byte held back
// from the previous chunk, so every chunk goes out in a single write.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk+1); return &b }}

// heldWriter tracks the last byte of the body, kept back until release:
// a blob whose hash turns out wrong is never complete for the client,
// even when the upstream sent the right length.
type heldWriter struct {
	w       io.Writer
	held    byte
	hasHeld bool
}

// release sends the byte held back.
func (hw *heldWriter) release() error {
	if !hw.hasHeld {
		return nil
	}
	hw.hasHeld = false
	_, err := hw.w.Write([]byte{hw.held})
	return err
}

type chunk struct {
	buf *[]byte
	n   int // data in (*buf)[1 : 1+n]
}

// streamHashed copies body to w, hashing it in a second goroutine so
// hashing overlaps the copy, and keeps the body's last byte back (see
// heldWriter). Memory is four chunks per stream, whatever the blob's
// size. It returns the writer (to release the last byte once the hash is
// checked), the bytes read and their sha256.
func streamHashed(w http.ResponseWriter, body io.Reader) (*heldWriter, int64, []byte, error) {
	hw := &heldWriter{w: w}
	hash := sha256.New()
	const depth = 4
	free := make(chan *[]byte, depth)
	for i := 0; i < depth; i++ {
		free <- chunkPool.Get().(*[]byte)
	}
	toHash := make(chan chunk, depth)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range toHash {
			hash.Write((*c.buf)[1 : 1+c.n]) //nolint:errcheck // hash writes never fail
			free <- c.buf
		}
	}()
	var (
		total int64
		err   error
	)
	for {
		b := <-free
		n, rerr := body.Read((*b)[1:])
		if n == 0 {
			free <- b
		} else {
			total += int64(n)
			// Byte 0 is set before the hasher sees the buffer; the hasher
			// reads only bytes 1..n, the writer only reads.
			start := 1
			if hw.hasHeld {
				(*b)[0], start = hw.held, 0
			}
			hw.held, hw.hasHeld = (*b)[n], true
			toHash <- chunk{b, n}
			if _, werr := w.Write((*b)[start:n]); werr != nil {
				err = werr
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(toHash)
	<-hashed
	for i := 0; i < depth; i++ {
		chunkPool.Put(<-free)
	}
	if err != nil {
		return hw, total, nil, err
	}
	return hw, total, hash.Sum(nil), nil
}
