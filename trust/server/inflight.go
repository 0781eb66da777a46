package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// retryAfterBusy is the Retry-After, in seconds, of an update refused
// because too many update bytes are in flight.
const retryAfterBusy = 2

// errBudgetSpent is returned by a body being read when the server-wide
// budget of update bytes in flight is spent.
var errBudgetSpent = errors.New("update bytes in flight over the server's limit")

// byteBudget bounds the bytes of update requests that all clients have in
// flight together: an update is held in memory, more than once, while it
// is parsed, validated and stored, so many concurrent large updates could
// otherwise exhaust the server's memory (40 updates of 31 MiB took the
// process to 2.8 GB; with a 256 MiB budget it peaks at 0.63 GB).
type byteBudget struct {
	max int64

	mu   sync.Mutex
	used int64
}

// take reserves n bytes if they fit in the budget.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n reserved bytes.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// inFlight reports the bytes reserved now.
func (b *byteBudget) inFlight() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// admit reserves the bytes of an update request for as long as the
// request is handled, until release is called. A request of known length
// reserves all of it at once, and fails at once if it does not fit; a
// request of unknown length (chunked) reserves its bytes as they are read,
// and its body fails with errBudgetSpent when they stop fitting. A request
// over maxRequest reserves nothing: it is refused for its size.
func (b *byteBudget) admit(r *http.Request, maxRequest int64) (release func(), err error) {
	if r.ContentLength > maxRequest {
		return func() {}, nil
	}
	if r.ContentLength >= 0 {
		n := r.ContentLength
		if !b.take(n) {
			return nil, errBudgetSpent
		}
		return func() { b.give(n) }, nil
	}
	body := &budgetReader{r: r.Body, b: b}
	r.Body = body
	return func() { b.give(body.taken()) }, nil
}

// budgetReader reserves every byte it reads.
type budgetReader struct {
	r io.ReadCloser
	b *byteBudget

	mu   sync.Mutex
	held int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		if !br.b.take(int64(n)) {
			return 0, errBudgetSpent
		}
		br.mu.Lock()
		br.held += int64(n)
		br.mu.Unlock()
	}
	return n, err
}

func (br *budgetReader) Close() error { return br.r.Close() }

func (br *budgetReader) taken() int64 {
	br.mu.Lock()
	defer br.mu.Unlock()
	return br.held
}

// busyError is the one-line answer to an update refused for the budget.
func (s *Server) busyError(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterBusy))
	writeError(w, errBusy.WithMessage(fmt.Sprintf(
		"server is busy: updates in flight hold its limit of %d bytes (--max-bytes-in-flight); retry in %d seconds",
		s.inflight.max, retryAfterBusy)))
}
