package trust

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/trust/verify"
)

// Delegation is one delegation of a repository as the engine verified it.
type Delegation struct {
	Role      string
	Status    verify.RoleStatus
	KeyIDs    []string
	Threshold int
	// Paths it may sign ("" is every tag).
	Paths []string
	// Tags it signs, sorted, when verified.
	Tags []string
	// Err says why, for a failed delegation.
	Err error
}

// Delegations lists res's delegations (read with AllDelegations), sorted
// by name.
func Delegations(res *verify.Result) []Delegation {
	var out []Delegation
	for name, r := range res.Roles {
		if !data.IsDelegation(data.RoleName(name)) {
			continue
		}
		d := Delegation{Role: name, Status: r.Status, KeyIDs: slices.Sorted(slices.Values(r.KeyIDs)), Threshold: r.Threshold,
			Paths: r.Paths, Tags: tagsOf(r)}
		if r.Err != nil {
			d.Err = r.Err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Role < out[j].Role })
	return out
}

func tagsOf(r *verify.Role) []string {
	if r == nil {
		return nil
	}
	tags := make([]string, 0, len(r.Targets))
	for t := range r.Targets {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return tags
}

// CheckDelegationRole refuses names that are not delegations.
func CheckDelegationRole(role string) error {
	if !data.IsDelegation(data.RoleName(role)) {
		return fmt.Errorf("delegation %q: name it targets/<name> (letters, digits, -, _ and . after targets/)", role)
	}
	return nil
}

// PublicKey returns the public part of a key this trust dir (or the
// environment, or a YubiKey) holds; unlocking it may need its passphrase.
func (r *Repo) PublicKey(id string) (data.PublicKey, error) {
	if r.keyErr != nil {
		return nil, r.keyErr
	}
	k, _, err := r.cs.GetPrivateKey(id)
	if err != nil {
		if perr := r.opts.Passphrases.Err(); perr != nil {
			return nil, fmt.Errorf("key %s: %w", id, perr)
		}
		return nil, fmt.Errorf("key %s: not in %s: pass a PEM file of the public key, or import the key (signet key import)", id, r.opts.TrustDir)
	}
	return data.PublicKeyFromPrivate(k), nil
}

// AddDelegation adds keys and paths to role, creating it if needed (with
// threshold, default 1, and paths, default every tag), and sets its
// threshold when threshold > 0. A raised threshold that leaves the role's
// current signatures short is met by re-signing with the keys this trust
// dir holds, or refused.
func (r *Repo) AddDelegation(ctx context.Context, role string, keys []data.PublicKey, threshold int, paths []string) (EditResult, error) {
	var out EditResult
	if err := CheckDelegationRole(role); err != nil {
		return out, err
	}
	if threshold < 0 {
		return out, fmt.Errorf("add %s: threshold %d: it must be 1 or more", role, threshold)
	}
	rn := data.RoleName(role)
	err := r.edit(ctx, "add "+role+" to", &out, func(e *editor) error {
		dr, exists := e.delegation(rn)
		if !exists {
			if len(keys) == 0 {
				return fmt.Errorf("add %s to %s: a new delegation needs at least one key: pass --key", role, r.gun)
			}
			p := paths
			if len(p) == 0 {
				p = []string{""}
			}
			if err := e.addKeys(rn, keys, threshold, p); err != nil {
				return err
			}
		} else {
			if err := e.addKeys(rn, keys, dr.Threshold, nil); err != nil {
				return err
			}
			if err := e.setPaths(rn, notIn(paths, dr.Paths), nil); err != nil {
				return err
			}
			if err := e.setThreshold(rn, threshold); err != nil {
				return err
			}
		}
		after, _ := e.delegation(rn)
		if after.Threshold > len(after.Keys) {
			return fmt.Errorf("add %s to %s: threshold %d but it has %d keys: add keys (--key) or lower --threshold", role, r.gun, after.Threshold, len(after.Keys))
		}
		return nil
	}, func(data.RoleName) string {
		return "sign it again with enough of its keys: run this where the trust dir holds them, or lower --threshold"
	})
	return out, err
}

// RemoveDelegation removes key IDs (or unique prefixes of at least 8
// hex digits) and paths from role; with neither, it removes the whole
// delegation. Removing what its signed tags depend on (the role, its last
// key, the paths of signed tags) needs yes.
func (r *Repo) RemoveDelegation(ctx context.Context, role string, keyRefs, paths []string, yes bool) (EditResult, error) {
	var out EditResult
	if err := CheckDelegationRole(role); err != nil {
		return out, err
	}
	rn := data.RoleName(role)
	err := r.edit(ctx, "remove "+role+" from", &out, func(e *editor) error {
		dr, ok := e.delegation(rn)
		if !ok {
			return fmt.Errorf("remove %s from %s: no such delegation: signet delegation list %s shows them", role, r.gun, r.gun)
		}
		tags := tagsOf(e.res.Roles[role])
		if len(keyRefs) == 0 && len(paths) == 0 {
			if len(tags) > 0 && !yes {
				return fmt.Errorf("remove %s from %s: it signs %s, which it then no longer vouches for%s: add --yes", role, r.gun, listTags(tags), e.releasesNote(rn, tags))
			}
			return e.deleteRole(rn)
		}
		ids, err := matchKeys(dr.BaseRole, keyRefs)
		if err != nil {
			return fmt.Errorf("remove keys from %s of %s: %w", role, r.gun, err)
		}
		left := len(dr.Keys) - len(ids)
		switch {
		case left == 0 && len(tags) > 0 && !yes:
			return fmt.Errorf("remove keys from %s of %s: these are its last keys: it is then disabled, and the tags it signs (%s) no longer count%s: add --yes",
				role, r.gun, listTags(tags), e.releasesNote(rn, tags))
		case left > 0 && left < dr.Threshold:
			return fmt.Errorf("remove keys from %s of %s: it needs %d signatures and would keep %d keys: lower its threshold first (signet delegation add %s %s --threshold %d)",
				role, r.gun, dr.Threshold, left, r.gun, role, left)
		}
		if lost := outside(tags, notIn(dr.Paths, paths)); len(lost) > 0 && !yes {
			return fmt.Errorf("remove paths from %s of %s: %s fall outside the paths it keeps and stop counting: add --yes", role, r.gun, listTags(lost))
		}
		if err := e.removeKeys(rn, ids); err != nil {
			return err
		}
		return e.setPaths(rn, nil, paths)
	}, func(data.RoleName) string {
		return "it is signed by the keys being removed: run this where the trust dir holds enough of the keys it keeps, so signet signs it again"
	})
	return out, err
}

// releasesNote says what a change to targets/releases means for docker's
// readers.
func (e *editor) releasesNote(role data.RoleName, tags []string) string {
	if role != ReleasesRole {
		return ""
	}
	targets := tagsOf(e.res.Roles[data.CanonicalTargetsRole.String()])
	only := notIn(tags, targets)
	note := ""
	if len(only) > 0 {
		note = "; readers stop serving the tags signed only there (" + listTags(only) + ")"
	}
	if len(targets) > 0 {
		note += "; tags in targets stay (" + listTags(targets) + ")"
	}
	return note
}

// matchKeys finds the key IDs br lists for refs: full IDs, canonical IDs
// of certificate keys, or unique prefixes of at least 8 hex digits.
func matchKeys(br data.BaseRole, refs []string) ([]string, error) {
	var out []string
	for _, ref := range refs {
		var found []string
		for id, k := range br.Keys {
			canon, _ := utils.CanonicalKeyID(k)
			if ref == id || ref == canon || (len(ref) >= 8 && (strings.HasPrefix(id, ref) || strings.HasPrefix(canon, ref))) {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("key %s is not one of its keys %s", ref, shortIDs(br.ListKeyIDs()))
		case 1:
			if !slices.Contains(out, found[0]) {
				out = append(out, found[0])
			}
		default:
			return nil, fmt.Errorf("key %s matches several of its keys: give more digits", ref)
		}
	}
	return out, nil
}

// notIn returns the elements of list not in set.
func notIn(list, set []string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(set, v) {
			out = append(out, v)
		}
	}
	return out
}

// outside returns the tags no path admits.
func outside(tags, paths []string) []string {
	var out []string
	for _, t := range tags {
		if !slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(t, p) }) {
			out = append(out, t)
		}
	}
	return out
}

// listTags names up to five tags.
func listTags(tags []string) string {
	if len(tags) <= 5 {
		return strings.Join(tags, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(tags[:5], ", "), len(tags)-5)
}
