package blobcache

import "sync/atomic"

// Stats is a snapshot of a Store's counters (since Open) and gauges, for
// metrics. The counters only grow.
type Stats struct {
	// Hits are lookups (Get, Serve, Fetch) answered from a cached file.
	Hits int64
	// Misses are Get and Serve lookups that found no usable file
	// (corrupt files included). Fetch on a miss counts in
	// UpstreamFetches or Joins instead.
	Misses int64
	// UpstreamFetches are fetches that called their FetchFunc (not
	// those the Shared store answered, nor Keep); Joins are Fetch calls
	// that shared a fetch already in progress.
	UpstreamFetches int64
	Joins           int64
	// FetchErrors are upstream fetches that failed (upstream errors,
	// cancellations, local I/O errors); Mismatches are fetches whose
	// bytes did not match the digest or the expected size. A mismatch
	// is not also a FetchError.
	FetchErrors int64
	Mismatches  int64
	// Corrupt are cached files found truncated or changed, and deleted.
	Corrupt int64
	// Evictions are files deleted to stay within MaxBytes.
	Evictions int64
	// BytesServed are bytes sent from cached files (through Serve and
	// Readers on a hit); BytesStreamed are bytes Readers delivered from
	// fetches in progress; BytesFetched are bytes read from upstream.
	BytesServed   int64
	BytesStreamed int64
	BytesFetched  int64
	// Size and Objects are the cached files now; InFlight the upstream
	// fetches in progress (their goroutines, until committed or cleaned
	// up).
	Size     int64
	Objects  int
	InFlight int
	// Shared counts the use of Options.Shared; zero without one.
	Shared SharedStats
}

// SharedStats count the shared store's use: Hits and Misses are lookups
// before a fetch; Puts are blobs copied to it; Errors are lookups and
// copies that failed (the fetch then went to the source); Mismatches
// are shared objects found not to match their digest, and deleted.
type SharedStats struct {
	Hits       int64 `json:"hits"`
	Misses     int64 `json:"misses"`
	Puts       int64 `json:"puts"`
	Errors     int64 `json:"errors"`
	Mismatches int64 `json:"mismatches"`
}

type counters struct {
	sharedHits, sharedMisses, sharedPuts, sharedErrors, sharedMismatches      atomic.Int64
	hits, misses, fetches, joins, fetchErrors, mismatches, corrupt, evictions atomic.Int64
	bytesServed, bytesStreamed, bytesFetched, inFlight                        atomic.Int64
}

// Stats returns the current counters and sizes.
func (s *Store) Stats() Stats {
	st := Stats{
		Hits:            s.stats.hits.Load(),
		Misses:          s.stats.misses.Load(),
		UpstreamFetches: s.stats.fetches.Load(),
		Joins:           s.stats.joins.Load(),
		FetchErrors:     s.stats.fetchErrors.Load(),
		Mismatches:      s.stats.mismatches.Load(),
		Corrupt:         s.stats.corrupt.Load(),
		Evictions:       s.stats.evictions.Load(),
		BytesServed:     s.stats.bytesServed.Load(),
		BytesStreamed:   s.stats.bytesStreamed.Load(),
		BytesFetched:    s.stats.bytesFetched.Load(),
		InFlight:        int(s.stats.inFlight.Load()),
		Shared: SharedStats{
			Hits:       s.stats.sharedHits.Load(),
			Misses:     s.stats.sharedMisses.Load(),
			Puts:       s.stats.sharedPuts.Load(),
			Errors:     s.stats.sharedErrors.Load(),
			Mismatches: s.stats.sharedMismatches.Load(),
		},
	}
	s.mu.Lock()
	st.Size, st.Objects = s.size, len(s.entries)
	s.mu.Unlock()
	return st
}
