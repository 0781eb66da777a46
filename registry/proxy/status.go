package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/trust/verify"
)

// staleRepo is one repository served from older verified trust data, as
// /_signet/status shows it.
type staleRepo struct {
	Repository string    `json:"repository"`
	Source     string    `json:"source"`
	Since      time.Time `json:"since"`
	// Rejected: the trust server answered with data that failed
	// verification; otherwise it could not be reached.
	Rejected bool      `json:"rejected"`
	Error    string    `json:"error"`
	Expires  time.Time `json:"expires"`
}

// status is the body of /_signet/status.
type status struct {
	Stale []staleRepo  `json:"stale"`
	Cache *cacheStatus `json:"cache,omitempty"`
}

// cacheStatus is the blob cache, as /_signet/status shows it (absent
// without a cache): sizes now, and counters since the start.
type cacheStatus struct {
	SizeBytes       int64                  `json:"size_bytes"`
	Objects         int                    `json:"objects"`
	Hits            int64                  `json:"hits"`
	Misses          int64                  `json:"misses"`
	UpstreamFetches int64                  `json:"upstream_fetches"`
	JoinedFetches   int64                  `json:"joined_fetches"`
	Shared          *blobcache.SharedStats `json:"shared,omitempty"`
	FetchesInFlight int                    `json:"fetches_in_flight"`
	Mismatches      int64                  `json:"mismatches"`
	Corrupt         int64                  `json:"corrupt"`
	Evictions       int64                  `json:"evictions"`
}

// serveStatus lists the repositories whose latest trust refresh failed
// and which are served from older verified data until it expires, and
// the blob cache's figures.
func (p *Proxy) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := status{Stale: []staleRepo{}}
	for _, s := range p.refresher.Stale() {
		st.Stale = append(st.Stale, staleRepo{Repository: s.GUN, Source: s.Key, Since: s.Since.UTC(),
			Rejected: s.Rejected, Error: s.Err.Error(), Expires: s.Expires.UTC()})
	}
	if p.store != nil {
		cs := p.store.Stats()
		st.Cache = &cacheStatus{SizeBytes: cs.Size, Objects: cs.Objects, Hits: cs.Hits, Misses: cs.Misses,
			UpstreamFetches: cs.UpstreamFetches, JoinedFetches: cs.Joins, FetchesInFlight: cs.InFlight,
			Mismatches: cs.Mismatches, Corrupt: cs.Corrupt, Evictions: cs.Evictions}
		if p.store.HasShared() {
			st.Cache.Shared = &cs.Shared
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(st) //nolint:errcheck // client went away
}

// refreshResult names a refresh's outcome for metrics: ok, rejected (the
// data failed verification) or unreachable.
func refreshResult(err error) string {
	var ve *verify.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ve):
		return "rejected"
	}
	return "unreachable"
}
