package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust/verify"
)

// DefaultLifetime is how long refreshed targets, delegations and a
// client-held snapshot live unless told otherwise: notary's 3 years.
const DefaultLifetime = notary.NotaryTargetsExpiry

// RefreshOptions say which roles Refresh re-signs and for how long.
type RefreshOptions struct {
	// Roles to re-sign: "targets", delegations ("targets/releases"),
	// or "snapshot" when this trust dir holds its key. Empty means every
	// verified targets role whose keys are at hand, and the snapshot if
	// its key is. A role named here that cannot be re-signed (no keys
	// here, not in the trust data, failed verification) is an error.
	Roles []string
	// Lifetimes maps a role to how long its new version lives; the
	// entry "" applies to roles not named. Without one, DefaultLifetime.
	Lifetimes map[string]time.Duration
	// Within keeps only roles that expire within it from now; zero
	// re-signs every role chosen, whatever its expiry.
	Within time.Duration
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Refreshed is one role Refresh re-signed.
type Refreshed struct {
	Role                   string
	OldVersion, NewVersion int
	OldExpires, NewExpires time.Time
}

// Skipped is a role Refresh left alone, and why.
type Skipped struct {
	Role   string
	Reason string
}

// RefreshResult says what Refresh did. Nothing refreshed (every role
// expires after the window) is not an error.
type RefreshResult struct {
	Refreshed []Refreshed
	Skipped   []Skipped
}

// Refresh re-signs the repository's targets and delegations (and its
// snapshot when the trust dir holds that key) with new expiries and
// bumped versions, using keys at hand, and uploads them in one publish;
// the trust server then signs a new snapshot (when it holds that key)
// and timestamp. The current trust data is read through the engine
// (trust/verify), ignoring only expiry, so expired roles can be renewed.
// Running it again re-signs again, with higher versions. If another
// publisher changes the repository meanwhile, Refresh reads the new
// trust data and re-signs on top of it (a few times at most).
func (r *Repo) Refresh(ctx context.Context, opts RefreshOptions) (RefreshResult, error) {
	var out RefreshResult
	if err := checkRefreshOptions(opts); err != nil {
		return out, err
	}
	if r.keyErr != nil {
		return out, fmt.Errorf("refresh %s: %w", r.gun, r.keyErr)
	}
	err := r.publishRetrying(ctx, "refresh", func() (bool, error) {
		var err error
		out, err = r.refreshOnce(ctx, opts)
		return false, err
	})
	return out, err
}

func checkRefreshOptions(opts RefreshOptions) error {
	for role, d := range opts.Lifetimes {
		if d <= 0 {
			if role == "" {
				return fmt.Errorf("refresh: the lifetime %s must be positive", d)
			}
			return fmt.Errorf("refresh: the lifetime %s of %s must be positive", d, role)
		}
		if role != "" && !refreshable(role) {
			return fmt.Errorf("refresh: %s is not re-signed by refresh: name targets, a targets/... delegation or snapshot", role)
		}
	}
	for _, role := range opts.Roles {
		if !refreshable(role) {
			return fmt.Errorf("refresh %s: name targets, a targets/... delegation or snapshot (the trust server renews the timestamp, root keys renew root)", role)
		}
	}
	if opts.Within < 0 {
		return fmt.Errorf("refresh: the window %s is negative", opts.Within)
	}
	return nil
}

func refreshable(role string) bool {
	rn := data.RoleName(role)
	return rn == data.CanonicalTargetsRole || rn == data.CanonicalSnapshotRole || data.IsDelegation(rn)
}

// refreshOnce is one read, sign and upload.
func (r *Repo) refreshOnce(ctx context.Context, opts RefreshOptions) (RefreshResult, error) {
	var out RefreshResult
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t := now()
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, AllDelegations: true, IgnoreExpiry: true, Now: func() time.Time { return t }})
	if err != nil {
		return out, err
	}
	repo, err := loadVerified(r.gun, res, keepKeys{r.cs})
	if err != nil {
		return out, err
	}
	plan, err := r.planRefresh(res, repo, opts, t)
	if err != nil {
		return out, err
	}
	out.Skipped = plan.skipped
	files := map[string][]byte{}
	for _, role := range plan.targets {
		old := res.Roles[role.String()]
		sg, err := repo.SignTargets(role, t.Add(lifetime(opts, role)))
		if err != nil {
			return out, r.wrap("re-sign "+role.String()+" of", err)
		}
		b, err := canonicaljson.Marshal(sg)
		if err != nil {
			return out, fmt.Errorf("encode %s of %s: %w", role, r.gun, err)
		}
		files[role.String()] = b
		tg := repo.Targets[role]
		out.Refreshed = append(out.Refreshed, Refreshed{Role: role.String(), OldVersion: old.Version, NewVersion: tg.Signed.Version,
			OldExpires: old.Expires.UTC(), NewExpires: tg.Signed.Expires.UTC()})
	}
	if len(files) == 0 && !plan.snapshot {
		return out, nil
	}
	if plan.snapshotHere {
		// The server cannot sign a snapshot whose key it does not hold:
		// sign the next one here, naming what is uploaded.
		role := data.CanonicalSnapshotRole
		sn, ref, err := r.nextSnapshot(res, repo, files, t.Add(lifetime(opts, role)))
		if err != nil {
			return out, err
		}
		files[role.String()] = sn
		out.Refreshed = append(out.Refreshed, ref)
	}
	if err := r.remote.SetMulti(files); err != nil {
		return out, r.wrap("publish the refreshed trust data of", err)
	}
	return out, nil
}

// refreshPlan is what one refresh signs.
type refreshPlan struct {
	targets []data.RoleName
	// snapshot: re-sign the snapshot for itself (named, or due);
	// snapshotHere: this trust dir holds its key, so any upload carries
	// a snapshot signed here.
	snapshot, snapshotHere bool
	skipped                []Skipped
}

// planRefresh picks the roles to re-sign: those named (each must be
// re-signable here), or every targets role whose keys are at hand; then
// only those expiring within the window, if one is given.
func (r *Repo) planRefresh(res *verify.Result, repo *tuf.Repo, opts RefreshOptions, now time.Time) (refreshPlan, error) {
	var p refreshPlan
	here := r.rolesHere(repo)
	snap := data.CanonicalSnapshotRole.String()
	p.snapshotHere = here[snap]
	for role := range opts.Lifetimes {
		if _, ok := res.Roles[role]; role != "" && !ok {
			return p, fmt.Errorf("refresh %s: %s has no role %s (see signet status)", r.gun, r.gun, role)
		}
	}
	named := len(opts.Roles) > 0
	var candidates []string
	if named {
		candidates = slices.Clone(opts.Roles)
	} else {
		candidates = roleOrder(res.Roles)
	}
	sort.Slice(candidates, func(i, j int) bool {
		return depth(candidates[i]) < depth(candidates[j]) || depth(candidates[i]) == depth(candidates[j]) && candidates[i] < candidates[j]
	})
	due := func(ro *verify.Role) bool { return opts.Within == 0 || ro.Expires.Before(now.Add(opts.Within)) }
	for _, name := range slices.Compact(candidates) {
		ro, ok := res.Roles[name]
		if !refreshable(name) {
			continue // root and timestamp, listed by roleOrder
		}
		why := ""
		switch {
		case !ok:
			why = "not in the trust data"
		case ro.Status == verify.RoleEmpty:
			why = "empty: nothing signed into it yet"
		case ro.Status == verify.RoleDisabled:
			why = "disabled: it has no keys"
		case ro.Status == verify.RoleFailed:
			why = fmt.Sprintf("failed verification (%v): fix it before renewing it", ro.Err)
		case name == snap && !here[name]:
			if !named {
				continue // the server's: it re-signs it when it expires
			}
			why = "its key is not in " + r.opts.TrustDir + ": the trust server re-signs it when it expires"
		case !here[name]:
			why = r.keysMissing(repo, data.RoleName(name))
		}
		if why != "" {
			if named {
				return p, fmt.Errorf("refresh %s of %s: %s", name, r.gun, why)
			}
			p.skipped = append(p.skipped, Skipped{Role: name, Reason: why})
			continue
		}
		if !due(ro) {
			p.skipped = append(p.skipped, Skipped{Role: name, Reason: fmt.Sprintf("expires %s, after the window", ro.Expires.UTC().Format(time.RFC3339))})
			continue
		}
		if name == snap {
			p.snapshot = true
			continue
		}
		p.targets = append(p.targets, data.RoleName(name))
	}
	if p.snapshotHere && (p.snapshot || len(p.targets) > 0) {
		// Signed with whatever is uploaded, window or not.
		p.skipped = slices.DeleteFunc(p.skipped, func(s Skipped) bool { return s.Role == snap })
	}
	return p, nil
}

// keysMissing says why a targets role cannot be signed here.
func (r *Repo) keysMissing(repo *tuf.Repo, role data.RoleName) string {
	held := r.heldKeys()
	br, err := targetsRoleKeys(repo, role)
	if err != nil {
		return err.Error()
	}
	n, total := countHeld(br, held)
	if n == 0 {
		return fmt.Sprintf("no key of it in %s (its keys: %s): whoever holds one runs signet refresh", r.opts.TrustDir, joinIDs(br))
	}
	return fmt.Sprintf("%d of its %d keys are in %s, and it needs %d: sign where the others are (a key ceremony)", n, total, r.opts.TrustDir, br.Threshold)
}

func depth(role string) int { return strings.Count(role, "/") }

// lifetime is how long role's new version lives.
func lifetime(opts RefreshOptions, role data.RoleName) time.Duration {
	if d, ok := opts.Lifetimes[role.String()]; ok {
		return d
	}
	if d, ok := opts.Lifetimes[""]; ok {
		return d
	}
	return DefaultLifetime
}

// nextSnapshot signs the snapshot after the verified one with the
// snapshot key at hand: version bumped, the new expiry, and the hashes
// of the files being uploaded (everything else as it was).
func (r *Repo) nextSnapshot(res *verify.Result, repo *tuf.Repo, files map[string][]byte, expires time.Time) ([]byte, Refreshed, error) {
	var old data.SignedSnapshot
	if err := json.Unmarshal(res.Raw["snapshot"], &old); err != nil {
		return nil, Refreshed{}, fmt.Errorf("parse the snapshot of %s: %w", r.gun, err)
	}
	ref := Refreshed{Role: "snapshot", OldVersion: old.Signed.Version, OldExpires: old.Signed.Expires.UTC()}
	br, err := repo.GetBaseRole(data.CanonicalSnapshotRole)
	if err != nil {
		return nil, ref, fmt.Errorf("read the snapshot role of %s: %w", r.gun, err)
	}
	b, sn, err := r.signNextSnapshot(res.Raw["snapshot"], files, br, expires)
	if err != nil {
		return nil, ref, err
	}
	ref.NewVersion, ref.NewExpires = sn.Signed.Version, expires.UTC()
	return b, ref, nil
}

// ParseLifetimes reads --expires values: "ROLE=DURATION" for one role,
// or "DURATION" for every role not named (see ParseDuration).
func ParseLifetimes(values []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, v := range values {
		role, dur, ok := strings.Cut(v, "=")
		if !ok {
			role, dur = "", v
		}
		if _, dup := out[role]; dup {
			if role == "" {
				return nil, errors.New("--expires: two default lifetimes given; give one DURATION and ROLE=DURATION for the others")
			}
			return nil, fmt.Errorf("--expires: %s given twice", role)
		}
		d, err := ParseDuration(dur)
		if err != nil {
			return nil, fmt.Errorf("--expires %q: %w", v, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("--expires %q: give a positive lifetime", v)
		}
		out[role] = d
	}
	return out, nil
}
