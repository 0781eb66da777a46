package blobcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestFetchWriteAfterVerify: bytes that do not match the digest (or the
// size) are never written under the digest name, and every reader gets
// an error before the blob's last byte.
func TestFetchWriteAfterVerify(t *testing.T) {
	const size = 1<<20 + 123
	want, digest := testBlob(size, 1)
	wrong := bytes.Clone(want)
	wrong[size-1] ^= 1 // only the last byte differs
	tests := []struct {
		name     string
		data     []byte
		announce int64 // size the upstream announces
		expect   int64 // size given to Fetch
		fail     int   // upstream fails after this many bytes
		// fetchErr: Fetch itself fails (the upstream's answer is wrong
		// before the body).
		fetchErr error
		readErr  error
	}{
		{name: "last byte wrong, size known", data: wrong, announce: size, expect: size, readErr: ErrMismatch},
		{name: "last byte wrong, size unknown", data: wrong, announce: -1, expect: -1, readErr: ErrMismatch},
		{name: "short body", data: want[:size-1], announce: -1, expect: size, readErr: ErrMismatch},
		{name: "short body, size unknown", data: want[:size-1], announce: -1, expect: -1, readErr: ErrMismatch},
		{name: "long body", data: append(bytes.Clone(want), 0), announce: -1, expect: size, readErr: ErrMismatch},
		{name: "upstream error mid-body", data: want, announce: size, expect: size, fail: size / 2, readErr: errUpstream},
		{name: "upstream error at the last byte", data: want, announce: size, expect: -1, fail: size - 1, readErr: errUpstream},
		{name: "announced size differs", data: want, announce: size + 1, expect: size, fetchErr: ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			up := newUpstream(tc.data)
			up.announce, up.failAfter, up.chunk = tc.announce, tc.fail, 100<<10
			up.answer, up.gate = make(chan struct{}), make(chan struct{})
			const readers = 5
			var wg sync.WaitGroup
			errs := make([]error, readers)
			got := make([]int, readers)
			for i := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, err := s.Fetch(context.Background(), digest, tc.expect, up.fetch)
					if err != nil {
						errs[i] = err
						return
					}
					defer r.Close()
					// Half read with small buffers, half with WriteTo.
					var buf bytes.Buffer
					if i%2 == 0 {
						_, err = io.CopyBuffer(onlyWriter{&buf}, onlyReader{r}, make([]byte, 4096))
					} else {
						_, err = r.WriteTo(&buf)
					}
					errs[i], got[i] = err, buf.Len()
				}()
			}
			// Every caller waits on the one fetch before the upstream
			// answers.
			waitJoins(t, s, readers-1)
			close(up.answer)
			close(up.gate)
			wg.Wait()
			for i, err := range errs {
				wantErr := tc.readErr
				if tc.fetchErr != nil {
					wantErr = tc.fetchErr
				}
				if !errors.Is(err, wantErr) {
					t.Errorf("reader %d: error %v, want %v", i, err, wantErr)
				}
				if got[i] >= size {
					t.Errorf("reader %d got %d bytes: the whole blob's length", i, got[i])
				}
			}
			s.Close()
			if names, _ := files(t, dir); len(names) != 0 {
				t.Errorf("files left: %v", names)
			}
			if calls := up.calls.Load(); calls != 1 {
				t.Errorf("%d upstream fetches, want 1", calls)
			}
			st := s.Stats()
			if st.Objects != 0 || st.Size != 0 {
				t.Errorf("stats: %+v", st)
			}
			if errors.Is(tc.readErr, ErrMismatch) || errors.Is(tc.fetchErr, ErrMismatch) {
				if st.Mismatches != 1 {
					t.Errorf("Mismatches = %d, want 1", st.Mismatches)
				}
			} else if st.FetchErrors != 1 {
				t.Errorf("FetchErrors = %d, want 1", st.FetchErrors)
			}
		})
	}
}

// onlyReader and onlyWriter hide WriteTo and ReadFrom, so io.Copy uses
// Read with the given buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

// TestFetchFetchErrorBeforeBody: an upstream that fails before the body
// fails Fetch for every caller, and the next Fetch tries again.
func TestFetchErrorBeforeBody(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	data, digest := testBlob(1000, 2)
	notFound := errors.New("404")
	_, err := s.Fetch(context.Background(), digest, -1, func(context.Context) (io.ReadCloser, int64, error) {
		return nil, 0, notFound
	})
	if !errors.Is(err, notFound) {
		t.Fatalf("Fetch: %v, want %v", err, notFound)
	}
	waitIdle(t, s)
	put(t, s, data, digest)
	if got, ok := readCached(t, s, digest); !ok || !bytes.Equal(got, data) {
		t.Fatalf("after a retry: cached %v", ok)
	}
}

// TestFetchConcurrentMisses: 100 callers missing one blob at once share
// one upstream fetch and all read the right bytes.
func TestFetchConcurrentMisses(t *testing.T) {
	const size, callers = 8 << 20, 100
	data, digest := testBlob(size, 3)
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	up := newUpstream(data)
	up.gate = make(chan struct{})
	var wg, joined sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		joined.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Fetch(context.Background(), digest, size, up.fetch)
			joined.Done()
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			h := sha256.New()
			var n int64
			if i%2 == 0 {
				n, err = r.WriteTo(h)
			} else {
				n, err = io.CopyBuffer(h, onlyReader{r}, make([]byte, 32<<10))
			}
			if err != nil || n != size || fmt.Sprintf("sha256:%x", h.Sum(nil)) != digest {
				errs <- fmt.Errorf("caller %d: %d bytes, %v", i, n, err)
			}
		}()
	}
	joined.Wait() // every caller has its Reader before a byte arrives
	close(up.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitIdle(t, s)
	if calls := up.calls.Load(); calls != 1 {
		t.Errorf("%d upstream fetches, want 1", calls)
	}
	st := s.Stats()
	if st.UpstreamFetches != 1 || st.Joins != callers-1 || st.BytesFetched != size || st.Objects != 1 || st.Size != size {
		t.Errorf("stats: %+v", st)
	}
	if st.BytesStreamed != callers*size {
		t.Errorf("BytesStreamed = %d, want %d", st.BytesStreamed, callers*size)
	}
	if got, ok := readCached(t, s, digest); !ok || !bytes.Equal(got, data) {
		t.Errorf("not cached after the fetch")
	}
	if names, _ := files(t, dir); len(names) != 1 {
		t.Errorf("files: %v", names)
	}
}

// TestFetchReaderLeavesEarly: readers that go away (Close, or their
// context is cancelled) do not disturb the others, and the upstream
// fetch goes on while anyone reads.
func TestFetchReaderLeavesEarly(t *testing.T) {
	const size = 2 << 20
	data, digest := testBlob(size, 4)
	tests := []struct {
		name string
		// leave is called on the first reader (the one that started the
		// fetch) after it read half.
		leave func(r *Reader, cancel context.CancelFunc)
	}{
		{"close", func(r *Reader, _ context.CancelFunc) { r.Close() }},
		{"context cancelled", func(_ *Reader, cancel context.CancelFunc) { cancel() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			up := newUpstream(data)
			up.step = make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			first, err := s.Fetch(ctx, digest, size, up.fetch)
			if err != nil {
				t.Fatal(err)
			}
			var others []*Reader
			for range 3 {
				r, err := s.Fetch(context.Background(), digest, size, up.fetch)
				if err != nil {
					t.Fatal(err)
				}
				others = append(others, r)
			}
			// Half the body arrives; the first reader reads it and leaves.
			for range size / 2 / (64 << 10) {
				up.step <- struct{}{}
			}
			if _, err := io.ReadFull(first, make([]byte, size/2-1)); err != nil {
				t.Fatal(err)
			}
			tc.leave(first, cancel)
			if tc.name == "context cancelled" {
				if _, err := first.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
					t.Errorf("read after cancel: %v", err)
				}
				first.Close()
			}
			if err := up.lastCtx().Err(); err != nil {
				t.Fatalf("upstream fetch cancelled while others read: %v", err)
			}
			close(up.step) // the rest at once
			var wg sync.WaitGroup
			for i, r := range others {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer r.Close()
					got, err := io.ReadAll(r)
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("reader %d: %d bytes, %v", i, len(got), err)
					}
				}()
			}
			wg.Wait()
			waitIdle(t, s)
			if up.calls.Load() != 1 || up.finished.Load() != 1 {
				t.Errorf("upstream: %d fetches, %d read to the end", up.calls.Load(), up.finished.Load())
			}
			if got, ok := readCached(t, s, digest); !ok || !bytes.Equal(got, data) {
				t.Errorf("not cached")
			}
		})
	}
}

// TestFetchAbandoned: when the last reader leaves before the fetch
// completed, the upstream fetch is cancelled and nothing is kept; the
// next Fetch starts again. A reader waiting on a stalled upstream
// returns as soon as its context is cancelled.
func TestFetchAbandoned(t *testing.T) {
	const size = 1 << 20
	data, digest := testBlob(size, 5)
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	up := newUpstream(data)
	up.step = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := s.Fetch(ctx, digest, size, up.fetch)
	if err != nil {
		t.Fatal(err)
	}
	up.step <- struct{}{}
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	// The upstream stalls; the reader waits until its ctx is cancelled.
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(r)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting reader did not return when its context was cancelled")
	}
	r.Close()
	select {
	case <-up.lastCtx().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("upstream fetch not cancelled after the last reader left")
	}
	waitIdle(t, s)
	if names, _ := files(t, dir); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
	if st := s.Stats(); st.FetchErrors != 1 || st.Objects != 0 {
		t.Errorf("stats: %+v", st)
	}
	put(t, s, data, digest)
	if st := s.Stats(); st.UpstreamFetches != 2 || st.Objects != 1 {
		t.Errorf("stats after a new fetch: %+v", st)
	}
}

// TestFetchHitAndLateJoin: a Fetch after completion reads the cached
// file; Fetch of a blob larger than the bound streams it and keeps
// nothing.
func TestFetchHitAndOversized(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxBytes: 1 << 20})
	small, sd := testBlob(1000, 6)
	put(t, s, small, sd)
	r, err := s.Fetch(context.Background(), sd, -1, func(context.Context) (io.ReadCloser, int64, error) {
		t.Error("upstream asked for a cached blob")
		return nil, 0, errors.New("no")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Cached() || r.Size() != 1000 {
		t.Errorf("hit: Cached %v, Size %d", r.Cached(), r.Size())
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), small) {
		t.Errorf("hit: %d bytes, %v", buf.Len(), err)
	}
	r.Close()

	big, bd := testBlob(1<<20+1, 7)
	put(t, s, big, bd)
	if _, ok := readCached(t, s, bd); ok {
		t.Error("a blob larger than MaxBytes was kept")
	}
	if names, _ := files(t, dir); len(names) != 1 || names[0] != sd[len(digestPrefix):] {
		t.Errorf("files: %v", names)
	}
	if st := s.Stats(); st.Hits != 1 || st.BytesServed != 1000 || st.Evictions != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestFetchStaggered: callers arriving at any moment of a fetch (before
// it, during it, while it commits, after it) all read the right bytes
// from one upstream fetch.
func TestFetchStaggered(t *testing.T) {
	const size, callers = 4 << 20, 50
	data, digest := testBlob(size, 8)
	for round := range 5 {
		s := openStore(t, t.TempDir(), Options{})
		up := newUpstream(data)
		up.step = make(chan struct{})
		go func() { // pace the body: a chunk every 100 µs
			for range size / (64 << 10) {
				up.step <- struct{}{}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i*(round+1)) * 200 * time.Microsecond)
				r, err := s.Fetch(context.Background(), digest, -1, up.fetch)
				if err != nil {
					t.Error(err)
					return
				}
				defer r.Close()
				h := sha256.New()
				if n, err := r.WriteTo(h); err != nil || n != size || fmt.Sprintf("sha256:%x", h.Sum(nil)) != digest {
					t.Errorf("caller %d: %d bytes, %v", i, n, err)
				}
			}()
		}
		wg.Wait()
		waitIdle(t, s)
		st := s.Stats()
		if up.calls.Load() != 1 || st.UpstreamFetches != 1 || st.Hits+st.Joins != callers-1 {
			t.Errorf("round %d: %d upstream calls, stats %+v", round, up.calls.Load(), st)
		}
	}
}

// TestFetchHoldsLastByte: with every byte written but the upstream not
// yet finished, a reader gets all but the last byte; the last comes once
// the body ended and the digest matched.
func TestFetchHoldsLastByte(t *testing.T) {
	const size = 300 << 10
	data, digest := testBlob(size, 9)
	s := openStore(t, t.TempDir(), Options{})
	up := newUpstream(data)
	up.holdEOF = make(chan struct{})
	r, err := s.Fetch(context.Background(), digest, size, up.fetch)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, size)
	if _, err := io.ReadFull(r, got[:size-1]); err != nil {
		t.Fatal(err)
	}
	last := make(chan error, 1)
	go func() {
		n, err := r.Read(got[size-1:])
		if n != 1 {
			err = fmt.Errorf("read %d bytes, %v", n, err)
		}
		last <- err
	}()
	select {
	case err := <-last:
		t.Fatalf("last byte delivered before the body ended: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(up.holdEOF)
	if err := <-last; err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("after the last byte: %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Error("wrong bytes")
	}
}

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newGen(n int64) *genReader { return &genReader{rng: rand.NewChaCha8([32]byte{42}), n: n} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	g.rng.Read(p) //nolint:errcheck // never fails
	g.n -= int64(len(p))
	return len(p), nil
}

func (g *genReader) Close() error { return nil }

// TestFetchMemoryFlat: a fetch of a 48 MiB blob by three readers
// allocates a small, fixed amount, not the blob.
func TestFetchMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("48 MiB")
	}
	const size = 48 << 20
	h := sha256.New()
	io.CopyBuffer(h, newGen(size), make([]byte, 64<<10)) //nolint:errcheck
	digest := fmt.Sprintf("sha256:%x", h.Sum(nil))
	s := openStore(t, t.TempDir(), Options{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fetch := func(context.Context) (io.ReadCloser, int64, error) { return newGen(size), size, nil }
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Fetch(context.Background(), digest, size, fetch)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			h := sha256.New()
			if _, err := r.WriteTo(h); err != nil || fmt.Sprintf("sha256:%x", h.Sum(nil)) != digest {
				t.Errorf("read: %v", err)
			}
		}()
	}
	wg.Wait()
	waitIdle(t, s)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("allocated %d MiB for a %d MiB blob", alloc>>20, size>>20)
	} else {
		t.Logf("allocated %d KiB for a %d MiB blob", alloc>>10, size>>20)
	}
}
