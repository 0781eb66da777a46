package trust

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/trust/verify"
)

// States of a role in a Status. Expiring, expired and failed roles are
// due: they need someone to act.
const (
	// StateOK: nothing to do before the warning window ends.
	StateOK = "ok"
	// StateExpiring: expires within the warning window, and nobody
	// renews it by itself (the trust server renews timestamp and a
	// snapshot whose key it holds).
	StateExpiring = "expiring"
	// StateExpired: past its expiry as served; clients refuse it.
	StateExpired = "expired"
	// StateFailed: a delegation that did not verify (bad signature,
	// rolled back, ...); lookups that reach it are denied.
	StateFailed = "failed"
	// StateEmpty: delegated, but nothing signed into it yet.
	StateEmpty = "empty"
	// StateDisabled: delegated with no keys (a removed signer).
	StateDisabled = "disabled"
)

// Who renews a role's metadata before it expires.
const (
	// RenewServer: the trust server re-signs it when it has expired, on
	// read (the timestamp; the snapshot when this trust dir does not hold
	// its key, as with docker's server-managed snapshot).
	RenewServer = "trust-server"
	// RenewHere: this trust dir holds a threshold of its keys: signet
	// refresh re-signs it.
	RenewHere = "signet-refresh"
	// RenewKeyHolder: the keys are elsewhere; whoever holds them runs
	// signet refresh.
	RenewKeyHolder = "key-holder"
	// RenewRootKeys: root is re-signed by its root keys (a key ceremony).
	RenewRootKeys = "root-keys"
)

// RoleExpiry is one role of a Status. Its JSON is documented in
// docs/expiry.md; keep the two in step.
type RoleExpiry struct {
	Role      string    `json:"role"`
	State     string    `json:"state"`
	Version   int       `json:"version,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	KeyIDs    []string  `json:"keyIDs"`
	Threshold int       `json:"threshold"`
	RenewedBy string    `json:"renewedBy"`
	// Error says why a delegation failed.
	Error string `json:"error,omitempty"`
}

// Due reports whether someone must act: the role expires within the
// window, has expired, or failed verification.
func (r RoleExpiry) Due() bool {
	return r.State == StateExpiring || r.State == StateExpired || r.State == StateFailed
}

// Status is the expiry of every role of one repository.
type Status struct {
	GUN string
	// Checked is when the trust data was read; WarnUntil is Checked plus
	// the warning window.
	Checked, WarnUntil time.Time
	// Roles: root, targets, snapshot, timestamp, then delegations by
	// name.
	Roles []RoleExpiry
}

// Due reports whether any role is due.
func (s Status) Due() bool {
	for _, r := range s.Roles {
		if r.Due() {
			return true
		}
	}
	return false
}

// StatusOptions configure Repo.Status.
type StatusOptions struct {
	// Warn is the warning window: a role that expires within it is due,
	// unless the trust server renews it by itself. Zero: only expired or
	// failed roles are due.
	Warn time.Duration
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Status reads the repository's trust data through the engine, with
// every delegation and ignoring expiry (expired data is shown, not
// refused), and says per role when it expires and who renews it. Trust
// data that is missing or fails verification is a *DenyError, as for
// Read. It asks nothing of the trust server but the metadata and unlocks
// no key: whether a key is at hand is read from the key files' names.
func (r *Repo) Status(ctx context.Context, opts StatusOptions) (Status, error) {
	if opts.Warn < 0 {
		return Status{}, fmt.Errorf("status of %s: the warning window %s is negative", r.gun, opts.Warn)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t := now()
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, AllDelegations: true, IgnoreExpiry: true, Now: func() time.Time { return t }})
	if err != nil {
		return Status{}, err
	}
	repo, err := loadVerified(r.gun, res, keepKeys{r.cs})
	if err != nil {
		return Status{}, err
	}
	return Expiries(r.gun.String(), res, r.rolesHere(repo), opts.Warn, t), nil
}

// Expiries classifies the roles of verified trust data (read with
// IgnoreExpiry, so expired roles are there to see): here names the
// roles whose keys (a threshold) are at hand, which decides who renews
// the snapshot and the targets roles.
func Expiries(gun string, res *verify.Result, here map[string]bool, warn time.Duration, now time.Time) Status {
	s := Status{GUN: gun, Checked: now.UTC(), WarnUntil: now.Add(warn).UTC(), Roles: []RoleExpiry{}}
	for _, name := range roleOrder(res.Roles) {
		ro := res.Roles[name]
		e := RoleExpiry{Role: name, KeyIDs: append([]string{}, ro.KeyIDs...), Threshold: ro.Threshold}
		sort.Strings(e.KeyIDs)
		switch name {
		case data.CanonicalRootRole.String():
			e.RenewedBy = RenewRootKeys
		case data.CanonicalTimestampRole.String():
			e.RenewedBy = RenewServer
		case data.CanonicalSnapshotRole.String():
			e.RenewedBy = RenewServer
			if here[name] {
				e.RenewedBy = RenewHere
			}
		default:
			e.RenewedBy = RenewKeyHolder
			if here[name] {
				e.RenewedBy = RenewHere
			}
		}
		switch ro.Status {
		case verify.RoleEmpty:
			e.State = StateEmpty
		case verify.RoleDisabled:
			e.State = StateDisabled
		case verify.RoleFailed:
			e.State = StateFailed
			if ro.Err != nil {
				e.Error = ro.Err.Error()
			}
		default:
			e.Version, e.Expires = ro.Version, ro.Expires.UTC()
			switch {
			case !now.Before(ro.Expires):
				e.State = StateExpired
			case ro.Expires.Before(now.Add(warn)) && e.RenewedBy != RenewServer:
				e.State = StateExpiring
			default:
				e.State = StateOK
			}
		}
		s.Roles = append(s.Roles, e)
	}
	return s
}

// roleOrder is root, targets, snapshot, timestamp, then the delegations
// by name.
func roleOrder(roles map[string]*verify.Role) []string {
	var out, rest []string
	for _, r := range []string{"root", "targets", "snapshot", "timestamp"} {
		if _, ok := roles[r]; ok {
			out = append(out, r)
		}
	}
	for r := range roles {
		if data.IsDelegation(data.RoleName(r)) {
			rest = append(rest, r)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// loadVerified loads trust data the engine verified (res, read with
// KeepRaw, as Read does) into notary's tuf.Repo, to sign with cs, in
// loadOrder. Expiry is not checked: what is signed again gets a new one.
func loadVerified(gun data.GUN, res *verify.Result, cs signed.CryptoService) (*tuf.Repo, error) {
	b := tuf.NewRepoBuilder(gun, cs, trustpinning.TrustPinConfig{})
	for _, role := range loadOrder(res.Raw) {
		if err := b.Load(data.RoleName(role), res.Raw[role], 1, true); err != nil {
			return nil, fmt.Errorf("load the verified %s of %s: %w", role, gun, err)
		}
	}
	repo, _, err := b.Finish()
	if err != nil {
		return nil, fmt.Errorf("load the verified trust data of %s: %w", gun, err)
	}
	return repo, nil
}

// rolesHere names the roles of repo (snapshot and every loaded targets
// role) for which the trust dir, a YubiKey or a key from the environment
// holds a threshold of keys. Nothing is unlocked: key files are known
// by name.
func (r *Repo) rolesHere(repo *tuf.Repo) map[string]bool {
	held := r.heldKeys()
	out := map[string]bool{}
	check := func(br data.BaseRole) {
		if n, _ := countHeld(br, held); n >= br.Threshold && n > 0 {
			out[br.Name.String()] = true
		}
	}
	if br, err := repo.GetBaseRole(data.CanonicalSnapshotRole); err == nil {
		check(br)
	}
	for name := range repo.Targets {
		if br, err := targetsRoleKeys(repo, name); err == nil {
			check(br)
		}
	}
	return out
}

// heldKeys names the private keys at hand by ID (key files are named by
// it), without unlocking any.
func (r *Repo) heldKeys() map[string]bool {
	held := map[string]bool{}
	for id := range r.cs.ListAllKeys() {
		held[path.Base(id)] = true
	}
	return held
}

// targetsRoleKeys returns the keys and threshold of targets or a delegation.
func targetsRoleKeys(repo *tuf.Repo, role data.RoleName) (data.BaseRole, error) {
	if role == data.CanonicalTargetsRole {
		return repo.GetBaseRole(role)
	}
	dr, err := repo.GetDelegationRole(role)
	if err != nil {
		return data.BaseRole{}, err
	}
	return dr.BaseRole, nil
}

// countHeld counts the keys of br that held names, by the ID the role
// lists or the canonical ID key files are named by (a certificate's
// public key); total is the number of keys.
func countHeld(br data.BaseRole, held map[string]bool) (n, total int) {
	for id, k := range br.Keys {
		total++
		if held[id] {
			n++
			continue
		}
		if k == nil {
			continue
		}
		if cid, err := utils.CanonicalKeyID(k); err == nil && held[cid] {
			n++
		}
	}
	return n, total
}

// ParseDuration reads a lifetime or window as flags give it: a Go
// duration ("36h", "90m") or a whole number of days, weeks or years
// ("30d", "2w", "3y"; a year is 365 days, as notary counts). Negative
// values are refused.
func ParseDuration(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'y': 365 * 24 * time.Hour}
	if s != "" {
		if unit, ok := units[s[len(s)-1]]; ok {
			n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("duration %q: use a whole number of days, weeks or years (30d, 2w, 3y) or a Go duration (36h)", s)
			}
			if n > int64(1<<63-1)/int64(unit) {
				return 0, fmt.Errorf("duration %q is too long", s)
			}
			return time.Duration(n) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("duration %q: use a whole number of days, weeks or years (30d, 2w, 3y) or a Go duration (36h)", s)
	}
	return d, nil
}
