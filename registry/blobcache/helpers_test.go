package blobcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testBlob returns n pseudo-random bytes (seeded) and their digest.
func testBlob(n int, seed uint64) ([]byte, string) {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	r.Read(b)
	return b, digestOf(b)
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return digestPrefix + hex.EncodeToString(sum[:])
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// upstream serves one blob's bytes to FetchFuncs and records what
// happened. The zero gate and step mean: all bytes at once.
type upstream struct {
	data     []byte
	announce int64 // size announced; set to -1 for unknown
	chunk    int   // bytes per Read (default 64 KiB)
	// answer, if set, holds the upstream's answer (FetchFunc's return)
	// until closed; gate holds the body.
	answer chan struct{}
	gate   chan struct{}
	// step, if set, is received from before each chunk: the test paces
	// the body.
	step chan struct{}
	// holdEOF, if set, is received from before the body says io.EOF.
	holdEOF chan struct{}
	// failAfter, if > 0, makes the body fail after that many bytes.
	failAfter int

	calls    atomic.Int32
	mu       sync.Mutex
	ctxs     []context.Context
	finished atomic.Int32 // bodies read to their end
}

func newUpstream(data []byte) *upstream {
	return &upstream{data: data, announce: int64(len(data))}
}

var errUpstream = errors.New("upstream broke")

func (u *upstream) fetch(ctx context.Context) (io.ReadCloser, int64, error) {
	u.calls.Add(1)
	u.mu.Lock()
	u.ctxs = append(u.ctxs, ctx)
	u.mu.Unlock()
	if u.answer != nil {
		select {
		case <-u.answer:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return &upBody{u: u, ctx: ctx}, u.announce, nil
}

// lastCtx is the context of the latest fetch.
func (u *upstream) lastCtx() context.Context {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ctxs[len(u.ctxs)-1]
}

type upBody struct {
	u   *upstream
	ctx context.Context
	off int
}

func (b *upBody) Read(p []byte) (int, error) {
	u := b.u
	if u.gate != nil {
		select {
		case <-u.gate:
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if u.step != nil && b.off < len(u.data) {
		select {
		case <-u.step:
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if u.failAfter > 0 && b.off >= u.failAfter {
		return 0, errUpstream
	}
	if b.off >= len(u.data) {
		if u.holdEOF != nil {
			select {
			case <-u.holdEOF:
			case <-b.ctx.Done():
				return 0, b.ctx.Err()
			}
		}
		u.finished.Add(1)
		return 0, io.EOF
	}
	chunk := u.chunk
	if chunk == 0 {
		chunk = 64 << 10
	}
	end := min(b.off+chunk, len(u.data))
	if u.failAfter > 0 {
		end = min(end, u.failAfter)
	}
	n := copy(p, u.data[b.off:end])
	b.off += n
	return n, nil
}

func (b *upBody) Close() error { return nil }

// openStore opens a store in dir and closes it at the end of the test.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put fetches data into the store and reads it whole.
func put(t testing.TB, s *Store, data []byte, digest string) {
	t.Helper()
	r, err := s.Fetch(context.Background(), digest, int64(len(data)), newUpstream(data).fetch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("put %s: read %d bytes, %v", digest, len(got), err)
	}
	waitIdle(t, s)
}

// waitJoins waits until n Fetch calls joined a fetch in progress.
func waitJoins(t testing.TB, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Joins < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d joins after 10 s, want %d", s.Stats().Joins, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until no fetch is in progress (the commit after the
// last byte was released is done).
func waitIdle(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().InFlight > 0 {
		if time.Now().After(deadline) {
			t.Fatal("fetch still in progress after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// files lists the folder of the store at dir, sorted, and sums the
// sizes.
func files(t testing.TB, dir string) ([]string, int64) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, de.Name())
		total += fi.Size()
	}
	sort.Strings(names)
	return names, total
}

// fileOf is the path of digest's file in the store at dir.
func fileOf(dir, digest string) string {
	return filepath.Join(dir, "sha256", strings.TrimPrefix(digest, digestPrefix))
}

// readAll reads the blob of digest from the store via Get.
func readCached(t testing.TB, s *Store, digest string) ([]byte, bool) {
	t.Helper()
	e, ok, err := s.Get(digest)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil, false
	}
	defer e.Close()
	b, err := io.ReadAll(e.File())
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}
