package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// ServerSink writes into a signet trust server through its import API
// (`signet server --allow-import`): one POST of a repository's files to
// /v2/<gun>/_trust/import, which the server verifies as a set and stores
// byte for byte in one transaction.
type ServerSink struct {
	// URL of the signet trust server.
	URL string
	// Auth reaches it (credentials with push access, CA bundle).
	Auth trust.TransportOptions

	mu   sync.Mutex
	open http.RoundTripper // set once the server proved to need no auth
}

// NewServerSink checks url and returns a sink writing to it.
func NewServerSink(url string, auth trust.TransportOptions) (*ServerSink, error) {
	if _, err := trust.CheckServerURL(url); err != nil {
		return nil, fmt.Errorf("--to: %w", err)
	}
	return &ServerSink{URL: strings.TrimSuffix(url, "/"), Auth: auth}, nil
}

func (s *ServerSink) String() string { return s.URL }

func (s *ServerSink) client(ctx context.Context, gun string) (*http.Client, error) {
	s.mu.Lock()
	rt := s.open
	s.mu.Unlock()
	if rt == nil {
		var err error
		if rt, err = trust.NewTransport(ctx, s.URL, gun, s.Auth, "push", "pull"); err != nil {
			return nil, err
		}
		if _, plain := rt.(*http.Transport); plain {
			s.mu.Lock()
			s.open = rt
			s.mu.Unlock()
		}
	}
	return &http.Client{Transport: rt, Timeout: 5 * time.Minute}, nil
}

// State implements Sink: the server's current root of gun, which the
// source must extend. The server enforces version order itself.
func (s *ServerSink) State(ctx context.Context, gun string) (*verify.State, error) {
	c, err := s.client(ctx, gun)
	if err != nil {
		return nil, err
	}
	root, err := verify.HTTPFetcher{Server: s.URL, GUN: gun, Client: c}.Fetch(ctx, "root.json", verify.MaxRootBytes)
	if errors.Is(err, verify.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the root of %s on %s: %w", gun, s.URL, err)
	}
	return &verify.State{Root: root}, nil
}

// RootVersion implements Sink.
func (s *ServerSink) RootVersion(ctx context.Context, gun string, v int) ([]byte, error) {
	c, err := s.client(ctx, gun)
	if err != nil {
		return nil, err
	}
	name := strconv.Itoa(v) + ".root.json"
	root, err := verify.HTTPFetcher{Server: s.URL, GUN: gun, Client: c}.Fetch(ctx, name, verify.MaxRootBytes)
	if errors.Is(err, verify.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of %s on %s: %w", name, gun, s.URL, err)
	}
	return root, nil
}

// importAnswer is the import API's answer.
type importAnswer struct {
	Stored         []File `json:"stored"`
	Unchanged      []File `json:"unchanged"`
	Skipped        []File `json:"skipped"`
	SnapshotSHA256 string `json:"snapshot_sha256"`
}

// Write implements Sink.
func (s *ServerSink) Write(ctx context.Context, gun string, files Files) (Written, error) {
	body, contentType, err := importBody(files)
	if err != nil {
		return Written{}, fmt.Errorf("import %s: %w", gun, err)
	}
	c, err := s.client(ctx, gun)
	if err != nil {
		return Written{}, err
	}
	url := s.URL + "/v2/" + gun + "/_trust/import"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Written{}, fmt.Errorf("import %s: %w", gun, err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return Written{}, fmt.Errorf("import %s into %s: %w", gun, s.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Written{}, fmt.Errorf("import %s into %s: read the answer: %w", gun, s.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Written{}, importError(s.URL, resp, raw)
	}
	var a importAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return Written{}, fmt.Errorf("import %s into %s: the answer is not the import API's JSON: %v", gun, s.URL, err)
	}
	return Written{Stored: a.Stored, Unchanged: a.Unchanged, Skipped: a.Skipped}, nil
}

// importBody is the multipart/form-data body: one part per file, named
// <role>.json (delegations keep their folder: targets/releases.json) or
// <N>.root.json for older roots. The Content-Disposition is written by
// hand: mime/multipart would not strip the folder, but says nothing of
// it either, and the server reads the raw header.
func importBody(files Files) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part := func(filename string, b []byte) error {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="files"; filename="`+filename+`"`)
		h.Set("Content-Type", "application/json")
		p, err := w.CreatePart(h)
		if err != nil {
			return err
		}
		_, err = p.Write(b)
		return err
	}
	for _, v := range sortedVersions(files.Roots) {
		if err := part(strconv.Itoa(v)+".root.json", files.Roots[v]); err != nil {
			return nil, "", err
		}
	}
	for _, role := range writeOrder(files.Roles) {
		if err := validRole(role); err != nil {
			return nil, "", err
		}
		if err := part(role+".json", files.Roles[role]); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}

// ImportError is the destination's refusal of an import.
type ImportError struct {
	Server     string
	StatusCode int
	Status     string
	Code       string
	Message    string
}

func (e *ImportError) Error() string {
	switch {
	case e.StatusCode == http.StatusNotFound && (e.Code == "" || e.Code == "SIGNET_IMPORT_DISABLED"):
		return fmt.Sprintf("%s takes no imports (404 %s): it must be a signet trust server started with --allow-import", e.Server, e.Code)
	case e.StatusCode == http.StatusConflict:
		return fmt.Sprintf("%s holds different data (409 %s): %s", e.Server, e.Code, e.Message)
	case e.Message != "":
		return fmt.Sprintf("%s refused the import (%s %s): %s", e.Server, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s refused the import: %s", e.Server, e.Status)
}

// Fatal reports whether the refusal holds for every repository (no
// import API, no access), so that a run stops instead of reading the
// source for nothing.
func (e *ImportError) Fatal() bool {
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed:
		return e.Code != "SIGNET_GUN_NOT_ALLOWED"
	case http.StatusNotFound:
		return e.Code == "" || e.Code == "SIGNET_IMPORT_DISABLED"
	}
	return false
}

func importError(server string, resp *http.Response, raw []byte) error {
	e := &ImportError{Server: server, StatusCode: resp.StatusCode, Status: resp.Status}
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(raw, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = oneLine(body.Errors[0].Code, 64), oneLine(body.Errors[0].Message, 300)
	}
	return e
}

// oneLine keeps a server's text printable and short.
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}
