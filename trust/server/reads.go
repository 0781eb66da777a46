package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/server/timestamp"
	"github.com/theupdateframework/notary/tuf/data"
)

// The read path: GET and HEAD of /v2/<gun>/_trust/tuf/<file>.json. Every
// read first reads the repository's change counter (changecount.go), one
// primary-key lookup, then answers from the read cache (readcache.go) if
// it holds the file loaded at that counter, or else from the store, and
// keeps the answer. The cache never decides anything the store path
// would decide differently: an answer is served only while no change of
// the repository was committed since it was loaded, by this replica or
// any other, and a server-signed timestamp or snapshot only until the
// instant the store path would re-sign it.

// getMeta answers GET and HEAD of a metadata file. Cached and uncached
// answers are written here alike, so they are the same bytes with the
// same headers.
func (s *Server) getMeta(w http.ResponseWriter, r *http.Request, rt route) {
	f, err := s.readMeta(r.Context(), rt)
	if err != nil {
		s.log.Error("read metadata", "gun", rt.gun, "role", rt.role, "err", err)
		writeError(w, errUnknown.WithMessage(fmt.Sprintf("reading %s of %s failed", rt.role, rt.gun)))
		return
	}
	if f.notFound {
		writeError(w, errNotFound.WithMessage(fmt.Sprintf("no %s metadata for %s", rt.role, rt.gun)))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", f.length)
	if f.modified != "" {
		h.Set("Last-Modified", f.modified)
	}
	if f.current {
		h.Set("Cache-Control", "no-store")
	} else {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.body) //nolint:errcheck // the client went away
}

// readMeta returns the answer for a metadata file, from the read cache if
// it holds one loaded at the repository's current change counter, else
// from the store, keeping it in the cache.
func (s *Server) readMeta(ctx context.Context, rt route) (*metaFile, error) {
	if s.cache == nil {
		s.metrics.reads.WithLabelValues("off").Inc()
		f, _, err := s.loadMeta(rt, false)
		return f, err
	}
	// Not cancelled with the request: lib/pq watches a cancellable
	// context from a goroutine of its own per query, which costs more
	// than this primary-key read.
	changes, err := s.store.changeCount(context.WithoutCancel(ctx), rt.gun)
	if err != nil {
		// Without the counter nothing kept can be trusted to be current:
		// read the store, as with no cache.
		s.metrics.reads.WithLabelValues(cacheError).Inc()
		s.log.Warn("read cache bypassed", "gun", rt.gun, "err", err)
		f, _, err := s.loadMeta(rt, false)
		return f, err
	}
	// Expiry as notary's timestamp package decides it on the store path,
	// by time.Now; a server clock set ahead only expires entries sooner.
	now := time.Now()
	if t := s.now(); t.After(now) {
		now = t
	}
	key := keyOf(rt)
	f, result := s.cache.get(key, changes, now)
	s.metrics.reads.WithLabelValues(result).Inc()
	if f != nil {
		return f, nil
	}
	f, keep, err := s.loadMeta(rt, true)
	if err != nil {
		return nil, err
	}
	// Tagged with the counter read before loading: if a change committed
	// meanwhile, the next read sees a newer counter and loads again.
	for _, k := range keep {
		s.cache.put(k.key, changes, k.file)
	}
	return f, nil
}

// cacheFill is an answer loaded from the store that the cache may keep.
type cacheFill struct {
	key  cacheKey
	file *metaFile
}

// loadMeta reads a metadata file from the store. forCache asks also for
// what the cache may keep of the load (the file itself, and for the
// timestamp or snapshot, the other one of the pair, which costs one more
// query).
func (s *Server) loadMeta(rt route, forCache bool) (*metaFile, []cacheFill, error) {
	gun, role := data.GUN(rt.gun), data.RoleName(rt.role)
	var (
		modified *time.Time
		out      []byte
		err      error
	)
	switch {
	case rt.checksum != "":
		modified, out, err = s.store.GetChecksum(gun, role, rt.checksum)
	case rt.version > 0:
		modified, out, err = s.store.GetVersion(gun, role, rt.version)
	case role == data.CanonicalTimestampRole || role == data.CanonicalSnapshotRole:
		return s.loadServerSigned(gun, role, forCache)
	default:
		modified, out, err = s.store.GetCurrent(gun, role)
	}
	current := rt.checksum == "" && rt.version == 0
	f, keep, err := answer(modified, out, current, err)
	if err != nil || !keep {
		return f, nil, err
	}
	return f, []cacheFill{{keyOf(rt), f}}, nil
}

// answer makes the answer to a store read: a 404 for a file the store
// does not hold. keep reports whether the cache may keep it.
func answer(modified *time.Time, out []byte, current bool, err error) (f *metaFile, keep bool, _ error) {
	if err != nil {
		var nk *storage.ErrNoKey
		switch {
		case isNotFound(err):
			return &metaFile{notFound: true}, true, nil
		case errors.As(err, &nk):
			return &metaFile{notFound: true}, false, nil
		}
		return nil, false, err
	}
	f = &metaFile{body: out, length: strconv.Itoa(len(out)), current: current}
	if modified != nil {
		f.modified = modified.UTC().Format(http.TimeFormat)
	}
	return f, true, nil
}

// loadServerSigned reads the current timestamp (re-signed by notary's
// timestamp package if it or its snapshot has expired) or the snapshot it
// names. For the cache, it reads both and marks them fresh until the
// earlier of their expiries: past it, the store path would re-sign. The
// timestamp and snapshot of an imported repository that the server cannot
// sign for (served as stored, expired or not) are not kept.
func (s *Server) loadServerSigned(gun data.GUN, role data.RoleName, forCache bool) (*metaFile, []cacheFill, error) {
	modified, ts, asStored, err := s.currentTimestamp(gun)
	if err != nil {
		// No timestamp, or no snapshot it names: a 404 the cache keeps.
		f, keep, err := answer(nil, nil, true, err)
		if err != nil || !keep {
			return f, nil, err
		}
		return f, []cacheFill{{cacheKey{gun: gun.String(), role: role.String()}, f}}, nil
	}
	tsFile, _, _ := answer(modified, ts, true, nil)
	if role == data.CanonicalTimestampRole && !forCache {
		return tsFile, nil, nil
	}
	signedTS, sum, err := snapshotNamed(gun, ts)
	if err != nil {
		if role == data.CanonicalTimestampRole {
			return tsFile, nil, nil
		}
		return nil, nil, err
	}
	snModified, sn, err := s.store.GetChecksum(gun, data.CanonicalSnapshotRole, sum)
	snFile, _, err := answer(snModified, sn, true, err)
	served := snFile
	if role == data.CanonicalTimestampRole {
		served = tsFile
	}
	switch {
	case err != nil && role == data.CanonicalTimestampRole:
		return tsFile, nil, nil
	case err != nil:
		return nil, nil, err
	case asStored || snFile.notFound || !forCache:
		return served, nil, nil
	}
	snExpires, err := expiresOf(sn)
	if err != nil {
		return served, nil, nil
	}
	until := signedTS.Signed.Expires
	if snExpires.Before(until) {
		until = snExpires
	}
	tsFile.freshUntil, snFile.freshUntil = until, until
	return served, []cacheFill{
		{cacheKey{gun: gun.String(), role: data.CanonicalTimestampRole.String()}, tsFile},
		{cacheKey{gun: gun.String(), role: data.CanonicalSnapshotRole.String()}, snFile},
	}, nil
}

// currentTimestamp returns the current timestamp, signing a new one (and
// a new snapshot, if the server holds its key) when the current one or
// its snapshot has expired. Two readers racing to re-sign: the loser
// reads the winner's. An imported repository whose root names a
// timestamp key the server does not hold gets its stored timestamp as it
// is, expired or not (asStored): never a timestamp signed by a key root
// does not list.
func (s *Server) currentTimestamp(gun data.GUN) (modified *time.Time, ts []byte, asStored bool, err error) {
	for attempt := 0; attempt < 3; attempt++ {
		modified, ts, err = timestamp.GetOrCreateTimestamp(gun, s.store, s.crypto)
		var old storage.ErrOldVersion
		if !errors.As(err, &old) {
			break
		}
	}
	if err == nil || isNotFound(err) {
		return modified, ts, false, err
	}
	// Re-signing failed: for an imported repository, because the server
	// holds no key to sign with.
	m, stored, ok, serr := s.storedTimestamp(gun)
	if serr != nil {
		return nil, nil, false, fmt.Errorf("%w (and reading it as stored: %v)", err, serr)
	}
	if !ok {
		return nil, nil, false, err
	}
	return m, stored, true, nil
}

// snapshotNamed parses a timestamp and returns the sha256 (hex) of the
// snapshot it names.
func snapshotNamed(gun data.GUN, ts []byte) (*data.SignedTimestamp, string, error) {
	var signedTS data.SignedTimestamp
	if err := json.Unmarshal(ts, &signedTS); err != nil {
		return nil, "", fmt.Errorf("parse timestamp of %q: %w", gun, err)
	}
	meta, err := signedTS.GetSnapshot()
	if err != nil {
		return nil, "", fmt.Errorf("timestamp of %q names no snapshot: %w", gun, err)
	}
	sum, ok := meta.Hashes[notary.SHA256]
	if !ok {
		return nil, "", fmt.Errorf("timestamp of %q has no sha256 of the snapshot", gun)
	}
	return &signedTS, hex.EncodeToString(sum), nil
}

// expiresOf returns the expiry of a signed metadata file.
func expiresOf(raw []byte) (time.Time, error) {
	var m struct {
		Signed struct {
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return time.Time{}, fmt.Errorf("parse expiry: %w", err)
	}
	return m.Signed.Expires, nil
}
