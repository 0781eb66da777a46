package server

import (
	"container/list"
	"sync"
	"time"
)

// DefaultReadCacheBytes is the memory the read cache may use when
// Options.ReadCacheBytes is zero.
const DefaultReadCacheBytes = 64 << 20

// readCacheEntryOverhead is what an entry costs beside its key and body
// (list element, map slot, strings' headers), counted against the cap.
const readCacheEntryOverhead = 256

// readCache keeps metadata answers in memory, least recently used out
// first, within a cap on their bytes. An entry is one answer of GET
// /v2/<gun>/_trust/tuf/<file>.json (current, by version or by checksum,
// or "not found"), tagged with the repository's change counter read
// before it was loaded from the store (changecount.go). It is served
// again only for the same counter and, for the server-signed timestamp
// and snapshot, until the earlier of their expiries, past which the store
// path re-signs them.
//
// The cap counts bodies, keys and a fixed overhead per entry; an answer
// larger than an eighth of the cap is not kept, so one huge targets file
// cannot empty the cache.
type readCache struct {
	max int64

	mu      sync.Mutex
	bytes   int64
	lru     *list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
	byGUN   map[string]map[cacheKey]struct{}
	evicted int64
}

// cacheKey names one metadata answer: a current role (version 0, no
// checksum), one version of it, or the version with a checksum.
type cacheKey struct {
	gun, role string
	version   int
	checksum  string
}

func keyOf(rt route) cacheKey {
	return cacheKey{gun: rt.gun, role: rt.role, version: rt.version, checksum: rt.checksum}
}

// metaFile is one metadata answer, as served from the store or the cache.
type metaFile struct {
	body     []byte
	modified string // Last-Modified, "" for none
	length   string // Content-Length
	current  bool   // Cache-Control: no-store, else immutable
	notFound bool   // answered 404
	// freshUntil, when not zero, is the instant after which the store
	// path would re-sign this timestamp or snapshot.
	freshUntil time.Time
}

type cacheEntry struct {
	key     cacheKey
	changes int64
	file    *metaFile
	size    int64
}

// Lookup results, also the values of the metric's result label.
const (
	cacheHit     = "hit"     // served from memory
	cacheMiss    = "miss"    // not in memory
	cacheStale   = "stale"   // the repository changed since it was kept
	cacheExpired = "expired" // a server-signed file past its expiry
	cacheError   = "error"   // the change counter could not be read
)

func newReadCache(maxBytes int64) *readCache {
	return &readCache{
		max:     maxBytes,
		lru:     list.New(),
		entries: map[cacheKey]*list.Element{},
		byGUN:   map[string]map[cacheKey]struct{}{},
	}
}

// get returns the answer kept for key if it was loaded at change counter
// changes and is fresh at now, with the lookup's result.
func (c *readCache) get(key cacheKey, changes int64, now time.Time) (*metaFile, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, cacheMiss
	}
	e := el.Value.(*cacheEntry)
	switch {
	case e.changes != changes:
		c.remove(el)
		return nil, cacheStale
	case !e.file.freshUntil.IsZero() && now.After(e.file.freshUntil):
		c.remove(el)
		return nil, cacheExpired
	}
	c.lru.MoveToFront(el)
	return e.file, cacheHit
}

// put keeps f as the answer for key, loaded at change counter changes,
// unless an answer loaded at a later counter is kept already.
func (c *readCache) put(key cacheKey, changes int64, f *metaFile) {
	size := int64(len(f.body)+len(f.modified)+len(f.length)+len(key.gun)+len(key.role)+len(key.checksum)) + readCacheEntryOverhead
	if size > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		if el.Value.(*cacheEntry).changes > changes {
			return
		}
		c.remove(el)
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, changes: changes, file: f, size: size})
	if c.byGUN[key.gun] == nil {
		c.byGUN[key.gun] = map[cacheKey]struct{}{}
	}
	c.byGUN[key.gun][key] = struct{}{}
	c.bytes += size
	for c.bytes > c.max {
		c.remove(c.lru.Back())
		c.evicted++
	}
}

// dropGUN forgets every answer kept for gun; the server calls it after
// it changed gun (other replicas notice by the change counter). A nil
// cache holds nothing.
func (c *readCache) dropGUN(gun string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.byGUN[gun] {
		c.remove(c.entries[key])
	}
}

// remove forgets one entry; c.mu is held.
func (c *readCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	if keys := c.byGUN[e.key.gun]; keys != nil {
		delete(keys, e.key)
		if len(keys) == 0 {
			delete(c.byGUN, e.key.gun)
		}
	}
	c.bytes -= e.size
}

// stats returns the bytes and entries kept and the entries evicted so far.
func (c *readCache) stats() (bytes, entries, evicted int64) {
	if c == nil {
		return 0, 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, int64(len(c.entries)), c.evicted
}
