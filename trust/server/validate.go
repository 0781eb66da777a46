package server

import (
	"errors"
	"fmt"
	"sort"

	"github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/server/storage"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
	"github.com/theupdateframework/notary/tuf/validation"
)

// validateUpdate checks a client's update against what the store holds and
// returns the updates to apply: the client's roles plus a snapshot (if the
// server holds the snapshot key and none was sent) and a new timestamp.
// It follows notary-server's validation (root -> targets -> delegations ->
// snapshot) with notary's tuf builder, and adds what notary left to
// clients: delegations may claim only paths their parent gave them, and
// delegated targets must lie inside their role's paths (TUF spec §4.5,
// "paths" of a delegation).
func validateUpdate(cs signed.CryptoService, gun data.GUN, updates []storage.MetaUpdate, store storage.MetaStore) ([]storage.MetaUpdate, error) {
	roles := make(map[data.RoleName]storage.MetaUpdate, len(updates))
	for _, u := range updates {
		if u.Role == data.CanonicalTimestampRole {
			return nil, validation.ErrValidation{Msg: "timestamp is signed by the server: do not upload timestamp.json"}
		}
		roles[u.Role] = u
	}
	apply := make([]storage.MetaUpdate, 0, len(updates)+2)

	builder := tuf.NewRepoBuilder(gun, cs, trustpinning.TrustPinConfig{})
	storedRoot, err := loadFromStore(gun, data.CanonicalRootRole, builder, store)
	if err != nil && !isNotFound(err) {
		return nil, err
	}

	rootUpdate, ok := roles[data.CanonicalRootRole]
	if ok {
		// TUF spec §5.3 (root rotation): a new root must be signed by a
		// threshold of the previous root's keys and of its own; the
		// builder bootstrapped from the current root checks both.
		current := builder.GetLoadedVersion(data.CanonicalRootRole)
		if rootUpdate.Version != current && rootUpdate.Version != current+1 {
			return nil, validation.ErrBadRoot{Msg: fmt.Sprintf("root version must be %d (current %d), got %d", current+1, current, rootUpdate.Version)}
		}
		builder = builder.BootstrapNewBuilder()
		if err := builder.Load(data.CanonicalRootRole, rootUpdate.Data, current, false); err != nil {
			return nil, validation.ErrBadRoot{Msg: err.Error()}
		}
		apply = append(apply, rootUpdate)
	} else if !builder.IsLoaded(data.CanonicalRootRole) {
		return nil, validation.ErrValidation{Msg: "no root exists for this repository and the update has none: initialise the repository first"}
	}
	if err := checkTakenOver(cs, gun, storedRoot, rootUpdate.Data); err != nil {
		return nil, err
	}

	targets, err := loadAndValidateTargets(gun, builder, roles, store)
	if err != nil {
		return nil, err
	}
	apply = append(apply, targets...)

	if snapshotUpdate, ok := roles[data.CanonicalSnapshotRole]; ok {
		// The builder checks the snapshot's hashes of every targets file
		// loaded above (snapshot/targets consistency).
		if err := builder.Load(data.CanonicalSnapshotRole, snapshotUpdate.Data, 1, false); err != nil {
			return nil, validation.ErrBadSnapshot{Msg: err.Error()}
		}
		apply = append(apply, snapshotUpdate)
	} else {
		u, err := generateSnapshot(gun, builder, store)
		if err != nil {
			return nil, err
		}
		apply = append(apply, *u)
	}

	u, err := generateTimestamp(gun, builder, store)
	if err != nil {
		return nil, err
	}
	return append(apply, *u), nil
}

func isNotFound(err error) bool {
	var nf storage.ErrNotFound
	return errors.As(err, &nf)
}

func loadAndValidateTargets(gun data.GUN, builder tuf.RepoBuilder, roles map[data.RoleName]storage.MetaUpdate, store storage.MetaStore) ([]storage.MetaUpdate, error) {
	names := make(utils.RoleList, 0)
	for role := range roles {
		if role == data.CanonicalTargetsRole || data.IsDelegation(role) {
			names = append(names, role.String())
		}
	}
	// Shallow roles first, so a parent is validated before its children.
	sort.Sort(names)

	// parsed holds the targets files the client sent or the store holds,
	// for the path checks.
	parsed := map[data.RoleName]*data.SignedTargets{}
	apply := make([]storage.MetaUpdate, 0, len(names))
	for _, name := range names {
		role := data.RoleName(name)
		var missing []data.RoleName
		for anc := role; anc != data.CanonicalTargetsRole; {
			anc = anc.Parent()
			if !builder.IsLoaded(anc) {
				missing = append(missing, anc)
			}
		}
		for i := len(missing) - 1; i >= 0; i-- {
			if _, err := loadFromStore(gun, missing[i], builder, store); err != nil && !isNotFound(err) {
				return nil, err
			}
		}
		if err := builder.Load(role, roles[role].Data, 1, false); err != nil {
			return nil, validation.ErrBadTargets{Msg: fmt.Sprintf("%s: %v", role, err)}
		}
		st, err := parseTargets(roles[role].Data, role)
		if err != nil {
			return nil, validation.ErrBadTargets{Msg: err.Error()}
		}
		parsed[role] = st
		if err := checkPaths(gun, role, st, parsed, store); err != nil {
			return nil, validation.ErrBadTargets{Msg: err.Error()}
		}
		apply = append(apply, roles[role])
	}
	return apply, nil
}

func parseTargets(raw []byte, role data.RoleName) (*data.SignedTargets, error) {
	s := &data.Signed{}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", role, err)
	}
	return data.TargetsFromSigned(s, role)
}

// allowedPaths returns the path prefixes role may sign for: everything for
// "targets", else the intersection down the delegation chain. ok is false
// if some ancestor does not delegate to the next role.
func allowedPaths(gun data.GUN, role data.RoleName, parsed map[data.RoleName]*data.SignedTargets, store storage.MetaStore) (paths []string, all bool, err error) {
	if role == data.CanonicalTargetsRole {
		return nil, true, nil
	}
	parent := role.Parent()
	pPaths, pAll, err := allowedPaths(gun, parent, parsed, store)
	if err != nil {
		return nil, false, err
	}
	pt, ok := parsed[parent]
	if !ok {
		_, raw, err := store.GetCurrent(gun, parent)
		if err != nil {
			return nil, false, fmt.Errorf("read %s to check the paths of %s: %w", parent, role, err)
		}
		if pt, err = parseTargets(raw, parent); err != nil {
			return nil, false, err
		}
		parsed[parent] = pt
	}
	dr, err := pt.BuildDelegationRole(role)
	if err != nil {
		return nil, false, fmt.Errorf("%s does not delegate to %s: %w", parent, role, err)
	}
	if pAll {
		return dr.Paths, false, nil
	}
	return data.RestrictDelegationPathPrefixes(pPaths, dr.Paths), false, nil
}

func hasPrefixIn(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if len(p) >= len(pre) && p[:len(pre)] == pre {
			return true
		}
	}
	return false
}

// checkPaths refuses a targets file that delegates paths outside its own
// or that lists targets outside its own paths.
func checkPaths(gun data.GUN, role data.RoleName, st *data.SignedTargets, parsed map[data.RoleName]*data.SignedTargets, store storage.MetaStore) error {
	own, all, err := allowedPaths(gun, role, parsed, store)
	if err != nil {
		return err
	}
	if all {
		return nil
	}
	for _, d := range st.Signed.Delegations.Roles {
		for _, p := range d.Paths {
			if !hasPrefixIn(p, own) {
				return fmt.Errorf("%s delegates path %q to %s but was only given %q", role, p, d.Name, own)
			}
		}
	}
	for name := range st.Signed.Targets {
		if !hasPrefixIn(name, own) {
			return fmt.Errorf("%s signs target %q outside its delegated paths %q", role, name, own)
		}
	}
	return nil
}

// generateSnapshot signs the next snapshot with the server's snapshot key.
func generateSnapshot(gun data.GUN, builder tuf.RepoBuilder, store storage.MetaStore) (*storage.MetaUpdate, error) {
	var prev *data.SignedSnapshot
	_, raw, err := store.GetCurrent(gun, data.CanonicalSnapshotRole)
	switch {
	case err == nil:
		prev = new(data.SignedSnapshot)
		if err := json.Unmarshal(raw, prev); err != nil {
			return nil, fmt.Errorf("parse stored snapshot of %q: %w", gun, err)
		}
	case !isNotFound(err):
		return nil, err
	}
	meta, ver, err := builder.GenerateSnapshot(prev)
	switch err.(type) {
	case nil:
		return &storage.MetaUpdate{Role: data.CanonicalSnapshotRole, Version: ver, Data: meta}, nil
	case signed.ErrInsufficientSignatures, signed.ErrNoKeys, signed.ErrRoleThreshold:
		return nil, validation.ErrBadHierarchy{
			Missing: data.CanonicalSnapshotRole.String(),
			Msg:     fmt.Sprintf("no snapshot in the update and the server does not hold the snapshot key of %s: sign and upload snapshot.json, or, if another trust server held that key (imported trust data), take it over with `signet rotate %s snapshot --server-managed`", gun, gun),
		}
	default:
		return nil, validation.ErrValidation{Msg: err.Error()}
	}
}

// generateTimestamp signs the next timestamp with the server's key.
func generateTimestamp(gun data.GUN, builder tuf.RepoBuilder, store storage.MetaStore) (*storage.MetaUpdate, error) {
	var prev *data.SignedTimestamp
	_, raw, err := store.GetCurrent(gun, data.CanonicalTimestampRole)
	switch {
	case err == nil:
		prev = new(data.SignedTimestamp)
		if err := json.Unmarshal(raw, prev); err != nil {
			return nil, fmt.Errorf("parse stored timestamp of %q: %w", gun, err)
		}
	case !isNotFound(err):
		return nil, err
	}
	meta, ver, err := builder.GenerateTimestamp(prev)
	switch err.(type) {
	case nil:
		return &storage.MetaUpdate{Role: data.CanonicalTimestampRole, Version: ver, Data: meta}, nil
	case signed.ErrInsufficientSignatures, signed.ErrNoKeys:
		return nil, validation.ErrBadRoot{Msg: "root names a timestamp key the server does not hold: fetch it with GET .../timestamp.key and re-sign root"}
	default:
		return nil, validation.ErrValidation{Msg: err.Error()}
	}
}

// loadFromStore loads the current version of role into builder and
// returns its bytes.
func loadFromStore(gun data.GUN, role data.RoleName, builder tuf.RepoBuilder, store storage.MetaStore) ([]byte, error) {
	_, raw, err := store.GetCurrent(gun, role)
	if err != nil {
		return nil, err
	}
	return raw, builder.Load(role, raw, 1, true)
}
