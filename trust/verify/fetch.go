package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// HTTPFetcher fetches a repository's metadata from a Notary v1 trust
// server: GET <Server>/v2/<GUN>/_trust/tuf/<name>.
type HTTPFetcher struct {
	Server string
	GUN    string
	// Client sends the requests; nil uses http.DefaultClient.
	Client *http.Client
}

// Fetch implements Fetcher.
func (h HTTPFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	url := strings.TrimSuffix(h.Server, "/") + "/v2/" + h.GUN + "/_trust/tuf/" + name
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", name, resp.Status)
	case resp.ContentLength > max:
		return nil, &TooLargeError{Name: name, Max: max}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: name, Max: max}
	}
	return b, nil
}
