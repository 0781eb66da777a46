package blobcache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testlog"
)

// TestReopen: a store opened again finds its files, their sizes and
// their last-use order.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStore(t, dir, Options{Now: clk.Now})
	var data [][]byte
	var digests []string
	for i := range 3 {
		b, d := testBlob(10000+i, uint64(10+i))
		put(t, s, b, d)
		data, digests = append(data, b), append(digests, d)
		clk.Advance(time.Hour)
	}
	// Use the oldest again: it becomes the most recently used.
	if _, ok := readCached(t, s, digests[0]); !ok {
		t.Fatal("miss")
	}
	s.Close()

	s2 := openStore(t, dir, Options{Now: clk.Now})
	if st := s2.Stats(); st.Objects != 3 || st.Size != 30003 {
		t.Fatalf("after reopen: %+v", st)
	}
	s2.Close()

	// Opened with room for two, the least recently used (blob 1) goes.
	s3 := openStore(t, dir, Options{Now: clk.Now, MaxBytes: 20003})
	if st := s3.Stats(); st.Objects != 2 || st.Evictions != 1 {
		t.Fatalf("reopen with a smaller bound: %+v", st)
	}
	if _, err := os.Stat(fileOf(dir, digests[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("least recently used blob not evicted: %v", err)
	}
	for _, i := range []int{0, 2} {
		if got, ok := readCached(t, s3, digests[i]); !ok || !bytes.Equal(got, data[i]) {
			t.Errorf("blob %d after reopen: hit %v", i, ok)
		}
	}
}

// TestOneStorePerFolder: a second store on an open folder fails with
// ErrLocked and leaves the first one's files alone; after Close the
// folder opens again.
func TestOneStorePerFolder(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	b, d := testBlob(1000, 1)
	put(t, s, b, d)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open on an open folder: %v, want ErrLocked", err)
	}
	if got, ok := readCached(t, s, d); !ok || !bytes.Equal(got, b) {
		t.Fatalf("first store after a refused second Open: hit %v", ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

// TestOpenCleansLeftovers: partial files of a crash are removed; files
// not named by a digest are left alone and ignored.
func TestOpenCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	data, digest := testBlob(5000, 20)
	put(t, s, data, digest)
	s.Close()
	sub := filepath.Join(dir, "sha256")
	partial := filepath.Join(sub, partialPrefix+digest[len(digestPrefix):]+"-12345")
	if err := os.WriteFile(partial, data[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(sub, "NOTES")
	if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, Options{})
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("stray file: %v", err)
	}
	if st := s2.Stats(); st.Objects != 1 || st.Size != 5000 {
		t.Errorf("stats: %+v", st)
	}
}

// TestCorruption: a cached file that was truncated, changed or deleted
// is found, deleted and not served, and the next Fetch gets it again.
func TestCorruption(t *testing.T) {
	const size = 300 << 10
	data, digest := testBlob(size, 30)
	truncate := func(p string) error { return os.Truncate(p, size/2) }
	flip := func(p string) error {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := []byte{0}
		if _, err := f.ReadAt(b, size-7); err != nil {
			return err
		}
		b[0] ^= 0x10
		_, err = f.WriteAt(b, size-7)
		return err
	}
	grow := func(p string) error {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write([]byte{0})
		return err
	}
	tests := []struct {
		name   string
		change func(path string) error
		// running: the file changes while the store runs and after it
		// served (verified) the file once; else while it is closed.
		running bool
		// scrub: found by Scrub, not by Get (a bit flip in a file
		// already verified by this process).
		scrub bool
	}{
		{name: "truncated while stopped", change: truncate},
		{name: "bit flip while stopped", change: flip},
		{name: "byte appended while stopped", change: grow},
		{name: "truncated while running", change: truncate, running: true},
		{name: "deleted while running", change: os.Remove, running: true},
		{name: "bit flip while running", change: flip, running: true, scrub: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs testlog.Buffer
			opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			s := openStore(t, dir, opts)
			put(t, s, data, digest)
			if !tc.running {
				s.Close()
			}
			if err := tc.change(fileOf(dir, digest)); err != nil {
				t.Fatal(err)
			}
			if !tc.running {
				s = openStore(t, dir, opts)
			}
			if tc.scrub {
				res, err := s.Scrub(context.Background())
				if err != nil || res.Checked != 1 || res.Corrupt != 1 {
					t.Fatalf("Scrub: %+v, %v", res, err)
				}
			}
			if _, ok := readCached(t, s, digest); ok {
				t.Fatal("corrupt file served by Get")
			}
			rec := httptest.NewRecorder()
			if ok, err := s.Serve(rec, httptest.NewRequest("GET", "/", nil), digest, ""); ok || err != nil {
				t.Fatalf("Serve of a corrupt file: %v, %v", ok, err)
			}
			if _, err := os.Stat(fileOf(dir, digest)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt file not deleted: %v", err)
			}
			if st := s.Stats(); st.Corrupt != 1 || st.Objects != 0 || st.Size != 0 {
				t.Errorf("stats: %+v", st)
			}
			if !strings.Contains(logs.String(), "corrupt file deleted") {
				t.Errorf("not logged: %s", logs.String())
			}
			up := newUpstream(data)
			r, err := s.Fetch(context.Background(), digest, size, up.fetch)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data) || up.calls.Load() != 1 {
				t.Fatalf("re-fetch: %d bytes, %v, %d upstream calls", len(got), err, up.calls.Load())
			}
			waitIdle(t, s)
			if got, ok := readCached(t, s, digest); !ok || !bytes.Equal(got, data) {
				t.Error("not cached again")
			}
		})
	}
}

// TestScrubClean: Scrub of sound files deletes nothing.
func TestScrubClean(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	for i := range 3 {
		b, d := testBlob(1000*(i+1), uint64(40+i))
		put(t, s, b, d)
	}
	res, err := s.Scrub(context.Background())
	if err != nil || res.Checked != 3 || res.Corrupt != 0 || res.Bytes != 6000 {
		t.Errorf("Scrub: %+v, %v", res, err)
	}
}

// TestInvalidDigest: nothing that is not sha256:<64 lowercase hex>
// reaches the file system.
func TestInvalidDigest(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	_, good := testBlob(1, 50)
	hexPart := good[len(digestPrefix):]
	for _, d := range []string{
		"",
		hexPart,
		"sha256:" + hexPart[:63],
		"sha256:" + hexPart + "0",
		"sha256:" + hexPart[:62] + "AB",
		"sha512:" + hexPart,
		"sha256:../../../../../../etc/passwd" + hexPart[:30],
		"sha256:" + hexPart[:60] + "/../",
		"SHA256:" + hexPart,
	} {
		if _, _, err := s.Get(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Get(%q): %v", d, err)
		}
		if _, err := s.Fetch(context.Background(), d, -1, nil); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Fetch(%q): %v", d, err)
		}
		if err := s.Remove(d); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Remove(%q): %v", d, err)
		}
		if ok, err := s.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), d, ""); ok || !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("Serve(%q): %v, %v", d, ok, err)
		}
	}
}

// TestClosed: calls on a closed store fail with ErrClosed.
func TestClosed(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data, d := testBlob(10, 60)
	s.Close()
	if _, _, err := s.Get(d); !errors.Is(err, ErrClosed) {
		t.Errorf("Get: %v", err)
	}
	if _, err := s.Fetch(context.Background(), d, 10, newUpstream(data).fetch); !errors.Is(err, ErrClosed) {
		t.Errorf("Fetch: %v", err)
	}
}
