package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/validation"
)

// An imported repository keeps the old server's timestamp key (and often
// its snapshot key) in root until it is taken over: a root-only update,
// signed by the root keys, names the keys this server hands out at
// .../timestamp.key and .../snapshot.key. Until then the server cannot
// sign for it: it serves the imported timestamp and snapshot as they are
// and refuses publishes with a hint to take the repository over.

// heldRoleKey returns the key root lists for role that the server
// holds, or nil if it holds none of them.
func heldRoleKey(cs signed.CryptoService, root []byte, role data.RoleName) (data.PublicKey, error) {
	var sr data.SignedRoot
	if err := json.Unmarshal(root, &sr); err != nil {
		return nil, fmt.Errorf("parse root: %w", err)
	}
	base, err := sr.BuildBaseRole(role)
	if err != nil {
		return nil, fmt.Errorf("read the %s role of root: %w", role, err)
	}
	for id, pub := range base.Keys {
		_, _, err := cs.GetPrivateKey(id)
		if err == nil {
			return pub, nil
		}
		var nf trustmanager.ErrKeyNotFound
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("look up %s key %s: %w", role, id, err)
		}
	}
	return nil, nil
}

// errNotTakenOver refuses a publish to an imported repository whose
// root still names the old server's timestamp key.
func errNotTakenOver(gun data.GUN) error {
	return validation.ErrValidation{Msg: fmt.Sprintf(
		"the timestamp and snapshot keys of %s are still the old trust server's (imported trust data): take the repository over with `signet rotate %s timestamp snapshot --server-managed` (or `signet migrate`), then publish again",
		gun, gun)}
}

// checkTakenOver refuses an update of an imported repository that has
// not been taken over: the stored root names a timestamp key the server
// does not hold, and the update's root (if any) does not name one either.
// A root-only update that names the server's keys is the take-over.
func checkTakenOver(cs signed.CryptoService, gun data.GUN, stored, next []byte) error {
	if stored == nil {
		return nil
	}
	for _, root := range [][]byte{stored, next} {
		if root == nil {
			continue
		}
		key, err := heldRoleKey(cs, root, data.CanonicalTimestampRole)
		if err != nil || key != nil {
			return err
		}
	}
	return errNotTakenOver(gun)
}

// storedTimestamp returns the stored current timestamp, for a repository
// whose root names a timestamp key the server does not hold (imported,
// not yet taken over). ok is false if the server holds the key. The
// first time for each GUN it logs that it serves the data as stored.
func (s *Server) storedTimestamp(gun data.GUN) (modified *time.Time, ts []byte, ok bool, err error) {
	_, root, err := s.store.GetCurrent(gun, data.CanonicalRootRole)
	if err != nil {
		return nil, nil, false, err
	}
	key, err := heldRoleKey(s.crypto, root, data.CanonicalTimestampRole)
	if err != nil || key != nil {
		return nil, nil, false, err
	}
	modified, ts, err = s.store.GetCurrent(gun, data.CanonicalTimestampRole)
	if err != nil {
		return nil, nil, false, err
	}
	if _, logged := s.asStored.LoadOrStore(gun, true); !logged {
		s.log.Info("serving imported timestamp and snapshot as stored: root names the old server's timestamp key; take the repository over with signet rotate",
			"gun", gun.String())
	}
	return modified, ts, true, nil
}
