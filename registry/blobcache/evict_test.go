package blobcache

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// TestEvictLRU: beyond the bound the least recently used file goes, a
// use (Get) counts, and the cache ends within the bound.
func TestEvictLRU(t *testing.T) {
	const size = 10 << 10
	clk := newClock()
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxBytes: 4 * size, Now: clk.Now})
	var d [6]string
	var data [6][]byte
	for i := range d {
		data[i], d[i] = testBlob(size, uint64(80+i))
	}
	for i := range 4 { // A B C D
		put(t, s, data[i], d[i])
		clk.Advance(time.Second)
	}
	readCached(t, s, d[0]) // A is used again: B is now the oldest
	clk.Advance(time.Second)
	tests := []struct {
		add     int
		evicted int
	}{
		{add: 4, evicted: 1}, // E pushes out B
		{add: 5, evicted: 2}, // F pushes out C
	}
	for _, tc := range tests {
		put(t, s, data[tc.add], d[tc.add])
		clk.Advance(time.Second)
		if _, ok := readCached(t, s, d[tc.evicted]); ok {
			t.Errorf("adding %d: %d not evicted", tc.add, tc.evicted)
		}
	}
	for _, i := range []int{0, 3, 4, 5} {
		if got, ok := readCached(t, s, d[i]); !ok || !bytes.Equal(got, data[i]) {
			t.Errorf("blob %d evicted or wrong", i)
		}
	}
	st := s.Stats()
	if st.Evictions != 2 || st.Objects != 4 || st.Size != 4*size {
		t.Errorf("stats: %+v", st)
	}
	if _, total := files(t, dir); total != 4*size {
		t.Errorf("%d bytes on disk, want %d", total, 4*size)
	}
}

// TestEvictWorkingSet: a working set twice the cache, used in random
// order, keeps the cache within its bound on disk after every fetch.
func TestEvictWorkingSet(t *testing.T) {
	const size, cached = 64 << 10, 8
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxBytes: cached * size})
	var d [2 * cached]string
	var data [2 * cached][]byte
	for i := range d {
		data[i], d[i] = testBlob(size, uint64(100+i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		for _, i := range rng.Perm(len(d)) {
			put(t, s, data[i], d[i])
			if st := s.Stats(); st.Size > cached*size || st.Objects > cached {
				t.Fatalf("over the bound: %+v", st)
			}
			if _, total := files(t, dir); total > cached*size {
				t.Fatalf("%d bytes on disk, bound %d", total, cached*size)
			}
		}
	}
	if st := s.Stats(); st.Evictions == 0 || st.Hits == 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestEvictSkipsOpenFiles: a file being read is not evicted, even when
// that leaves the cache over its bound for a while; it is evicted in
// its turn once closed.
func TestEvictSkipsOpenFiles(t *testing.T) {
	const size = 10 << 10
	clk := newClock()
	dir := t.TempDir()
	s := openStore(t, dir, Options{MaxBytes: 2 * size, Now: clk.Now})
	var d [4]string
	var data [4][]byte
	for i := range d {
		data[i], d[i] = testBlob(size, uint64(120+i))
	}
	get := func(i int) *Entry {
		t.Helper()
		ent, ok, err := s.Get(d[i])
		if err != nil || !ok {
			t.Fatalf("Get %d: %v, %v", i, ok, err)
		}
		clk.Advance(time.Second)
		return ent
	}
	put(t, s, data[0], d[0])
	put(t, s, data[1], d[1])
	clk.Advance(time.Second)
	e0, e1 := get(0), get(1) // both pinned, the cache is full

	// 2 arrives while a reader still reads it: nothing can go.
	r, err := s.Fetch(t.Context(), d[2], size, newUpstream(data[2]).fetch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data[2]) {
		t.Fatalf("read 2: %d bytes, %v", len(got), err)
	}
	waitIdle(t, s)
	if st := s.Stats(); st.Size != 3*size || st.Evictions != 0 {
		t.Errorf("with every file open: %+v", st)
	}
	if err := s.Remove(d[0]); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove of an open file: %v", err)
	}
	for i, e := range []*Entry{e0, e1} {
		if got, err := io.ReadAll(e.File()); err != nil || !bytes.Equal(got, data[i]) {
			t.Errorf("open file %d: %d bytes, %v", i, len(got), err)
		}
	}
	// Closing 0, the least recently used, evicts it and restores the
	// bound.
	e0.Close()
	if st := s.Stats(); st.Size != 2*size || st.Evictions != 1 {
		t.Errorf("after closing 0: %+v", st)
	}
	if _, err := os.Stat(fileOf(dir, d[0])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("closed file not evicted: %v", err)
	}
	e1.Close()
	r.Close()
	// 1 is now the least recently used: the next blob evicts it.
	put(t, s, data[3], d[3])
	if _, ok := readCached(t, s, d[1]); ok {
		t.Error("1 not evicted after it was closed")
	}
	for _, i := range []int{2, 3} {
		if got, ok := readCached(t, s, d[i]); !ok || !bytes.Equal(got, data[i]) {
			t.Errorf("blob %d missing", i)
		}
	}
	if _, total := files(t, dir); total != 2*size {
		t.Errorf("%d bytes on disk, want %d", total, 2*size)
	}
}
