package verify

import (
	"fmt"
	"sort"
	"strings"
)

// DockerPath is the order docker and notary read a tag in: the
// targets/releases delegation first, then the targets role.
var DockerPath = []string{"targets/releases", "targets"}

// NotSignedError is a lookup that found no signature: the trust data is
// valid, and the tag is not signed the way the rule asks.
type NotSignedError struct {
	GUN, Tag string
	// Detail says what was missing ("not signed in targets/releases or
	// targets", "not signed by required signer targets/ci", ...).
	Detail string
}

func (e *NotSignedError) Error() string {
	return fmt.Sprintf("%s:%s: %s", e.GUN, e.Tag, e.Detail)
}

// Lookup finds tag along path, the first role that signs it winning
// (TUF §5.6.7, docker's rule with DockerPath):
//   - a role that is not delegated, or delegated but empty, is passed over;
//   - a disabled role (no keys: its signer was removed) is passed over,
//     and nothing it holds counts;
//   - a role that failed verification ends the lookup: the returned error
//     is its *Error, and the caller must deny;
//
// role is the role that signed the tag. A tag signed nowhere on the path
// is a *NotSignedError.
func (r *Result) Lookup(gun, tag string, path []string) (t Target, role string, err error) {
	var disabled []string
	for _, name := range path {
		ro, ok := r.Roles[name]
		if !ok {
			continue
		}
		switch ro.Status {
		case RoleFailed:
			return Target{}, name, ro.Err
		case RoleDisabled:
			disabled = append(disabled, name)
			continue
		case RoleEmpty:
			continue
		}
		if t, ok := ro.Targets[tag]; ok {
			return t, name, nil
		}
	}
	detail := "not signed in " + strings.Join(path, " or ")
	if len(disabled) > 0 {
		detail += fmt.Sprintf(" (%s has no keys: its signers were removed, so what it held is no longer trusted)", strings.Join(disabled, ", "))
	}
	return Target{}, "", &NotSignedError{GUN: gun, Tag: tag, Detail: detail}
}

// LookupAll requires every role in signers to sign tag, all with the
// same digest and length. A role that is missing, disabled or does not
// sign the tag is a *NotSignedError; one that failed verification is its
// *Error.
func (r *Result) LookupAll(gun, tag string, signers []string) (Target, error) {
	var first Target
	for i, name := range signers {
		ro, ok := r.Roles[name]
		if !ok {
			return Target{}, &NotSignedError{GUN: gun, Tag: tag, Detail: fmt.Sprintf("required signer %s is not delegated", name)}
		}
		switch ro.Status {
		case RoleFailed:
			return Target{}, ro.Err
		case RoleDisabled:
			return Target{}, &NotSignedError{GUN: gun, Tag: tag, Detail: fmt.Sprintf("required signer %s has no keys (its signers were removed)", name)}
		}
		t, ok := ro.Targets[tag]
		if !ok {
			return Target{}, &NotSignedError{GUN: gun, Tag: tag, Detail: fmt.Sprintf("not signed by required signer %s", name)}
		}
		if i == 0 {
			first = t
			continue
		}
		if string(t.SHA256) != string(first.SHA256) || t.Length != first.Length {
			return Target{}, &NotSignedError{GUN: gun, Tag: tag, Detail: fmt.Sprintf("signers disagree: %s signed sha256:%s, %s signed sha256:%s",
				signers[0], first.HexSHA256(), name, t.HexSHA256())}
		}
	}
	if len(signers) == 0 {
		return Target{}, &NotSignedError{GUN: gun, Tag: tag, Detail: "no signers required"}
	}
	return first, nil
}

// Rule is how a reader decides a tag: docker's path, or named signers
// that must all agree.
type Rule struct {
	// Signers, if set, must all sign a tag with the same digest; empty
	// means DockerPath.
	Signers []string
}

// Roles are the delegations an update must load for the rule.
func (rl Rule) Roles() []string {
	if len(rl.Signers) > 0 {
		return rl.Signers
	}
	return DockerPath[:1]
}

// Decide applies the rule to tag. role names the deciding role(s).
func (r *Result) Decide(gun, tag string, rl Rule) (t Target, role string, err error) {
	if len(rl.Signers) == 0 {
		return r.Lookup(gun, tag, DockerPath)
	}
	t, err = r.LookupAll(gun, tag, rl.Signers)
	return t, strings.Join(rl.Signers, "+"), err
}

// Signed lists the tags the rule accepts, sorted, with their targets.
// Tags whose lookup is denied are left out; err is the first *Error met
// (a role on the path failed), so a caller can say why a list is empty.
func (r *Result) Signed(gun string, rl Rule) (tags []string, targets map[string]Target, err error) {
	candidates := map[string]bool{}
	roles := rl.Signers
	if len(roles) == 0 {
		roles = DockerPath
	}
	for _, name := range roles {
		if ro, ok := r.Roles[name]; ok {
			for tag := range ro.Targets {
				candidates[tag] = true
			}
		}
	}
	targets = map[string]Target{}
	for tag := range candidates {
		t, _, derr := r.Decide(gun, tag, rl)
		if derr != nil {
			if ve, ok := derr.(*Error); ok && err == nil {
				err = ve
			}
			continue
		}
		tags = append(tags, tag)
		targets[tag] = t
	}
	sort.Strings(tags)
	if err == nil {
		// A failed role on the path denies every tag, including ones it
		// does not list.
		for _, name := range roles {
			if ro, ok := r.Roles[name]; ok && ro.Status == RoleFailed {
				return nil, map[string]Target{}, ro.Err
			}
		}
	}
	return tags, targets, err
}
