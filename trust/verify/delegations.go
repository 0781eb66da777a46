package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
)

// loadDelegations walks the delegation tree from targets, parents before
// children, and gives each delegation it meets a status. It loads only
// the delegations req asks for (and their parents), or all of them with
// req.AllDelegations. A delegation that fails verification is marked
// failed and its subtree is not walked; an I/O failure (the trust server
// went away mid-update) is returned, since nothing was learned.
func loadDelegations(ctx context.Context, g data.GUN, b tuf.RepoBuilder, f Fetcher, req Request,
	targets *data.SignedTargets, floor func(data.RoleName) int, raw map[string][]byte) (map[string]*Role, error) {
	want := map[string]bool{}
	for _, r := range req.Roles {
		for name := r; data.IsDelegation(data.RoleName(name)); name = path.Dir(name) {
			want[name] = true
		}
	}
	type pending struct {
		role        *data.Role
		parent      string
		parentPaths []string
	}
	children := func(t *data.SignedTargets, parent string, paths []string) []pending {
		var out []pending
		for _, d := range t.Signed.Delegations.Roles {
			out = append(out, pending{role: d, parent: parent, parentPaths: paths})
		}
		return out
	}
	roles := map[string]*Role{}
	queue := children(targets, data.CanonicalTargetsRole.String(), []string{""})
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		name := p.role.Name.String()
		if !req.AllDelegations && !want[name] {
			continue
		}
		if _, seen := roles[name]; seen {
			continue // delegated twice: the first (nearest) one counts
		}
		r := &Role{Name: name, KeyIDs: append([]string(nil), p.role.KeyIDs...), Threshold: p.role.Threshold,
			Paths: restrictPaths(p.parentPaths, p.role.Paths)}
		roles[name] = r
		if len(roles) > MaxDelegations {
			r.fail(&Error{GUN: g.String(), Role: name, Reason: ReasonTooLarge, Err: fmt.Errorf("more than %d delegations", MaxDelegations)})
			break
		}
		if path.Dir(name) != p.parent || !data.IsDelegation(p.role.Name) {
			r.fail(&Error{GUN: g.String(), Role: name, Reason: ReasonMalformed, Err: fmt.Errorf("delegated by %s, which may only delegate to its own children", p.parent)})
			continue
		}
		if len(p.role.KeyIDs) == 0 {
			// `docker trust signer remove` leaves a delegation with no
			// keys: disabled, not broken.
			r.Status = RoleDisabled
			continue
		}
		if !b.GetConsistentInfo(p.role.Name).ChecksumKnown() {
			if v := req.Prev.version(p.role.Name); v > 0 {
				// It was verified before and is still delegated with
				// keys: a snapshot that drops it would let lookups fall
				// through to older entries in targets.
				r.fail(&Error{GUN: g.String(), Role: name, Reason: ReasonRollback,
					Err: fmt.Errorf("version %d was verified before, and the snapshot no longer lists it", v)})
				continue
			}
			r.Status = RoleEmpty
			continue
		}
		body, err := loadByHash(ctx, g, b, f, p.role.Name, floor(p.role.Name))
		if err != nil {
			var ve *Error
			if !errors.As(err, &ve) {
				return nil, err
			}
			r.fail(ve)
			continue
		}
		t, err := parseTargets(body, p.role.Name)
		if err != nil {
			r.fail(classify(g, p.role.Name, err).(*Error))
			continue
		}
		r.Status = RoleVerified
		r.Version, r.Expires = t.Signed.Version, t.Signed.Expires
		r.Targets = targetFiles(t, r.Paths)
		raw[name] = body
		queue = append(queue, children(t, name, r.Paths)...)
	}
	// A wanted role below a role that did not verify inherits its fate:
	// it cannot be trusted, and a lookup must not mistake it for absent.
	for name := range want {
		if _, ok := roles[name]; ok {
			continue
		}
		for anc := path.Dir(name); data.IsDelegation(data.RoleName(anc)); anc = path.Dir(anc) {
			a, ok := roles[anc]
			if !ok || a.Status == RoleVerified {
				continue
			}
			r := &Role{Name: name, Status: a.Status}
			if a.Status == RoleFailed {
				r.Err = &Error{GUN: g.String(), Role: name, Reason: a.Err.Reason, Err: fmt.Errorf("delegated by %s, which failed: %w", anc, a.Err)}
			}
			roles[name] = r
			break
		}
	}
	return roles, nil
}

// restrictPaths keeps the child's paths that lie inside the parent's
// (TUF §5.6.7.2, notary's RestrictDelegationPathPrefixes).
func restrictPaths(parent, child []string) []string {
	var out []string
	for _, p := range child {
		if hasPrefix(p, parent) {
			out = append(out, p)
		}
	}
	return out
}

// parseTargets parses verified targets bytes (already checked by the
// builder) to read their targets and delegations.
func parseTargets(raw []byte, role data.RoleName) (*data.SignedTargets, error) {
	var s data.Signed
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", role, err)
	}
	t, err := data.TargetsFromSigned(&s, role)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", role, err)
	}
	return t, nil
}

// budget caps the bytes all fetches of one update may read together, so
// a snapshot declaring many large delegations cannot make a reader
// download without bound.
type budget struct {
	f    Fetcher
	left int64
}

func (b *budget) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	if max > b.left {
		max = b.left
	}
	if max <= 0 {
		return nil, &TooLargeError{Name: name, Max: 0}
	}
	body, err := b.f.Fetch(ctx, name, max)
	b.left -= int64(len(body))
	if err != nil {
		return nil, err
	}
	if err := checkShape(body); err != nil {
		return nil, &MalformedError{Name: name, Err: err}
	}
	return body, nil
}

// MalformedError is metadata that is not {"signed": {...}, "signatures":
// [...]} at all.
type MalformedError struct {
	Name string
	Err  error
}

func (e *MalformedError) Error() string { return fmt.Sprintf("%s: %v", e.Name, e.Err) }
func (e *MalformedError) Unwrap() error { return e.Err }

// checkShape refuses metadata notary's verifier would choke on: its
// signature check dereferences "signed" without checking it is there
// (a file without it panics notary's tuf package).
func checkShape(raw []byte) error {
	var env struct {
		Signed     *json.RawMessage  `json:"signed"`
		Signatures []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("not metadata JSON: %w", err)
	}
	if env.Signed == nil || len(*env.Signed) == 0 || (*env.Signed)[0] != '{' {
		return errors.New(`no "signed" object`)
	}
	return nil
}
