package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/validation"
)

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
	s.cache.dropGUN(rt.gun)
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
// server holds it; otherwise (no root yet, a client-managed snapshot key,
// or an imported repository before its take-over) the newest key made for
// it, or a new one, the same on every replica (so repeated or concurrent
// GETs do not pile up keys).
func (s *Server) currentKey(ctx context.Context, gun data.GUN, role data.RoleName) (data.PublicKey, error) {
	_, root, err := s.store.GetCurrent(gun, data.CanonicalRootRole)
	if isNotFound(err) {
		return s.newestOrCreateKey(ctx, gun, role)
	}
	if err != nil {
		return nil, err
	}
	key, err := heldRoleKey(s.crypto, root, role)
	if err != nil || key != nil {
		return key, err
	}
	// Root names another key: the client manages its snapshot key, or the
	// repository was imported and this key is for its take-over. Hand out
	// the same key every time.
	return s.newestOrCreateKey(ctx, gun, role)
}

// newestOrCreateKey returns the newest key the server made for role of
// gun, making one if there is none.
func (s *Server) newestOrCreateKey(ctx context.Context, gun data.GUN, role data.RoleName) (data.PublicKey, error) {
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

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, rt route) {
	gun, role := data.GUN(rt.gun), data.RoleName(rt.role)
	key, err := s.crypto.Create(role, gun, s.algo)
	if err != nil {
		s.log.Error("rotate server key", "gun", rt.gun, "role", rt.role, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("creating a new %s key for %s failed", role, gun)))
		return
	}
	// A new key changes no metadata until a root names it; still, a
	// rotation counts as a change of the repository, so no replica keeps
	// answers from before it.
	if err := s.store.countChange(r.Context(), rt.gun); err != nil {
		s.log.Warn("count key rotation as a change", "gun", rt.gun, "err", err)
	}
	s.cache.dropGUN(rt.gun)
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
	s.cache.dropGUN(rt.gun)
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
