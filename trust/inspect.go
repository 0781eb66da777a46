package trust

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust/verify"
)

// releasedSigner is docker's name for signatures in targets or
// targets/releases.
const releasedSigner = "Repo Admin"

// Inspection has the shape of one element of `docker trust inspect`'s
// JSON, so scripts written for it keep working, plus Expires (role ->
// expiry), which docker does not print.
type Inspection struct {
	Name               string               `json:"Name"`
	SignedTags         []SignedTag          `json:"SignedTags"`
	Signers            []Signer             `json:"Signers"`
	AdministrativeKeys []Signer             `json:"AdministrativeKeys"`
	Expires            map[string]time.Time `json:"Expires,omitempty"`
}

// SignedTag is a tag signed into targets or targets/releases, with the
// delegations that also signed the same digest.
type SignedTag struct {
	SignedTag string   `json:"SignedTag"`
	Digest    string   `json:"Digest"`
	Signers   []string `json:"Signers"`
}

// Signer is a named set of keys.
type Signer struct {
	Name string `json:"Name"`
	Keys []Key  `json:"Keys"`
}

// Key is a key ID.
type Key struct {
	ID string `json:"ID"`
}

// Inspect builds `docker trust inspect`'s view of a repository from
// trust data verified by the engine (trust/verify, read with
// AllDelegations), following docker's rules field by field:
//   - SignedTags: each tag the engine accepts along docker's path
//     (targets/releases, then targets), with the delegations other than
//     targets/releases that signed the same digest, or "Repo Admin" when
//     none did;
//   - Signers: every delegation but targets/releases, named without
//     "targets/", with its key IDs, sorted by name;
//   - AdministrativeKeys: "Root" and "Repository" (targets) key IDs as
//     root.json lists them.
//
// name is what the user called the image. notes say what the reader
// should know and docker's format has no field for: delegations that are
// disabled (no keys) or failed verification.
func Inspect(name, gun string, res *verify.Result) (out Inspection, notes []string) {
	out = Inspection{Name: name, SignedTags: []SignedTag{}, Signers: []Signer{}, AdministrativeKeys: []Signer{}, Expires: map[string]time.Time{}}
	var delegations []*verify.Role
	for _, r := range res.Roles {
		if data.IsDelegation(data.RoleName(r.Name)) {
			delegations = append(delegations, r)
		}
		if r.Status == verify.RoleVerified {
			out.Expires[r.Name] = r.Expires.UTC()
		}
	}
	sort.Slice(delegations, func(i, j int) bool { return delegations[i].Name < delegations[j].Name })
	tags, targets, err := res.Signed(gun, verify.Rule{})
	if err != nil {
		notes = append(notes, fmt.Sprintf("no tag is trusted: %v", err))
	}
	for _, tag := range tags {
		t := targets[tag]
		row := SignedTag{SignedTag: tag, Digest: t.HexSHA256(), Signers: []string{}}
		for _, d := range delegations {
			if d.Name == ReleasesRole.String() || d.Status != verify.RoleVerified {
				continue
			}
			if o, ok := d.Targets[tag]; ok && string(o.SHA256) == string(t.SHA256) {
				row.Signers = append(row.Signers, strings.TrimPrefix(d.Name, "targets/"))
			}
		}
		if len(row.Signers) == 0 {
			row.Signers = []string{releasedSigner}
		}
		out.SignedTags = append(out.SignedTags, row)
	}
	for _, d := range delegations {
		switch d.Status {
		case verify.RoleDisabled:
			notes = append(notes, fmt.Sprintf("%s has no keys: it is disabled and nothing it signed is trusted", d.Name))
		case verify.RoleFailed:
			notes = append(notes, fmt.Sprintf("%s failed verification and is not trusted: %v", d.Name, d.Err))
		}
		if d.Name == ReleasesRole.String() {
			continue
		}
		out.Signers = append(out.Signers, Signer{Name: strings.TrimPrefix(d.Name, "targets/"), Keys: keyList(d.KeyIDs)})
	}
	if r, ok := res.Roles[data.CanonicalRootRole.String()]; ok {
		out.AdministrativeKeys = append(out.AdministrativeKeys, Signer{Name: "Root", Keys: keyList(r.KeyIDs)})
	}
	if r, ok := res.Roles[data.CanonicalTargetsRole.String()]; ok {
		out.AdministrativeKeys = append(out.AdministrativeKeys, Signer{Name: "Repository", Keys: keyList(r.KeyIDs)})
	}
	return out, notes
}

func keyList(ids []string) []Key {
	out := make([]Key, 0, len(ids))
	for _, id := range ids {
		out = append(out, Key{ID: id})
	}
	return out
}
