package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

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
	Stale []staleRepo `json:"stale"`
}

// serveStatus lists the repositories whose latest trust refresh failed
// and which are served from older verified data until it expires.
func (p *Proxy) serveStatus(w http.ResponseWriter, _ *http.Request) {
	st := status{Stale: []staleRepo{}}
	for _, s := range p.refresher.Stale() {
		st.Stale = append(st.Stale, staleRepo{Repository: s.GUN, Source: s.Key, Since: s.Since.UTC(),
			Rejected: s.Rejected, Error: s.Err.Error(), Expires: s.Expires.UTC()})
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
