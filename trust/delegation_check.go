package trust

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/trust/verify"
)

// A change of delegations must not leave a delegation that verified
// before it failing after it: a failed targets/releases denies every tag
// of the repository (TUF §5.6.7). keepValid enforces that, signing a role
// again with the keys held here when it can.

// verdict is what becomes of a role's current metadata under new keys.
type verdict int

const (
	// stillValid: its signatures meet the new keys and threshold (or it
	// has no metadata, or no keys: disabled).
	stillValid verdict = iota
	// resign: it would fail, but this trust dir holds enough new keys to
	// sign it again.
	resign
	// wouldFail: it would fail verification and cannot be signed here.
	wouldFail
)

// judge says what becomes of role's metadata if its keys and threshold
// become those of br.
func (e *editor) judge(role data.RoleName, br data.BaseRole) verdict {
	if len(br.Keys) == 0 {
		return stillValid
	}
	raw, verified := e.res.Raw[role.String()]
	if !verified && !e.listed[role.String()] {
		return stillValid // nothing signed yet
	}
	if verified && validUnder(raw, br) {
		return stillValid
	}
	if e.holds(br) >= br.Threshold {
		return resign
	}
	return wouldFail
}

// validUnder reports whether raw metadata is signed by a threshold of
// br's keys.
func validUnder(raw []byte, br data.BaseRole) bool {
	var s data.Signed
	if err := json.Unmarshal(raw, &s); err != nil {
		return false
	}
	return signed.VerifySignatures(&s, br) == nil
}

// holds counts the keys of br this trust dir (or the environment, or a
// YubiKey) can sign with.
func (e *editor) holds(br data.BaseRole) int {
	n := 0
	for id, k := range br.Keys {
		ids := []string{id}
		if c, err := utils.CanonicalKeyID(k); err == nil && c != id {
			ids = append(ids, c)
		}
		for _, id := range ids {
			if _, _, err := e.r.cs.GetPrivateKey(id); err == nil {
				n++
				break
			}
		}
	}
	return n
}

// FailError is a change refused because a delegation would no longer
// verify: its current metadata is not signed by enough of the keys it
// would have, and this trust dir cannot sign it again.
type FailError struct {
	GUN  string
	Role string
	// Threshold and Keys are what the role would have; Held is how many
	// of those keys the trust dir holds.
	Threshold int
	Keys      []string
	Held      int
	// Fix says what to do.
	Fix string
}

func (e *FailError) Error() string {
	return fmt.Sprintf("%s would then fail verification (its current signatures are not by %d of the keys it would have, %s, and this trust dir holds %d of those): %s",
		e.Role, e.Threshold, shortIDs(e.Keys), e.Held, e.Fix)
}

// keepValid checks every touched delegation after the change: one whose
// metadata would fail is re-signed with the keys held here; metadata the
// engine did not verify (left over on the server from removed keys) is
// replaced by an empty file when the new keys are held; otherwise the
// change is refused with fix.
func (e *editor) keepValid(fix func(role data.RoleName) string) error {
	roles := make([]string, 0, len(e.touched))
	for role := range e.touched {
		roles = append(roles, role.String())
	}
	sort.Strings(roles)
	for _, name := range roles {
		role := data.RoleName(name)
		dr, ok := e.delegation(role)
		if !ok {
			continue
		}
		v := e.judge(role, dr.BaseRole)
		if before := e.res.Roles[name]; v != stillValid && before != nil && before.Status == verify.RoleFailed {
			// Signed by keys it no longer lists, and its keys are held
			// here: start it again. Any other failure (expired, rolled
			// back, mismatched) is not made worse here: leave it.
			if v != resign || before.Err == nil || before.Err.Reason != verify.ReasonSignature {
				e.out.Notes = append(e.out.Notes, fmt.Sprintf("%s failed verification before this change (%v) and still does", name, before.Err))
				continue
			}
		}
		switch v {
		case resign:
			if _, verified := e.res.Raw[name]; !verified {
				if err := e.replaceStale(role); err != nil {
					return err
				}
			}
			e.repo.Targets[role].Dirty = true
			e.out.Resigned = append(e.out.Resigned, name)
		case wouldFail:
			return &FailError{GUN: e.r.gun.String(), Role: name, Threshold: dr.Threshold, Keys: dr.ListKeyIDs(), Held: e.holds(dr.BaseRole), Fix: fix(role)}
		}
	}
	return nil
}

// replaceStale starts role afresh (no targets) above the version of the
// metadata the server still has for it, signed by removed keys: its old
// content was never verified under the new keys, so it is not kept.
func (e *editor) replaceStale(role data.RoleName) error {
	raw, err := e.r.remote.GetSized(role.String(), verify.MaxMetadataBytes)
	if err != nil {
		return e.r.wrap("read the old "+role.String()+" of", err)
	}
	v, err := verify.Version(raw, "Targets")
	if err != nil {
		return fmt.Errorf("read the old %s of %s: %w", role, e.r.gun, err)
	}
	t := data.NewTargets()
	t.Signed.Version = v
	e.repo.Targets[role] = t
	e.out.Notes = append(e.out.Notes, fmt.Sprintf("%s held metadata signed by removed keys: it starts again empty, signed by its new keys", role))
	return nil
}
