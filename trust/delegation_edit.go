package trust

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/trust/verify"
)

// editor changes a repository's delegations on top of its current trust
// data as the engine (trust/verify) verified it, with notary's tuf
// package: the same operations docker's and notary's clients stage
// (UpdateDelegationKeys, UpdateDelegationPaths, DeleteDelegation), plus
// threshold changes, which notary's changelist cannot express. publish
// then signs what changed with the keys the trust dir holds and uploads
// it in one request; the trust server signs snapshot and timestamp.
//
// It keeps every delegation that verifies before the change verifying
// after it (see keepValid): a role whose current signatures no longer
// meet its new keys and threshold is re-signed here, or the change is
// refused.
type editor struct {
	r    *Repo
	res  *verify.Result
	repo *tuf.Repo
	// listed has the roles whose metadata the verified snapshot lists.
	listed map[string]bool
	// touched are the delegations whose keys, threshold or paths changed.
	touched map[data.RoleName]bool
	out     *EditResult
}

// EditResult says what a change of delegations did.
type EditResult struct {
	// GUN is the repository.
	GUN string
	// Initialized: the repository's trust data was created first.
	Initialized bool
	// Published are the roles uploaded, sorted.
	Published []string
	// Resigned are delegations re-signed with keys of this trust dir, so
	// that what they signed stays valid under their new keys.
	Resigned []string
	// KeptKeys are key IDs a rotation left in place until the signer
	// signs with the new key.
	KeptKeys []string
	// Notes say what the user should know or do next.
	Notes []string
}

// loadEditor reads the repository's trust data through the engine, every
// delegation included, and loads what verified into a tuf.Repo that
// signs with this trust dir's keys. Expiry is the one check waived: what
// is signed again gets a new expiry (a repository whose targets expired
// because its key was lost is what RotateTargets is for).
func (r *Repo) loadEditor(ctx context.Context, out *EditResult) (*editor, error) {
	if r.keyErr != nil {
		return nil, r.keyErr
	}
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, AllDelegations: true, IgnoreExpiry: true})
	if err != nil {
		return nil, err
	}
	repo, err := loadVerified(r.gun, res, keepKeys{r.cs})
	if err != nil {
		return nil, err
	}
	listed := map[string]bool{}
	for name := range repo.Snapshot.Signed.Meta {
		listed[name] = true
	}
	return &editor{r: r, res: res, repo: repo, listed: listed, touched: map[data.RoleName]bool{}, out: out}, nil
}

// keepKeys is the trust dir's crypto service, except that it deletes no
// key: notary's tuf.Repo deletes the private key of a replaced base key
// (ReplaceBaseKeys) before anything is published, and a failed publish
// would then have lost the only key that can still sign.
type keepKeys struct{ *cryptoservice.CryptoService }

func (keepKeys) RemoveKey(string) error { return nil }

// loadOrder is the order a tuf builder accepts: the top-level roles, then
// delegations, parents before children.
func loadOrder(raw map[string][]byte) []string {
	order := []string{"root", "timestamp", "snapshot", "targets"}
	var dels []string
	for name := range raw {
		if data.IsDelegation(data.RoleName(name)) {
			dels = append(dels, name)
		}
	}
	sort.Slice(dels, func(i, j int) bool {
		di, dj := strings.Count(dels[i], "/"), strings.Count(dels[j], "/")
		if di != dj {
			return di < dj
		}
		return dels[i] < dels[j]
	})
	return append(order, dels...)
}

// delegation returns role as its parent delegates it, or false.
func (e *editor) delegation(role data.RoleName) (data.DelegationRole, bool) {
	dr, err := e.repo.GetDelegationRole(role)
	return dr, err == nil
}

// addKeys adds keys to role, creating it with threshold and paths if it
// does not exist. Keys it already lists change nothing (and need no key
// of the parent).
func (e *editor) addKeys(role data.RoleName, keys []data.PublicKey, threshold int, paths []string) error {
	dr, exists := e.delegation(role)
	var add data.KeyList
	for _, k := range keys {
		if _, ok := dr.Keys[k.ID()]; !ok {
			add = append(add, k)
		}
	}
	if exists && len(add) == 0 {
		e.touched[role] = true
		return nil
	}
	if threshold < 1 {
		threshold = 1
	}
	if err := e.repo.UpdateDelegationKeys(role, add, nil, threshold); err != nil {
		return e.parentErr(role, err)
	}
	if !exists {
		if err := e.repo.UpdateDelegationPaths(role, paths, nil, false); err != nil {
			return e.parentErr(role, err)
		}
	}
	e.touched[role] = true
	return nil
}

// removeKeys removes key IDs (as role lists them) from role.
func (e *editor) removeKeys(role data.RoleName, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	// notary's update removes nothing from a role it cannot find: the
	// IDs must be the ones the role lists.
	if err := e.repo.UpdateDelegationKeys(role, nil, ids, 0); err != nil {
		return e.parentErr(role, err)
	}
	e.touched[role] = true
	return nil
}

// setPaths adds and removes paths of an existing role.
func (e *editor) setPaths(role data.RoleName, add, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	if err := e.repo.UpdateDelegationPaths(role, add, remove, false); err != nil {
		return e.parentErr(role, err)
	}
	e.touched[role] = true
	return nil
}

// setThreshold changes the threshold of an existing role.
func (e *editor) setThreshold(role data.RoleName, threshold int) error {
	dr, ok := e.delegation(role)
	if !ok || threshold < 1 || dr.Threshold == threshold {
		return nil
	}
	if err := e.repo.VerifyCanSign(role.Parent()); err != nil {
		return e.parentErr(role, err)
	}
	p := e.repo.Targets[role.Parent()]
	i := utils.FindRoleIndex(p.Signed.Delegations.Roles, role)
	if i < 0 {
		return fmt.Errorf("set the threshold of %s in %s: %s does not delegate it", role, e.r.gun, role.Parent())
	}
	p.Signed.Delegations.Roles[i].Threshold = threshold
	p.Dirty = true
	e.touched[role] = true
	return nil
}

// deleteRole removes a delegation from its parent.
func (e *editor) deleteRole(role data.RoleName) error {
	if err := e.repo.DeleteDelegation(role); err != nil {
		return e.parentErr(role, err)
	}
	delete(e.touched, role)
	return nil
}

// parentErr says which key is needed to change role's delegation.
func (e *editor) parentErr(role data.RoleName, err error) error {
	var nk signed.ErrNoKeys
	if !errors.As(err, &nk) {
		return fmt.Errorf("change %s of %s: %w", role, e.r.gun, err)
	}
	if perr := e.r.opts.Passphrases.Err(); perr != nil {
		return fmt.Errorf("change %s of %s: %w", role, e.r.gun, perr)
	}
	parent := role.Parent()
	which := "the repository (targets) key"
	if parent != data.CanonicalTargetsRole {
		which = "a key of " + parent.String()
	}
	return fmt.Errorf("change %s of %s: %s (%s) is not in %s: run this where it is, or import it (signet key import)",
		role, e.r.gun, which, strings.Trim(shortIDs(nk.KeyIDs), "[]"), e.r.opts.TrustDir)
}

// publish signs every changed targets file, the snapshot if this trust
// dir holds its key, and uploads them in one request.
func (e *editor) publish(doing string) error {
	files := map[string][]byte{}
	for name, t := range e.repo.Targets {
		if !t.Dirty {
			continue
		}
		s, err := e.repo.SignTargets(name, data.DefaultExpires(data.CanonicalTargetsRole))
		if err != nil {
			return e.signErr(name, err)
		}
		if files[name.String()], err = canonicaljson.Marshal(s); err != nil {
			return fmt.Errorf("encode %s of %s: %w", name, e.r.gun, err)
		}
	}
	if len(files) == 0 {
		return nil
	}
	if snap, err := e.repo.GetBaseRole(data.CanonicalSnapshotRole); err == nil && e.holds(snap) >= snap.Threshold {
		s, err := e.repo.SignSnapshot(data.DefaultExpires(data.CanonicalSnapshotRole))
		if err != nil {
			return e.signErr(data.CanonicalSnapshotRole, err)
		}
		if files["snapshot"], err = canonicaljson.Marshal(s); err != nil {
			return fmt.Errorf("encode the snapshot of %s: %w", e.r.gun, err)
		}
	}
	if err := e.r.remote.SetMulti(files); err != nil {
		return e.r.wrap(doing, err)
	}
	for name := range files {
		e.out.Published = append(e.out.Published, name)
	}
	sort.Strings(e.out.Published)
	return nil
}

func (e *editor) signErr(role data.RoleName, err error) error {
	if perr := e.r.opts.Passphrases.Err(); perr != nil {
		return fmt.Errorf("sign %s of %s: %w", role, e.r.gun, perr)
	}
	var ins signed.ErrInsufficientSignatures
	if errors.As(err, &ins) {
		return fmt.Errorf("sign %s of %s: it needs %d signatures and %s holds %d of its keys: run this where enough of them are (or import them: signet key import)",
			role, e.r.gun, ins.NeededKeys, e.r.opts.TrustDir, ins.FoundKeys)
	}
	return fmt.Errorf("sign %s of %s: %w", role, e.r.gun, err)
}

// edit runs change on freshly read trust data, checks that delegations
// stay valid (fix says what to do when one would not), publishes, and
// retries from a fresh read when another publisher changed the
// repository meanwhile. It then reads the result back as a client would.
func (r *Repo) edit(ctx context.Context, doing string, out *EditResult, change func(e *editor) error, fix func(role data.RoleName) string) error {
	initialized := out.Initialized
	err := r.publishRetrying(ctx, doing, func() (bool, error) {
		*out = EditResult{GUN: r.gun.String(), Initialized: initialized}
		e, err := r.loadEditor(ctx, out)
		if err != nil {
			return false, err
		}
		if err := change(e); err != nil {
			return false, err
		}
		if err := e.keepValid(fix); err != nil {
			return false, fmt.Errorf("%s %s: %w", doing, r.gun, err)
		}
		return false, e.publish(doing)
	})
	if err != nil || len(out.Published) == 0 {
		return err
	}
	if _, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server, Transport: r.opts.Transport, AllDelegations: true}); err != nil {
		return fmt.Errorf("%s was published, but reading it back failed: %w", strings.Join(out.Published, ", "), err)
	}
	return nil
}

// shortIDs lists key IDs by their first 12 hex digits, sorted.
func shortIDs(ids []string) string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if len(id) > 12 {
			id = id[:12]
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}
