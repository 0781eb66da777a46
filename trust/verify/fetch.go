package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"unicode"
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
		return nil, newStatusError(name, resp)
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

// StatusError is a trust server's answer other than 200 or 404, with the
// first error code and message of its JSON body when it has them.
type StatusError struct {
	Name       string // metadata file asked for
	StatusCode int
	Status     string // "400 Bad Request"
	Code       string // NAME_INVALID, SIGNET_INVALID_NAME, ...
	Message    string
}

func (e *StatusError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("GET %s: %s", e.Name, e.Status)
	}
	return fmt.Sprintf("GET %s: %s (%s: %s)", e.Name, e.Status, e.Code, e.Message)
}

// InvalidName reports whether the server refused the repository name.
func (e *StatusError) InvalidName() bool {
	return e.Code == "NAME_INVALID" || e.Code == "SIGNET_INVALID_NAME"
}

func newStatusError(name string, resp *http.Response) *StatusError {
	e := &StatusError{Name: name, StatusCode: resp.StatusCode, Status: resp.Status}
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = oneLine(body.Errors[0].Code, 64), oneLine(body.Errors[0].Message, 200)
	}
	return e
}

// oneLine keeps a server's text printable and short for one-line errors.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// ReadFile reads metadata from a file (a trust dir's cache, an archive),
// at most max bytes: a longer file is a *TooLargeError, never read whole.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: path, Max: max}
	}
	return b, nil
}
