package trust

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	store "github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust/verify"
)

// AddSigner adds a docker signer: its keys go into targets/<name> and
// targets/releases (both for every tag), as `docker trust signer add`
// does, and a repository without trust data is initialised first.
func (r *Repo) AddSigner(ctx context.Context, name string, keys []data.PublicKey) (EditResult, error) {
	var out EditResult
	role, err := SignerRole(name)
	if err != nil {
		return out, err
	}
	if len(keys) == 0 {
		return out, fmt.Errorf("add signer %s: pass its public key (--key)", name)
	}
	created, err := r.initIfMissing(ctx)
	if err != nil {
		return out, err
	}
	out.Initialized = created
	var stale []string
	err = r.edit(ctx, "add signer "+name+" to", &out, func(e *editor) error {
		stale = nil
		for _, rn := range []data.RoleName{role, ReleasesRole} {
			dr, exists := e.delegation(rn)
			if err := e.addKeys(rn, keys, 1, []string{""}); err != nil {
				return err
			}
			if exists && !slices.Contains(dr.Paths, "") {
				if err := e.setPaths(rn, []string{""}, nil); err != nil {
					return err
				}
			}
		}
		// targets/<name> may hold metadata of a former key of the same
		// signer: the signer replaces it (see the note); releases must
		// never fail, as every tag would be denied.
		if _, verified := e.res.Raw[role.String()]; !verified && e.listed[role.String()] {
			if dr, _ := e.delegation(role); e.judge(role, dr.BaseRole) == wouldFail {
				delete(e.touched, role)
				stale = append(stale, role.String())
			}
		}
		return nil
	}, func(rn data.RoleName) string {
		return fmt.Sprintf("it holds metadata signed by removed keys; run this where %s's private key is too (in the trust dir, or SIGNET_SIGNER_KEY_FILE), so signet starts it again empty, signed by that key", name)
	})
	for _, role := range stale {
		out.Notes = append(out.Notes, fmt.Sprintf("%s holds metadata signed by a former key and fails verification until %s replaces it: %s runs this same command where the new private key is (trust dir or SIGNET_SIGNER_KEY_FILE)", role, name, name))
	}
	return out, err
}

// initIfMissing initialises and publishes the repository's trust data
// if the trust server has none (asking for root.json only: notary's
// client would read, and warn about, every delegation).
func (r *Repo) initIfMissing(ctx context.Context) (bool, error) {
	_, err := r.remote.GetSized(data.CanonicalRootRole.String(), verify.MaxRootBytes)
	var nf store.ErrMetaNotFound
	switch {
	case err == nil:
		return false, nil
	case !errors.As(err, &nf):
		return false, r.wrap("read trust data of", err)
	}
	created, err := r.Init(ctx)
	if err != nil || !created {
		return false, err
	}
	return true, r.Publish(ctx)
}

// RemoveSigner removes a docker signer, as `docker trust signer remove`
// does: its keys leave targets/releases and targets/<name> is deleted.
// Removing the last key of a targets/releases that signs tags needs yes.
// When the current targets/releases is signed only by the signer's keys,
// it is re-signed with another releases key this trust dir holds, or the
// removal is refused (every tag would be denied).
func (r *Repo) RemoveSigner(ctx context.Context, name string, yes bool) (EditResult, error) {
	var out EditResult
	role, err := SignerRole(name)
	if err != nil {
		return out, err
	}
	var others []string
	err = r.edit(ctx, "remove signer "+name+" from", &out, func(e *editor) error {
		dr, ok := e.delegation(role)
		if !ok {
			return fmt.Errorf("remove signer %s from %s: no such signer: signet delegation list %s shows the signers", name, r.gun, r.gun)
		}
		var ids []string
		rel, hasRel := e.delegation(ReleasesRole)
		for id := range rel.Keys {
			if _, ok := dr.Keys[id]; ok {
				ids = append(ids, id)
			}
		}
		others = nil
		for id := range rel.Keys {
			if !slices.Contains(ids, id) {
				others = append(others, id)
			}
		}
		if hasRel && len(ids) > 0 && len(others) == 0 && !yes {
			tags := tagsOf(e.res.Roles[ReleasesRole.String()])
			if len(tags) > 0 {
				return fmt.Errorf("remove signer %s from %s: it holds the last key of targets/releases%s: add --yes", name, r.gun, e.releasesNote(ReleasesRole, tags))
			}
		}
		if err := e.removeKeys(ReleasesRole, ids); err != nil {
			return err
		}
		return e.deleteRole(role)
	}, func(data.RoleName) string {
		return fmt.Sprintf("it is signed only by %s's key, so every tag would be denied: run this where another releases key %s is (in the trust dir, or SIGNET_SIGNER_KEY_FILE) so signet signs it again, or remove those signers first",
			name, shortIDs(others))
	})
	return out, err
}

// RotateSigner replaces the keys of a signer (targets/<name>, and
// targets/releases where it holds the signer's keys) with keys, keeping
// what it signed valid: its metadata is re-signed with the new keys when
// this trust dir holds them. Otherwise the old keys stay listed beside
// the new ones (out.KeptKeys) until the signer has signed with a new key;
// running RotateSigner again then drops them.
func (r *Repo) RotateSigner(ctx context.Context, name string, keys []data.PublicKey) (EditResult, error) {
	var out EditResult
	role, err := SignerRole(name)
	if err != nil {
		return out, err
	}
	if len(keys) == 0 {
		return out, fmt.Errorf("rotate signer %s: pass its new public key (--key)", name)
	}
	newIDs := map[string]bool{}
	for _, k := range keys {
		newIDs[k.ID()] = true
	}
	err = r.edit(ctx, "rotate the key of signer "+name+" of", &out, func(e *editor) error {
		dr, ok := e.delegation(role)
		if !ok {
			return fmt.Errorf("rotate signer %s of %s: no such signer: add it (signet signer add)", name, r.gun)
		}
		if dr.Threshold > len(keys) {
			return fmt.Errorf("rotate signer %s of %s: it needs %d signatures: pass %d new keys (--key)", name, r.gun, dr.Threshold, dr.Threshold)
		}
		var old []string
		for id := range dr.Keys {
			if !newIDs[id] {
				old = append(old, id)
			}
		}
		sort.Strings(old)
		rel, _ := e.delegation(ReleasesRole)
		var relOld []string
		for _, id := range old {
			if _, ok := rel.Keys[id]; ok {
				relOld = append(relOld, id)
			}
		}
		roles := []data.RoleName{role}
		if len(relOld) > 0 {
			roles = append(roles, ReleasesRole)
		}
		for _, rn := range roles {
			if err := e.addKeys(rn, keys, 1, []string{""}); err != nil {
				return err
			}
		}
		// Drop the old keys only if what they signed stays valid.
		for _, rn := range roles {
			after, _ := e.delegation(rn)
			if e.judge(rn, without(after.BaseRole, old)) == wouldFail {
				out.KeptKeys = old
				out.Notes = append(out.Notes, fmt.Sprintf("the old key(s) %s stay listed until %s signs with the new key (any signet sign of %s re-signs %s); then run this again to drop them",
					shortIDs(old), name, r.gun, strings.Join(roleNames(roles), " and ")))
				return nil
			}
		}
		if err := e.removeKeys(role, old); err != nil {
			return err
		}
		return e.removeKeys(ReleasesRole, relOld)
	}, func(data.RoleName) string {
		return "sign it with the new key: run this where the new private key is (trust dir or SIGNET_SIGNER_KEY_FILE)"
	})
	return out, err
}

// validSigner is docker's rule for signer names.
var validSigner = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// SignerRole returns targets/<name> for a docker signer name.
func SignerRole(name string) (data.RoleName, error) {
	if !validSigner.MatchString(name) {
		return "", fmt.Errorf("signer name %q: use lower-case letters, digits, - and _, starting with a letter or digit", name)
	}
	if name == "releases" {
		return "", errors.New("signer name releases: it is reserved for targets/releases: choose another name")
	}
	return data.RoleName("targets/" + name), nil
}

// without is br less the keys ids.
func without(br data.BaseRole, ids []string) data.BaseRole {
	keys := map[string]data.PublicKey{}
	for id, k := range br.Keys {
		if !slices.Contains(ids, id) {
			keys[id] = k
		}
	}
	return data.BaseRole{Name: br.Name, Keys: keys, Threshold: br.Threshold}
}

func roleNames(roles []data.RoleName) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = r.String()
	}
	return out
}
