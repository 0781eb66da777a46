package server

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func testFile(body string) *metaFile {
	return &metaFile{body: []byte(body), length: fmt.Sprint(len(body)), current: true}
}

func TestReadCacheLookups(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	key := cacheKey{gun: "registry.example.com/a", role: "timestamp"}
	tests := []struct {
		name       string
		freshUntil time.Time
		changes    int64 // at lookup; kept at 7
		at         time.Time
		want       string
	}{
		{"same counter", time.Time{}, 7, now, cacheHit},
		{"same counter, fresh", now.Add(time.Second), 7, now, cacheHit},
		{"same counter, at the expiry instant", now, 7, now, cacheHit},
		{"same counter, past expiry", now.Add(-time.Nanosecond), 7, now, cacheExpired},
		{"repository changed since", time.Time{}, 8, now, cacheStale},
		{"counter lower (restored database)", time.Time{}, 6, now, cacheStale},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newReadCache(1 << 20)
			f := testFile("ts")
			f.freshUntil = tc.freshUntil
			c.put(key, 7, f)
			got, result := c.get(key, tc.changes, tc.at)
			if result != tc.want || (got != nil) != (tc.want == cacheHit) {
				t.Fatalf("get = %v, %s; want %s", got, result, tc.want)
			}
			if tc.want != cacheHit {
				// A stale or expired entry is dropped.
				if _, result := c.get(key, 7, now.Add(-time.Hour)); result != cacheMiss {
					t.Fatalf("after %s: %s, want %s", tc.want, result, cacheMiss)
				}
			}
		})
	}
	if _, result := newReadCache(1<<20).get(key, 0, now); result != cacheMiss {
		t.Fatalf("empty cache: %s, want miss", result)
	}
}

// TestReadCacheBounded fills the cache past its cap: it stays within the
// cap, drops the least recently used first, and keeps no answer larger
// than an eighth of the cap.
func TestReadCacheBounded(t *testing.T) {
	const maxBytes = 16 << 10
	c := newReadCache(maxBytes)
	body := string(bytes.Repeat([]byte("x"), 700))
	key := func(i int) cacheKey {
		return cacheKey{gun: fmt.Sprintf("registry.example.com/r%d", i), role: "targets"}
	}
	for i := 0; i < 100; i++ {
		c.put(key(i), 1, testFile(body))
		// Key 0 is read after every put: always the most recently used.
		if _, result := c.get(key(0), 1, time.Now()); result != cacheHit {
			t.Fatalf("after put %d: the most recently used entry is gone (%s)", i, result)
		}
		if b, _, _ := c.stats(); b > maxBytes {
			t.Fatalf("after put %d: %d bytes, over the cap %d", i, b, maxBytes)
		}
	}
	b, n, evicted := c.stats()
	if n < 10 || evicted != 100-n {
		t.Fatalf("%d entries, %d bytes, %d evicted: want about %d entries and the rest evicted", n, b, evicted, maxBytes/(700+readCacheEntryOverhead))
	}
	if _, result := c.get(key(1), 1, time.Now()); result != cacheMiss {
		t.Fatalf("the least recently used entry was kept")
	}
	if _, result := c.get(key(99), 1, time.Now()); result != cacheHit {
		t.Fatalf("the newest entry was dropped: %s", result)
	}

	big := cacheKey{gun: "registry.example.com/big", role: "targets"}
	c.put(big, 1, testFile(string(bytes.Repeat([]byte("x"), maxBytes/8))))
	if _, result := c.get(big, 1, time.Now()); result != cacheMiss {
		t.Fatalf("an answer over an eighth of the cap was kept")
	}
	if _, n2, _ := c.stats(); n2 != n {
		t.Fatalf("an oversized answer changed the entries from %d to %d", n, n2)
	}
}

// TestReadCacheKeepsNewer: a slow load tagged with an older counter does
// not replace an answer loaded at a newer one.
func TestReadCacheKeepsNewer(t *testing.T) {
	c := newReadCache(1 << 20)
	key := cacheKey{gun: "registry.example.com/a", role: "targets"}
	c.put(key, 5, testFile("new"))
	c.put(key, 4, testFile("old"))
	if f, result := c.get(key, 5, time.Now()); result != cacheHit || string(f.body) != "new" {
		t.Fatalf("get = %v %s, want the answer of counter 5", f, result)
	}
	c.put(key, 6, testFile("newer"))
	if f, result := c.get(key, 6, time.Now()); result != cacheHit || string(f.body) != "newer" {
		t.Fatalf("get = %v %s, want the answer of counter 6", f, result)
	}
	if b, n, _ := c.stats(); n != 1 || b != int64(len("newer")+1+len(key.gun)+len(key.role))+readCacheEntryOverhead {
		t.Fatalf("%d entries of %d bytes after replacing one", n, b)
	}
}

func TestReadCacheDropGUN(t *testing.T) {
	c := newReadCache(1 << 20)
	a, b := "registry.example.com/a", "registry.example.com/b"
	for _, gun := range []string{a, b} {
		for _, k := range []cacheKey{{gun: gun, role: "timestamp"}, {gun: gun, role: "root", version: 1}, {gun: gun, role: "snapshot", checksum: "ab"}} {
			c.put(k, 1, testFile(gun))
		}
	}
	c.dropGUN(a)
	if _, n, _ := c.stats(); n != 3 {
		t.Fatalf("%d entries after dropping one repository of two, want 3", n)
	}
	if _, result := c.get(cacheKey{gun: a, role: "timestamp"}, 1, time.Now()); result != cacheMiss {
		t.Fatalf("dropped repository still served: %s", result)
	}
	if _, result := c.get(cacheKey{gun: b, role: "root", version: 1}, 1, time.Now()); result != cacheHit {
		t.Fatalf("other repository dropped too: %s", result)
	}
	c.dropGUN("registry.example.com/none")
	var off *readCache
	off.dropGUN(a) // a nil cache (turned off) holds nothing
	if bts, n, _ := off.stats(); bts != 0 || n != 0 {
		t.Fatalf("nil cache stats %d %d", bts, n)
	}
}
