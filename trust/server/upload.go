package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
)

// upload is one file of a multipart request: its name (the part's
// filename without ".json": "targets/releases", "3.root") and the role
// and version it holds.
type upload struct {
	name string
	storage.MetaUpdate
}

// partNamer maps a part's name to the role it must hold and the version
// the name claims (0 when the name claims none).
type partNamer func(name string) (data.RoleName, int, error)

// roleName accepts the names of a publish: "<role>".
func roleName(name string) (data.RoleName, int, error) {
	if err := validRoleName(name); err != nil {
		return "", 0, err
	}
	return data.RoleName(name), 0, nil
}

var rootHistoryRe = regexp.MustCompile(`^([1-9][0-9]{0,9})\.root$`)

// importName accepts the names of an import: "<role>", or "<N>.root" for
// an older root version.
func importName(name string) (data.RoleName, int, error) {
	if m := rootHistoryRe.FindStringSubmatch(name); m != nil {
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return "", 0, fmt.Errorf("root version in %q: %w", name, err)
		}
		return data.CanonicalRootRole, v, nil
	}
	return roleName(name)
}

// readUpdate parses the multipart/form-data body of a publish.
func (s *Server) readUpdate(r *http.Request) ([]storage.MetaUpdate, error) {
	parts, err := s.readParts(r, "update", s.limits.MaxParts, "--max-parts", roleName)
	if err != nil {
		return nil, err
	}
	// An update with no files is what the notary client sends when
	// nothing changed; like notary-server, the server then signs a new
	// snapshot (if it holds the key) and timestamp.
	updates := make([]storage.MetaUpdate, len(parts))
	for i, p := range parts {
		updates[i] = p.MetaUpdate
	}
	return updates, nil
}

// readParts parses a multipart/form-data body of metadata files, at most
// maxParts of them (named by the flag limitFlag). It reads each part's
// filename from the raw Content-Disposition header, because
// multipart.Part.FileName strips directories since Go 1.17 and would turn
// "targets/releases.json" into "releases.json" (the bug that makes
// notary-server refuse every delegation). what names the request in
// errors ("update", "import").
func (s *Server) readParts(r *http.Request, what string, maxParts int, limitFlag string, namer partNamer) ([]upload, error) {
	if r.ContentLength > s.limits.MaxRequestBytes {
		return nil, errTooLarge.WithMessage(fmt.Sprintf("%s is %d bytes, over the %d byte limit: send fewer files at once or raise --max-request-bytes", what, r.ContentLength, s.limits.MaxRequestBytes))
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, errMalformedUpload.WithMessage(what + " must be multipart/form-data with a boundary")
	}
	body := http.MaxBytesReader(nil, r.Body, s.limits.MaxRequestBytes)
	mr := multipart.NewReader(body, params["boundary"])
	var parts []upload
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, s.bodyError(what, err)
		}
		if len(parts) >= maxParts {
			return nil, errMalformedUpload.WithMessage(fmt.Sprintf("%s has more than %d files: send fewer or raise %s", what, maxParts, limitFlag))
		}
		u, err := s.readPart(part, what, namer)
		if err != nil {
			return nil, err
		}
		if seen[u.name] {
			return nil, errMalformedUpload.WithMessage(fmt.Sprintf("%s has %s.json twice", what, u.name))
		}
		seen[u.name] = true
		parts = append(parts, u)
	}
	return parts, nil
}

// bodyError maps an error reading the request body to the answer: over
// the size limit, over the bytes-in-flight budget, or malformed.
func (s *Server) bodyError(what string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge.WithMessage(fmt.Sprintf("%s is over the %d byte limit: send fewer files at once or raise --max-request-bytes", what, s.limits.MaxRequestBytes))
	}
	if errors.Is(err, errBudgetSpent) {
		return errBudgetSpent
	}
	return errMalformedUpload.WithMessage(fmt.Sprintf("read multipart %s: %v", what, err))
}

func (s *Server) readPart(part *multipart.Part, what string, namer partNamer) (upload, error) {
	defer part.Close()
	_, cd, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil || cd["filename"] == "" {
		return upload{}, errNoFilename.WithMessage(what + " part has no filename: name each part <role>.json")
	}
	// The notary client names parts "<role>"; the API documents "<role>.json".
	name := strings.TrimSuffix(cd["filename"], ".json")
	role, claimed, err := namer(name)
	if err != nil {
		return upload{}, errInvalidRole.WithMessage(err.Error())
	}
	raw, err := io.ReadAll(io.LimitReader(part, s.limits.MaxMetadataBytes+1))
	if err != nil {
		return upload{}, s.bodyError(what, err)
	}
	if int64(len(raw)) > s.limits.MaxMetadataBytes {
		return upload{}, errTooLarge.WithMessage(fmt.Sprintf("%s.json is over the %d byte metadata limit: raise --max-metadata-bytes", name, s.limits.MaxMetadataBytes))
	}
	var meta data.SignedMeta
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&meta); err != nil {
		return upload{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s.json is not valid TUF JSON: %v", name, err))
	}
	if dec.More() {
		return upload{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s.json has data after its JSON object", name))
	}
	if meta.Signed.Version < 1 {
		return upload{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s.json has version %d: versions start at 1", name, meta.Signed.Version))
	}
	if claimed != 0 && meta.Signed.Version != claimed {
		return upload{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s.json has version %d: name it %d.%s.json", name, meta.Signed.Version, meta.Signed.Version, role))
	}
	return upload{name: name, MetaUpdate: storage.MetaUpdate{Role: role, Version: meta.Signed.Version, Data: raw}}, nil
}
