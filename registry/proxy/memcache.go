package proxy

import (
	"container/list"
	"sync"
)

// memCache keeps verified bytes in memory by digest, bounded in bytes
// (least recently used first out): manifests (parsed once) and, with a
// blob cache, small blobs. Entries are immutable: a digest names its
// bytes. Like the blob cache, it only keeps: what it holds is served
// only after the decision allowed it.
type memCache[V any] struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
	bytes func(V) int64
}

type memItem[V any] struct {
	digest string
	v      V
	n      int64
}

func newMemCache[V any](max int64, bytes func(V) int64) *memCache[V] {
	return &memCache[V]{max: max, ll: list.New(), items: map[string]*list.Element{}, bytes: bytes}
}

func (c *memCache[V]) get(digest string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[digest]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(memItem[V]).v, true
}

func (c *memCache[V]) put(digest string, v V) {
	n := c.bytes(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[digest]; ok || n > c.max {
		return
	}
	c.items[digest] = c.ll.PushFront(memItem[V]{digest, v, n})
	c.size += n
	for c.size > c.max {
		e := c.ll.Back()
		old := e.Value.(memItem[V])
		c.ll.Remove(e)
		delete(c.items, old.digest)
		c.size -= old.n
	}
}
