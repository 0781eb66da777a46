package trust

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/tuf/data"
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

// Inspect reads the repository's trust data as `docker trust inspect`
// does. name is what the user called the image.
func (r *Repo) Inspect(ctx context.Context, name string) (Inspection, error) {
	out := Inspection{Name: name, SignedTags: []SignedTag{}, Signers: []Signer{}, AdministrativeKeys: []Signer{}}
	all, err := r.nr.GetAllTargetMetadataByName("")
	if err != nil {
		var notExist client.ErrRepositoryNotExist
		if errors.As(err, &notExist) {
			return out, &DenyError{Image: r.gun.String(), Reason: ReasonNoTrustData}
		}
		return out, r.wrap("read trust data of", err)
	}
	out.SignedTags = releasedTags(all)

	roles, err := r.nr.ListRoles()
	if err != nil {
		return out, r.wrap("read roles of", err)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].Name < roles[j].Name })
	for _, role := range roles {
		keys := make([]Key, 0, len(role.KeyIDs))
		ids := append([]string(nil), role.KeyIDs...)
		sort.Strings(ids)
		for _, id := range ids {
			keys = append(keys, Key{ID: id})
		}
		switch {
		case role.Name == data.CanonicalRootRole:
			out.AdministrativeKeys = append([]Signer{{Name: "Root", Keys: keys}}, out.AdministrativeKeys...)
		case role.Name == data.CanonicalTargetsRole:
			out.AdministrativeKeys = append(out.AdministrativeKeys, Signer{Name: "Repository", Keys: keys})
		case data.IsDelegation(role.Name) && role.Name != ReleasesRole:
			out.Signers = append(out.Signers, Signer{Name: strings.TrimPrefix(role.Name.String(), "targets/"), Keys: keys})
		}
	}
	out.Expires = r.expiries(roles)
	return out, nil
}

// releasedTags follows docker: tags signed in targets or targets/releases,
// each with the delegations that signed the same digest.
func releasedTags(all []client.TargetSignedStruct) []SignedTag {
	type key struct{ tag, digest string }
	released := map[key][]string{}
	for _, t := range all {
		if isReleased(t.Role.Name) {
			k := key{t.Target.Name, hex.EncodeToString(t.Target.Hashes["sha256"])}
			if _, ok := released[k]; !ok {
				released[k] = []string{}
			}
		}
	}
	for _, t := range all {
		k := key{t.Target.Name, hex.EncodeToString(t.Target.Hashes["sha256"])}
		if signers, ok := released[k]; ok {
			name := releasedSigner
			if !isReleased(t.Role.Name) {
				name = strings.TrimPrefix(t.Role.Name.String(), "targets/")
			}
			if !contains(signers, name) {
				released[k] = append(signers, name)
			}
		}
	}
	out := make([]SignedTag, 0, len(released))
	for k, signers := range released {
		sort.Strings(signers)
		out = append(out, SignedTag{SignedTag: k.tag, Digest: k.digest, Signers: signers})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SignedTag < out[j].SignedTag })
	return out
}

func isReleased(role data.RoleName) bool {
	return role == data.CanonicalTargetsRole || role == ReleasesRole
}

// expiries reads the expiry of each role from the metadata the client
// has just fetched and verified into the cache.
func (r *Repo) expiries(roles []client.RoleWithSignatures) map[string]time.Time {
	names := []string{"root", "targets", "snapshot", "timestamp"}
	for _, role := range roles {
		if data.IsDelegation(role.Name) {
			names = append(names, role.Name.String())
		}
	}
	out := map[string]time.Time{}
	dir := filepath.Join(r.opts.TrustDir, "tuf", filepath.FromSlash(r.gun.String()), "metadata")
	for _, n := range names {
		raw, err := readCapped(filepath.Join(dir, filepath.FromSlash(n)+".json"), 16<<20)
		if err != nil {
			continue
		}
		var meta struct {
			Signed struct {
				Expires time.Time `json:"expires"`
			} `json:"signed"`
		}
		if json.Unmarshal(raw, &meta) == nil && !meta.Signed.Expires.IsZero() {
			out[n] = meta.Signed.Expires.UTC()
		}
	}
	return out
}
