package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/server/snapshot"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/server/timestamp"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/validation"
)

// readUpdate parses the multipart/form-data body of a publish. It reads
// each part's filename from the raw Content-Disposition header, because
// multipart.Part.FileName strips directories since Go 1.17 and would turn
// "targets/releases.json" into "releases.json" (the bug that makes
// notary-server refuse every delegation).
func (s *Server) readUpdate(r *http.Request) ([]storage.MetaUpdate, error) {
	if r.ContentLength > s.limits.MaxRequestBytes {
		return nil, errTooLarge.WithMessage(fmt.Sprintf("update is %d bytes, over the %d byte limit: publish fewer roles at once or raise --max-request-bytes", r.ContentLength, s.limits.MaxRequestBytes))
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, errMalformedUpload.WithMessage("update must be multipart/form-data with a boundary")
	}
	body := http.MaxBytesReader(nil, r.Body, s.limits.MaxRequestBytes)
	mr := multipart.NewReader(body, params["boundary"])
	var updates []storage.MetaUpdate
	seen := map[data.RoleName]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errTooLarge.WithMessage(fmt.Sprintf("update is over the %d byte limit", s.limits.MaxRequestBytes))
			}
			if errors.Is(err, errBudgetSpent) {
				return nil, errBudgetSpent
			}
			return nil, errMalformedUpload.WithMessage("read multipart update: " + err.Error())
		}
		if len(updates) >= s.limits.MaxParts {
			return nil, errMalformedUpload.WithMessage(fmt.Sprintf("update has more than %d files", s.limits.MaxParts))
		}
		u, err := s.readPart(part)
		if err != nil {
			return nil, err
		}
		if seen[u.Role] {
			return nil, errMalformedUpload.WithMessage(fmt.Sprintf("update has %s twice", u.Role))
		}
		seen[u.Role] = true
		updates = append(updates, u)
	}
	// An update with no files is what the notary client sends when
	// nothing changed; like notary-server, the server then signs a new
	// snapshot (if it holds the key) and timestamp.
	return updates, nil
}

func (s *Server) readPart(part *multipart.Part) (storage.MetaUpdate, error) {
	defer part.Close()
	_, cd, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil || cd["filename"] == "" {
		return storage.MetaUpdate{}, errNoFilename.WithMessage("update part has no filename: name each part <role>.json")
	}
	// The notary client names parts "<role>"; the API documents "<role>.json".
	roleName := strings.TrimSuffix(cd["filename"], ".json")
	if err := validRoleName(roleName); err != nil {
		return storage.MetaUpdate{}, errInvalidRole.WithMessage(err.Error())
	}
	role := data.RoleName(roleName)
	raw, err := io.ReadAll(io.LimitReader(part, s.limits.MaxMetadataBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return storage.MetaUpdate{}, errTooLarge.WithMessage(fmt.Sprintf("update is over the %d byte limit", s.limits.MaxRequestBytes))
		}
		if errors.Is(err, errBudgetSpent) {
			return storage.MetaUpdate{}, errBudgetSpent
		}
		return storage.MetaUpdate{}, errMalformedUpload.WithMessage(fmt.Sprintf("read %s: %v", role, err))
	}
	if int64(len(raw)) > s.limits.MaxMetadataBytes {
		return storage.MetaUpdate{}, errTooLarge.WithMessage(fmt.Sprintf("%s is over the %d byte metadata limit", role, s.limits.MaxMetadataBytes))
	}
	var meta data.SignedMeta
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&meta); err != nil {
		return storage.MetaUpdate{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s is not valid TUF JSON: %v", role, err))
	}
	if dec.More() {
		return storage.MetaUpdate{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s has data after its JSON object", role))
	}
	if meta.Signed.Version < 1 {
		return storage.MetaUpdate{}, errMalformedJSON.WithMessage(fmt.Sprintf("%s has version %d: versions start at 1", role, meta.Signed.Version))
	}
	return storage.MetaUpdate{Role: role, Version: meta.Signed.Version, Data: raw}, nil
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, rt route) {
	gun := data.GUN(rt.gun)
	release, err := s.inflight.admit(r, s.limits.MaxRequestBytes)
	if err != nil {
		s.refuseBusy(w, rt.gun)
		return
	}
	defer release()
	updates, err := s.readUpdate(r)
	if errors.Is(err, errBudgetSpent) {
		s.refuseBusy(w, rt.gun)
		return
	}
	if err != nil {
		s.metrics.publishes.WithLabelValues("invalid").Inc()
		s.log.Info("update refused", "gun", rt.gun, "err", err)
		writeError(w, err)
		return
	}
	unlock := s.lockGUN(rt.gun)
	defer unlock()
	applied, err := validateUpdate(s.crypto, gun, updates, s.store)
	if err != nil {
		s.metrics.publishes.WithLabelValues("invalid").Inc()
		s.log.Info("update invalid", "gun", rt.gun, "err", err)
		writeError(w, invalidUpdateError(err))
		return
	}
	if err := s.store.UpdateMany(gun, applied); err != nil {
		var old storage.ErrOldVersion
		if errors.As(err, &old) {
			s.metrics.publishes.WithLabelValues("conflict").Inc()
			s.log.Info("update out of date", "gun", rt.gun)
			writeError(w, errOldVersion.WithMessage(fmt.Sprintf("update of %s is out of date: a newer version was published; fetch the latest metadata and retry", rt.gun)).WithDetail(old))
			return
		}
		s.metrics.publishes.WithLabelValues("error").Inc()
		s.log.Error("store update", "gun", rt.gun, "err", err)
		writeError(w, errUpdating.WithMessage("storing the update failed; retry later"))
		return
	}
	s.metrics.publishes.WithLabelValues("ok").Inc()
	attrs := []any{"gun", rt.gun}
	for _, u := range applied {
		attrs = append(attrs, u.Role.String(), u.Version)
	}
	s.log.Info("published", attrs...)
}

func (s *Server) refuseBusy(w http.ResponseWriter, gun string) {
	s.metrics.publishes.WithLabelValues("busy").Inc()
	s.log.Warn("update refused: bytes in flight at the limit", "gun", gun, "limit", s.inflight.max)
	s.busyError(w)
}

// invalidUpdateError keeps notary's serializable detail (the notary
// client turns it back into a typed error) and adds a readable message.
func invalidUpdateError(err error) error {
	e := errInvalidUpdate.WithMessage("invalid update: " + err.Error())
	if ser, serr := validation.NewSerializableError(err); serr == nil {
		return e.WithDetail(ser)
	}
	return e
}

func (s *Server) getMeta(w http.ResponseWriter, r *http.Request, rt route) {
	gun, role := data.GUN(rt.gun), data.RoleName(rt.role)
	var (
		modified *time.Time
		out      []byte
		err      error
		current  bool
	)
	switch {
	case rt.checksum != "":
		modified, out, err = s.store.GetChecksum(gun, role, rt.checksum)
	case rt.version > 0:
		modified, out, err = s.store.GetVersion(gun, role, rt.version)
	case role == data.CanonicalTimestampRole || role == data.CanonicalSnapshotRole:
		current = true
		modified, out, err = s.serverSigned(gun, role)
	default:
		current = true
		modified, out, err = s.store.GetCurrent(gun, role)
	}
	if err != nil {
		var nk *storage.ErrNoKey
		if isNotFound(err) || errors.As(err, &nk) {
			writeError(w, errNotFound.WithMessage(fmt.Sprintf("no %s metadata for %s", role, gun)))
			return
		}
		s.log.Error("read metadata", "gun", rt.gun, "role", rt.role, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("reading %s of %s failed", role, gun)))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	if modified != nil {
		h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
	}
	if current {
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(out) //nolint:errcheck
}

// serverSigned returns the current timestamp or snapshot, signing a new
// timestamp (and snapshot, if the server holds its key) when the current
// one has expired. Two readers racing to re-sign: the loser reads the
// winner's.
func (s *Server) serverSigned(gun data.GUN, role data.RoleName) (*time.Time, []byte, error) {
	var (
		modified *time.Time
		ts       []byte
		err      error
	)
	for attempt := 0; attempt < 3; attempt++ {
		modified, ts, err = timestamp.GetOrCreateTimestamp(gun, s.store, s.crypto)
		var old storage.ErrOldVersion
		if !errors.As(err, &old) {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if role == data.CanonicalTimestampRole {
		return modified, ts, nil
	}
	var signedTS data.SignedTimestamp
	if err := json.Unmarshal(ts, &signedTS); err != nil {
		return nil, nil, fmt.Errorf("parse timestamp of %q: %w", gun, err)
	}
	meta, err := signedTS.GetSnapshot()
	if err != nil {
		return nil, nil, fmt.Errorf("timestamp of %q names no snapshot: %w", gun, err)
	}
	sum, ok := meta.Hashes[notary.SHA256]
	if !ok {
		return nil, nil, fmt.Errorf("timestamp of %q has no sha256 of the snapshot", gun)
	}
	return s.store.GetChecksum(gun, data.CanonicalSnapshotRole, hex.EncodeToString(sum))
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request, rt route) {
	gun, role := data.GUN(rt.gun), data.RoleName(rt.role)
	unlock := s.lockGUN(rt.gun)
	defer unlock()
	key, err := s.currentKey(r.Context(), gun, role)
	if err != nil {
		s.log.Error("get server key", "gun", rt.gun, "role", rt.role, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("getting the %s key of %s failed", role, gun)))
		return
	}
	writeKey(w, key)
}

// currentKey returns the server's key for role: the one root names if the
// server holds it; before the repository has a root, the newest key made
// for it, or a new one, the same on every replica (so repeated or
// concurrent GETs by initialising clients do not pile up keys); otherwise
// a new key.
func (s *Server) currentKey(ctx context.Context, gun data.GUN, role data.RoleName) (data.PublicKey, error) {
	_, _, err := s.store.GetCurrent(gun, data.CanonicalRootRole)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if isNotFound(err) {
		id, err := s.keys.newestOrCreate(ctx, gun, role, s.algo)
		if err != nil {
			return nil, err
		}
		k := s.crypto.GetKey(id)
		if k == nil {
			return nil, fmt.Errorf("read %s key %s of %q: not found after it was stored", role, id, gun)
		}
		return k, nil
	}
	if role == data.CanonicalTimestampRole {
		return timestamp.GetOrCreateTimestampKey(gun, s.store, s.crypto, s.algo)
	}
	return snapshot.GetOrCreateSnapshotKey(gun, s.store, s.crypto, s.algo)
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, rt route) {
	gun, role := data.GUN(rt.gun), data.RoleName(rt.role)
	key, err := s.crypto.Create(role, gun, s.algo)
	if err != nil {
		s.log.Error("rotate server key", "gun", rt.gun, "role", rt.role, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("creating a new %s key for %s failed", role, gun)))
		return
	}
	s.log.Info("new server key", "gun", rt.gun, "role", rt.role, "key_id", key.ID())
	writeKey(w, key)
}

func writeKey(w http.ResponseWriter, key data.PublicKey) {
	out, err := json.Marshal(key)
	if err != nil {
		writeError(w, errUnknown.WithMessage("encoding key failed"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(out) //nolint:errcheck
}

func (s *Server) deleteGUN(w http.ResponseWriter, r *http.Request, rt route) {
	unlock := s.lockGUN(rt.gun)
	defer unlock()
	if err := s.store.Delete(data.GUN(rt.gun)); err != nil {
		s.log.Error("delete repository", "gun", rt.gun, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("deleting %s failed", rt.gun)))
		return
	}
	if err := s.keys.removeGUN(data.GUN(rt.gun)); err != nil {
		s.log.Error("delete repository keys", "gun", rt.gun, "err", err)
	}
	s.log.Info("deleted trust data", "gun", rt.gun)
}

type changefeedResponse struct {
	Count   int              `json:"count"`
	Records []storage.Change `json:"records"`
}

func (s *Server) changefeed(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	records := notary.DefaultPageSize
	if v := q.Get("records"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			writeError(w, errInvalidParams.WithMessage(fmt.Sprintf("records %q: use a non-zero integer", v)))
			return
		}
		records = n
	}
	if records > s.limits.MaxChangefeedRecords {
		records = s.limits.MaxChangefeedRecords
	}
	if records < -s.limits.MaxChangefeedRecords {
		records = -s.limits.MaxChangefeedRecords
	}
	changes, err := s.store.GetChanges(q.Get("change_id"), records, rt.gun)
	if err != nil {
		var bq storage.ErrBadQuery
		if errors.As(err, &bq) {
			writeError(w, errInvalidParams.WithMessage(fmt.Sprintf("change_id %q: use an integer", q.Get("change_id"))))
			return
		}
		s.log.Error("read changefeed", "err", err)
		writeError(w, errUnknown.WithMessage("reading the changefeed failed"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(changefeedResponse{Count: len(changes), Records: changes}) //nolint:errcheck
}
