package blobcache

// pinLocked marks e in use and most recently used, and reports whether
// its modification time should be brought up to date.
func (s *Store) pinLocked(e *entry) (touch bool) {
	e.refs++
	now := s.now()
	e.lastUse = now
	s.lru.MoveToFront(e.elem)
	if now.Sub(e.touched) >= touchEvery {
		e.touched = now
		return true
	}
	return false
}

// unpin releases a pin of e taken by pinLocked or at commit, and evicts
// if e was holding the size over the bound.
func (s *Store) unpin(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unpinLocked(e)
}

func (s *Store) unpinLocked(e *entry) {
	e.refs--
	if e.refs == 0 && s.size > s.max {
		s.evictLocked()
	}
}

// evictLocked deletes least recently used files that are not in use
// until the size is within the bound, or only pinned files are left.
func (s *Store) evictLocked() {
	el := s.lru.Back()
	for s.size > s.max && el != nil {
		e := el.Value.(*entry)
		el = el.Prev()
		if e.refs > 0 {
			continue
		}
		if err := s.dropLocked(e); err != nil {
			// The file stays on disk but leaves the index: it is found
			// again at the next Open.
			s.log.Warn("blob cache: evict", "digest", e.digest, "err", err)
		}
		s.stats.evictions.Add(1)
		s.log.Debug("blob cache: evicted", "digest", e.digest, "size", e.size, "last_use", e.lastUse)
	}
}
