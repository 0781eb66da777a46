package mirror

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// limiter is a RoundTripper that keeps at most cap(slots) requests in
// flight to a source (a request holds its slot until its body is closed)
// and counts them, so a mirror cannot overload the server it reads.
type limiter struct {
	next  http.RoundTripper
	slots chan struct{}
	count atomic.Int64
}

func newLimiter(next http.RoundTripper, max int) *limiter {
	return &limiter{next: next, slots: make(chan struct{}, max)}
}

func (l *limiter) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case l.slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	l.count.Add(1)
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		<-l.slots
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { <-l.slots }}
	return resp, nil
}

// releaseBody gives the slot back once, when the body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
