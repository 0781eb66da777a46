package proxy

import "sync"

// allowedSet is what the proxy has learned from the verified trust data:
// it holds digests, never content (the verified trust data itself is
// cached by trust/verify's Refresher; manifest bytes by memCache,
// memcache.go). It remembers, per GUN, the digests (child manifests, blobs)
// reachable from verified manifests the proxy served, and for which
// trust data version a full walk of the signed manifests was done (so a
// stream of unknown digests cannot make the proxy walk again and again).
// Bounded: when full it is cleared, and misses are recomputed from the
// signed targets.
type allowedSet struct {
	mu     sync.Mutex
	max    int
	n      int
	m      map[string]map[string]bool
	walked map[string]int // gun -> timestamp version fully walked
	// version is the trust data version the digests of a gun were
	// learned from (see observe).
	version map[string]int
}

func newAllowedSet(max int) *allowedSet {
	return &allowedSet{max: max, m: map[string]map[string]bool{}, walked: map[string]int{}, version: map[string]int{}}
}

// observe records the trust data version a request was decided with.
// When a repository's trust data changes (a new timestamp version: a
// tag signed, revoked, a signer removed), what was learned from the
// older data is forgotten, so a digest is served only while the current
// trust data still reaches it.
func (a *allowedSet) observe(gun string, version int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.version[gun]; ok && v == version {
		return
	}
	a.version[gun] = version
	a.n -= len(a.m[gun])
	delete(a.m, gun)
	delete(a.walked, gun)
}

// markWalked records a complete walk of gun's signed manifests at a
// trust data version.
func (a *allowedSet) markWalked(gun string, version int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.walked[gun] = version
}

// wasWalked reports whether gun's signed manifests were all walked at
// this trust data version (and nothing was forgotten since).
func (a *allowedSet) wasWalked(gun string, version int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.walked[gun]
	return ok && v == version
}

func (a *allowedSet) add(gun string, digests ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n+len(digests) > a.max {
		a.m, a.n, a.walked = map[string]map[string]bool{}, 0, map[string]int{}
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
