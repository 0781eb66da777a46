package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust/verify"
)

// importResponse answers an import: what was stored, what the server
// already held byte for byte, what it skipped because it holds newer
// data, the roles past expiry, and the imported snapshot's sha256.
type importResponse struct {
	Stored         []roleVersion `json:"stored"`
	Unchanged      []roleVersion `json:"unchanged"`
	Skipped        []roleVersion `json:"skipped"`
	Expired        []string      `json:"expired"`
	SnapshotSHA256 string        `json:"snapshot_sha256"`
}

// roleVersion names one metadata file; Reason says why it was skipped.
type roleVersion struct {
	Role    string `json:"role"`
	Version int    `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// reasonDestinationNewer is why an imported file is skipped: the server
// holds newer trust data for the repository (it was taken over, or a
// later import ran).
const reasonDestinationNewer = "destination newer"

func (s *Server) importDisabled(w http.ResponseWriter, _ *http.Request, rt route) {
	writeError(w, errImportDisabled.WithMessage(fmt.Sprintf("import of %s refused: this server does not take imports; start it with --allow-import", rt.gun)))
}

// importGUN stores a repository's trust data from another server as it
// is, after verifying it: POST /v2/<gun>/_trust/import, a multipart body
// with <role>.json for the current files and <N>.root.json for older
// root versions.
func (s *Server) importGUN(w http.ResponseWriter, r *http.Request, rt route) {
	gun := data.GUN(rt.gun)
	release, err := s.inflight.admit(r, s.limits.MaxRequestBytes)
	if err != nil {
		s.refuseBusyImport(w, rt.gun)
		return
	}
	defer release()
	parts, err := s.readParts(r, "import", s.limits.MaxImportParts, "--max-import-parts", importName)
	if errors.Is(err, errBudgetSpent) {
		s.refuseBusyImport(w, rt.gun)
		return
	}
	if err != nil {
		s.metrics.imports.WithLabelValues("invalid").Inc()
		s.log.Info("import refused", "gun", rt.gun, "err", err)
		writeError(w, err)
		return
	}
	unlock := s.lockGUN(rt.gun)
	defer unlock()
	set, err := s.verifyImport(r.Context(), gun, parts)
	if err != nil {
		var invalid *importInvalidError
		if errors.As(err, &invalid) {
			s.metrics.imports.WithLabelValues("invalid").Inc()
			s.log.Info("import invalid", "gun", rt.gun, "err", err)
			writeError(w, errInvalidUpdate.WithMessage(fmt.Sprintf("import of %s refused: %s", rt.gun, invalid.msg)))
			return
		}
		s.metrics.imports.WithLabelValues("error").Inc()
		s.log.Error("verify import", "gun", rt.gun, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("verifying the import of %s failed; retry later", rt.gun)))
		return
	}
	rep, err := s.store.importFiles(r.Context(), gun, set.files, set.anchor)
	if err != nil {
		var conflict *importConflictError
		if errors.As(err, &conflict) {
			s.metrics.imports.WithLabelValues("conflict").Inc()
			s.log.Info("import conflict", "gun", rt.gun, "err", err)
			writeError(w, errImportConflict.WithMessage(fmt.Sprintf("import of %s refused: %s", rt.gun, conflict.msg)))
			return
		}
		s.metrics.imports.WithLabelValues("error").Inc()
		s.log.Error("store import", "gun", rt.gun, "err", err)
		writeError(w, errUpdating.WithMessage(fmt.Sprintf("storing the import of %s failed; retry later", rt.gun)))
		return
	}
	s.cache.dropGUN(rt.gun)
	s.metrics.imports.WithLabelValues("ok").Inc()
	s.log.Info("imported", "gun", rt.gun, "stored", len(rep.stored), "unchanged", len(rep.unchanged),
		"skipped", len(rep.skipped), "expired", strings.Join(set.expired, ","))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(importResponse{ //nolint:errcheck // the client went away
		Stored:         rep.stored,
		Unchanged:      rep.unchanged,
		Skipped:        rep.skipped,
		Expired:        set.expired,
		SnapshotSHA256: hex.EncodeToString(set.snapshotSHA256),
	})
}

func (s *Server) refuseBusyImport(w http.ResponseWriter, gun string) {
	s.metrics.imports.WithLabelValues("busy").Inc()
	s.log.Warn("import refused: bytes in flight at the limit", "gun", gun, "limit", s.inflight.max)
	s.busyError(w)
}

// importInvalidError is an import that fails verification; msg names the
// file or role and the reason.
type importInvalidError struct{ msg string }

func (e *importInvalidError) Error() string { return e.msg }

func invalidImport(format string, args ...any) error {
	return &importInvalidError{msg: fmt.Sprintf(format, args...)}
}

// importSet is a verified import.
type importSet struct {
	// files has every file to store: the current ones and each root
	// version, in a stable order.
	files []storage.MetaUpdate
	// anchor is the stored root the chain was verified from, if any.
	anchor         rootRef
	expired        []string
	snapshotSHA256 []byte
}

// verifyImport checks an import with the verification engine readers
// use: every signature, threshold, hash and version, but not expiry
// (imported data may be expired; what expired is reported). The root
// chain is walked from the root the server holds, or, for a repository
// new to the server, from the oldest root version uploaded, which the
// authenticated uploader vouches for. Every uploaded file must be part
// of what verified, and every delegation the data names must verify.
func (s *Server) verifyImport(ctx context.Context, gun data.GUN, parts []upload) (*importSet, error) {
	current := map[data.RoleName][]byte{}
	roots := map[int][]byte{}
	for _, p := range parts {
		if p.name == p.Role.String() {
			current[p.Role] = p.Data
		} else {
			roots[p.Version] = p.Data
		}
	}
	for _, role := range []data.RoleName{data.CanonicalRootRole, data.CanonicalTargetsRole, data.CanonicalSnapshotRole, data.CanonicalTimestampRole} {
		if current[role] == nil {
			return nil, invalidImport("it has no %s.json: send root, targets, snapshot, timestamp and every delegation as <role>.json, older roots as <N>.root.json", role)
		}
	}
	rootV, err := verify.Version(current[data.CanonicalRootRole], "Root")
	if err != nil {
		return nil, invalidImport("root.json: %v", err)
	}
	for v, raw := range roots {
		switch {
		case v > rootV:
			return nil, invalidImport("%d.root.json is newer than root.json (version %d): root.json must be the newest root", v, rootV)
		case v == rootV && !bytes.Equal(raw, current[data.CanonicalRootRole]):
			return nil, invalidImport("%d.root.json differs from root.json, which has the same version: send the same bytes or leave %d.root.json out", v, v)
		}
	}
	roots[rootV] = current[data.CanonicalRootRole]
	anchor, ref, err := s.importAnchor(gun, rootV, roots)
	if err != nil {
		return nil, err
	}
	_, res, err := verify.Update(ctx, verify.Request{
		GUN:            gun.String(),
		Prev:           &verify.State{Root: anchor},
		Fetcher:        importFetcher{files: current, roots: roots},
		Now:            s.now(),
		AllDelegations: true,
		KeepRaw:        true,
		IgnoreExpiry:   true,
	})
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) {
			return nil, invalidImport("%s", oneLine(ve.Error()))
		}
		return nil, fmt.Errorf("verify import of %q: %w", gun, err)
	}
	if err := allVerified(res, current); err != nil {
		return nil, err
	}
	set := &importSet{anchor: ref, expired: res.Expired, snapshotSHA256: res.SnapshotSHA256}
	if set.expired == nil {
		set.expired = []string{}
	}
	for _, p := range parts {
		if p.Role != data.CanonicalRootRole {
			set.files = append(set.files, p.MetaUpdate)
		}
	}
	for v, raw := range roots {
		set.files = append(set.files, storage.MetaUpdate{Role: data.CanonicalRootRole, Version: v, Data: raw})
	}
	sort.Slice(set.files, func(i, j int) bool {
		a, b := set.files[i], set.files[j]
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Version < b.Version
	})
	return set, nil
}

// importAnchor returns the root to walk the imported chain from: the
// server's current root, if the import's root is at least as new; the
// server's copy of the import's root version, if the server holds a
// newer one (a re-run after a take-over; nothing older is then stored);
// for a repository new to the server, the oldest root version uploaded.
func (s *Server) importAnchor(gun data.GUN, rootV int, roots map[int][]byte) ([]byte, rootRef, error) {
	_, stored, err := s.store.GetCurrent(gun, data.CanonicalRootRole)
	if isNotFound(err) {
		oldest := rootV
		for v := range roots {
			oldest = min(oldest, v)
		}
		return roots[oldest], rootRef{}, nil
	}
	if err != nil {
		return nil, rootRef{}, fmt.Errorf("read stored root of %q: %w", gun, err)
	}
	storedV, err := verify.Version(stored, "Root")
	if err != nil {
		return nil, rootRef{}, fmt.Errorf("read stored root of %q: %w", gun, err)
	}
	if rootV < storedV {
		_, same, err := s.store.GetVersion(gun, data.CanonicalRootRole, rootV)
		if isNotFound(err) {
			return nil, rootRef{}, invalidImport("root: the server holds root version %d, not version %d: import trust data at least as new as the server's", storedV, rootV)
		}
		if err != nil {
			return nil, rootRef{}, fmt.Errorf("read stored root version %d of %q: %w", rootV, gun, err)
		}
		if !bytes.Equal(same, roots[rootV]) {
			return nil, rootRef{}, invalidImport("root: version %d differs from the one the server holds: the imported root chain does not extend the server's", rootV)
		}
		stored, storedV = same, rootV
	}
	sum := sha256.Sum256(stored)
	return stored, rootRef{version: storedV, sum: hex.EncodeToString(sum[:])}, nil
}

// allVerified refuses an import with a delegation that failed, or with a
// file that verification did not reach (not delegated, not in the
// snapshot, or delegated with no keys).
func allVerified(res *verify.Result, current map[data.RoleName][]byte) error {
	names := make([]string, 0, len(res.Roles))
	for name := range res.Roles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if r := res.Roles[name]; r.Status == verify.RoleFailed && r.Err != nil {
			return invalidImport("%s", oneLine(r.Err.Error()))
		}
	}
	var uploaded []string
	for role := range current {
		uploaded = append(uploaded, role.String())
	}
	sort.Strings(uploaded)
	for _, name := range uploaded {
		if _, ok := res.Raw[name]; ok {
			continue
		}
		r, ok := res.Roles[name]
		switch {
		case !ok:
			return invalidImport("%s.json: no role of the imported data delegates to %s: leave it out", name, name)
		case r.Status == verify.RoleEmpty:
			return invalidImport("%s.json: the imported snapshot does not list %s: leave it out", name, name)
		case r.Status == verify.RoleDisabled:
			return invalidImport("%s.json: %s is delegated with no keys, so nothing it signs is trusted: leave it out", name, name)
		default:
			return invalidImport("%s.json: %s is %s", name, name, r.Status)
		}
	}
	return nil
}

// oneLine keeps an error message on one line.
func oneLine(msg string) string {
	return strings.Join(strings.Fields(msg), " ")
}

// importFetcher serves an import's files to the verification engine:
// "<role>.json" and "<role>.<sha256>.json" are the uploaded role (its
// hash is then checked by the engine, so a tampered file fails as a hash
// mismatch, not as missing), "<N>.root.json" an uploaded root version.
type importFetcher struct {
	files map[data.RoleName][]byte
	roots map[int][]byte
}

func (f importFetcher) Fetch(_ context.Context, name string, max int64) ([]byte, error) {
	base := strings.TrimSuffix(name, ".json")
	var (
		b  []byte
		ok bool
	)
	if m := rootHistoryRe.FindStringSubmatch(base); m != nil {
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		b, ok = f.roots[v]
	} else if b, ok = f.files[data.RoleName(base)]; !ok {
		if i := strings.LastIndex(base, "."); i > 0 && checksumRe.MatchString(base[i+1:]) {
			base = base[:i]
			b, ok = f.files[data.RoleName(base)]
		}
	}
	if !ok {
		return nil, fmt.Errorf("%s.json is not in the import: %w", base, verify.ErrNotFound)
	}
	if int64(len(b)) > max {
		return nil, &verify.TooLargeError{Name: name, Max: max}
	}
	return b, nil
}
