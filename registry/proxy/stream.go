package proxy

import (
	"crypto/sha256"
	"io"
	"net/http"
	"sync"
)

// streamChunk is the read size when streaming blobs.
const streamChunk = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

// heldWriter writes a response body but keeps its last byte back until
// release: a blob whose hash turns out wrong is never complete for the
// client, even when the upstream sent the right length.
type heldWriter struct {
	w       io.Writer
	held    byte
	hasHeld bool
}

func (hw *heldWriter) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if hw.hasHeld {
		if _, err := hw.w.Write([]byte{hw.held}); err != nil {
			return err
		}
	}
	if _, err := hw.w.Write(p[:len(p)-1]); err != nil {
		return err
	}
	hw.held, hw.hasHeld = p[len(p)-1], true
	return nil
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
	n   int
}

// streamHashed copies body to w through a heldWriter, hashing it in a
// second goroutine so hashing overlaps the copy. Memory is four chunks
// per stream, whatever the blob's size. It returns the writer (to release
// the last byte once the hash is checked), the bytes read and their
// sha256.
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
			hash.Write((*c.buf)[:c.n]) //nolint:errcheck // hash writes never fail
			free <- c.buf
		}
	}()
	var (
		total int64
		err   error
	)
	for {
		b := <-free
		n, rerr := body.Read(*b)
		if n == 0 {
			free <- b
		} else {
			total += int64(n)
			toHash <- chunk{b, n}
			if werr := hw.write((*b)[:n]); werr != nil {
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
