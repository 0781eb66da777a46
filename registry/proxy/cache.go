package proxy

import (
	"container/list"
	"sync"
)

// manifestCache keeps verified manifest bytes by digest, bounded in bytes
// (least recently used first out). Entries are immutable: a digest names
// its bytes.
type manifestCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type cachedManifest struct {
	digest    string
	mediaType string
	body      []byte
}

func newManifestCache(max int64) *manifestCache {
	return &manifestCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *manifestCache) get(digest string) (cachedManifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[digest]
	if !ok {
		return cachedManifest{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(cachedManifest), true
}

func (c *manifestCache) put(m cachedManifest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[m.digest]; ok || int64(len(m.body)) > c.max {
		return
	}
	c.items[m.digest] = c.ll.PushFront(m)
	c.size += int64(len(m.body))
	for c.size > c.max {
		e := c.ll.Back()
		old := e.Value.(cachedManifest)
		c.ll.Remove(e)
		delete(c.items, old.digest)
		c.size -= int64(len(old.body))
	}
}

// allowedSet remembers, per GUN, the digests (child manifests, blobs)
// reachable from verified manifests the proxy served. Bounded: when full
// it is cleared, and misses are recomputed from the signed targets.
type allowedSet struct {
	mu  sync.Mutex
	max int
	n   int
	m   map[string]map[string]bool
}

func newAllowedSet(max int) *allowedSet {
	return &allowedSet{max: max, m: map[string]map[string]bool{}}
}

func (a *allowedSet) add(gun string, digests ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n+len(digests) > a.max {
		a.m, a.n = map[string]map[string]bool{}, 0
	}
	s := a.m[gun]
	if s == nil {
		s = map[string]bool{}
		a.m[gun] = s
	}
	for _, d := range digests {
		if !s[d] {
			s[d] = true
			a.n++
		}
	}
}

func (a *allowedSet) has(gun, digest string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[gun][digest]
}
