package trust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
)

// A change of root or targets goes in three steps, which may run on
// different machines: Propose (online: reads the current trust data, asks
// the server for new keys) writes the exact bytes to sign; Proposal.Sign
// (offline: keys only) adds signatures; PublishProposal (online) checks the
// thresholds and that nothing changed since, then uploads. Rotate and
// RotateTargets run all three with the keys at hand; signet ceremony runs
// them apart.

// Change is what a ceremony changes: a new root version (keys,
// thresholds, server-held keys, expiry), a new targets version (signed
// again by new repository keys, or with a new expiry), or both.
type Change struct {
	// RootKeys, if set, replace the root keys: root certificates
	// (ecdsa-x509 with the GUN as common name; see RootCert).
	RootKeys []data.PublicKey
	// RootThreshold is how many root keys must sign (default: kept, or 1
	// with new keys).
	RootThreshold int
	// Rotations give the timestamp and snapshot new server-held keys.
	Rotations []Rotation
	// TargetsKeys, if set, replace the repository (targets) keys; the
	// current targets are signed again by them in the same publish.
	TargetsKeys []data.PublicKey
	// TargetsThreshold is how many repository keys must sign (default:
	// kept, or 1 with new keys).
	TargetsThreshold int
	// RootExpires and TargetsExpires, if set, are the new expiries.
	RootExpires    time.Time
	TargetsExpires time.Time
}

// Documents a proposal may carry, and the key sets that sign them.
const (
	DocRoot    = "root"
	DocTargets = "targets"
)

// KeySet is a set of keys of which Threshold must sign Doc.
type KeySet struct {
	// Name says which: "current root", "new root", "repository
	// (targets)", "new repository (targets)".
	Name string `json:"name"`
	// Doc is what the set signs: DocRoot (also when empty) or DocTargets.
	Doc       string `json:"doc,omitempty"`
	Threshold int    `json:"threshold"`
	// Keys are the public keys (notary's JSON form) by key ID.
	Keys map[string]json.RawMessage `json:"keys"`
}

// doc is the document the set signs.
func (ks KeySet) doc() string {
	if ks.Doc == "" {
		return DocRoot
	}
	return ks.Doc
}

// Signatures are detached signatures by document (DocRoot, DocTargets).
type Signatures map[string][]data.Signature

// Proposal is a new root version and/or a new targets version to sign:
// Signed and Targets are the canonical JSON of their "signed" objects,
// exactly what each signature is over (nil when that role does not
// change).
type Proposal struct {
	GUN    string `json:"gun"`
	Server string `json:"server"`
	// Version and Expires are the new root's (0 and zero: root does not
	// change).
	Version int       `json:"root_version"`
	Expires time.Time `json:"root_expires"`
	// TargetsVersion and TargetsExpires are the new targets' (0: targets
	// do not change).
	TargetsVersion int       `json:"targets_version,omitempty"`
	TargetsExpires time.Time `json:"targets_expires,omitzero"`
	// Base is the trust data the proposal was made from; publishing
	// checks it has not changed.
	Base Base `json:"base"`
	// MustSign are the key sets whose thresholds must be met: the
	// current root's keys and the new root's (TUF §5.3.4) for a new
	// root, the repository keys (new ones, if they change) for new
	// targets.
	MustSign []KeySet `json:"must_sign"`
	// Rotated maps a rotated role to its new key ID(s), comma-separated.
	Rotated map[string]string `json:"rotated,omitempty"`
	// Changes says in words what changes.
	Changes []string `json:"changes"`
	Signed  []byte   `json:"-"`
	Targets []byte   `json:"-"`
}

// Base identifies the trust data a proposal was made from.
type Base struct {
	RootVersion    int    `json:"root_version"`
	RootSHA256     string `json:"root_sha256"`
	TargetsVersion int    `json:"targets_version,omitempty"`
	TargetsSHA256  string `json:"targets_sha256"`
}

// Doc is the bytes signatures for doc are over (nil if it does not
// change).
func (p *Proposal) Doc(doc string) []byte {
	if doc == DocTargets {
		return p.Targets
	}
	return p.Signed
}

// Propose reads the current trust data through the engine (ignoring
// only expiry) and builds the new root and/or targets version ch
// describes. New server keys for rotated roles are made by the trust
// server now.
func (r *Repo) Propose(ctx context.Context, ch Change) (*Proposal, error) {
	if len(ch.Rotations) > 0 {
		if err := CheckRotations(ch.Rotations); err != nil {
			return nil, err
		}
	}
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, IgnoreExpiry: true})
	if err != nil {
		return nil, err
	}
	// keepKeys: notary's ReplaceBaseKeys deletes replaced private keys
	// from the key store at once; a proposal must lose nothing, whether
	// or not it is ever published.
	b := tuf.NewRepoBuilder(r.gun, keepKeys{r.cs}, trustpinning.TrustPinConfig{})
	if err := b.Load(data.CanonicalRootRole, res.Raw["root"], 1, true); err != nil {
		return nil, fmt.Errorf("load the root of %s: %w", r.gun, err)
	}
	repo, _, err := b.Finish()
	if err != nil {
		return nil, fmt.Errorf("load the root of %s: %w", r.gun, err)
	}
	oldRoot, err := repo.GetBaseRole(data.CanonicalRootRole)
	if err != nil {
		return nil, err
	}
	oldTargets, err := repo.GetBaseRole(data.CanonicalTargetsRole)
	if err != nil {
		return nil, err
	}
	p := &Proposal{GUN: r.gun.String(), Server: r.opts.Server, Rotated: map[string]string{},
		Base: Base{RootVersion: repo.Root.Signed.Version, RootSHA256: sha(res.Raw["root"]), TargetsSHA256: sha(res.Raw["targets"])}}
	if tr := res.Roles[data.CanonicalTargetsRole.String()]; tr != nil {
		p.Base.TargetsVersion = tr.Version
	}

	if err := setKeys(repo, data.CanonicalRootRole, ch.RootKeys, ch.RootThreshold, "--root-key", r.gun); err != nil {
		return nil, err
	}
	for _, rot := range ch.Rotations {
		key, err := r.newServerKey(rot.Role)
		if err != nil {
			return nil, err
		}
		if err := repo.ReplaceBaseKeys(rot.Role, key); err != nil {
			return nil, fmt.Errorf("replace the %s key of %s: %w", rot.Role, r.gun, err)
		}
		p.Rotated[rot.Role.String()] = key.ID()
		p.Changes = append(p.Changes, fmt.Sprintf("%s key: %s (held by the trust server)", rot.Role, short(key.ID())))
	}
	if err := setKeys(repo, data.CanonicalTargetsRole, ch.TargetsKeys, ch.TargetsThreshold, "--targets-key", r.gun); err != nil {
		return nil, err
	}
	newRoot, err := repo.GetBaseRole(data.CanonicalRootRole)
	if err != nil {
		return nil, err
	}
	newTargets, err := repo.GetBaseRole(data.CanonicalTargetsRole)
	if err != nil {
		return nil, err
	}
	if !oldRoot.Equals(newRoot) {
		p.Changes = append(p.Changes, fmt.Sprintf("root keys: %s of %s -> %s of %s", threshold(oldRoot), joinIDs(oldRoot), threshold(newRoot), joinIDs(newRoot)))
	}
	targetsKeysChange := !oldTargets.Equals(newTargets)
	if targetsKeysChange {
		ids := newTargets.ListKeyIDs()
		slices.Sort(ids)
		p.Rotated[data.CanonicalTargetsRole.String()] = strings.Join(ids, ",")
		p.Changes = append(p.Changes, fmt.Sprintf("repository (targets) keys: %s of %s -> %s of %s", threshold(oldTargets), joinIDs(oldTargets), threshold(newTargets), joinIDs(newTargets)))
	}
	rootChanges := len(p.Changes) > 0 || !ch.RootExpires.IsZero()
	if rootChanges {
		p.Expires = repo.Root.Signed.Expires
		if !ch.RootExpires.IsZero() {
			p.Expires = ch.RootExpires
			p.Changes = append(p.Changes, "root expires: "+p.Expires.UTC().Format(time.RFC3339))
		}
		next := *repo.Root
		next.Signed.Version++
		next.Signed.Expires = p.Expires
		s, err := next.ToSigned()
		if err != nil {
			return nil, fmt.Errorf("encode the new root of %s: %w", r.gun, err)
		}
		p.Version = next.Signed.Version
		p.Signed = *s.Signed
		p.MustSign = []KeySet{keySet("current root", DocRoot, oldRoot)}
		if !oldRoot.Equals(newRoot) {
			p.MustSign = append(p.MustSign, keySet("new root", DocRoot, newRoot))
		}
	}
	if targetsKeysChange || !ch.TargetsExpires.IsZero() {
		if err := p.proposeTargets(res.Raw["targets"], ch.TargetsExpires); err != nil {
			return nil, err
		}
		name := "repository (targets)"
		if targetsKeysChange {
			name = "new repository (targets)"
		}
		p.Changes = append(p.Changes, fmt.Sprintf("targets version %d: the same targets and delegations, signed by %s of %s", p.TargetsVersion, threshold(newTargets), joinIDs(newTargets)))
		p.MustSign = append(p.MustSign, keySet(name, DocTargets, newTargets))
	}
	if len(p.Changes) == 0 {
		return nil, fmt.Errorf("propose a change to %s: nothing changes: name new keys, a threshold, a rotation or an expiry", r.gun)
	}
	return p, nil
}

// setKeys replaces role's keys with keys (if any) and sets its threshold
// (if not 0; 1 with new keys and no threshold).
func setKeys(repo *tuf.Repo, role data.RoleName, keys []data.PublicKey, k int, flag string, gun data.GUN) error {
	if len(keys) > 0 {
		if err := repo.ReplaceBaseKeys(role, keys...); err != nil {
			return fmt.Errorf("replace the %s keys of %s: %w", role, gun, err)
		}
		if k == 0 {
			k = 1
		}
	}
	if k == 0 {
		return nil
	}
	rr := repo.Root.Signed.Roles[role]
	switch {
	case k < 0:
		return fmt.Errorf("%s threshold %d of %s: give a threshold of 1 or more", role, k, gun)
	case k > len(rr.KeyIDs):
		return fmt.Errorf("%s threshold %d of %s: only %d %s keys; give more %s or a lower threshold", role, k, gun, len(rr.KeyIDs), role, flag)
	}
	rr.Threshold = k
	return nil
}

// proposeTargets makes the next targets version from the current one (as
// the engine verified it): same targets and delegations, version bumped,
// expires replaced unless it is zero.
func (p *Proposal) proposeTargets(current []byte, expires time.Time) error {
	if current == nil {
		return fmt.Errorf("propose new targets for %s: the repository has no targets yet: sign an image first", p.GUN)
	}
	var st data.SignedTargets
	if err := json.Unmarshal(current, &st); err != nil {
		return fmt.Errorf("parse the targets of %s: %w", p.GUN, err)
	}
	st.Signed.Version++
	if !expires.IsZero() {
		st.Signed.Expires = expires
		p.Changes = append(p.Changes, "targets expire: "+expires.UTC().Format(time.RFC3339))
	}
	s, err := st.ToSigned()
	if err != nil {
		return fmt.Errorf("encode the new targets of %s: %w", p.GUN, err)
	}
	p.TargetsVersion = st.Signed.Version
	p.TargetsExpires = st.Signed.Expires
	p.Targets = *s.Signed
	return nil
}

func (r *Repo) newServerKey(role data.RoleName) (data.PublicKey, error) {
	raw, err := r.remote.RotateKey(role)
	if err != nil {
		return nil, r.wrap("get a new "+role.String()+" key from the trust server for", err)
	}
	key, err := data.UnmarshalPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("new %s key of %s from the trust server: %w", role, r.gun, err)
	}
	return key, nil
}

func keySet(name, doc string, br data.BaseRole) KeySet {
	ks := KeySet{Name: name, Doc: doc, Threshold: br.Threshold, Keys: map[string]json.RawMessage{}}
	for id, k := range br.Keys {
		raw, err := json.Marshal(k)
		if err == nil {
			ks.Keys[id] = raw
		}
	}
	return ks
}

// PublicKeys decodes the set's keys, sorted by ID.
func (ks KeySet) PublicKeys() ([]data.PublicKey, error) {
	ids := make([]string, 0, len(ks.Keys))
	for id := range ks.Keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []data.PublicKey
	for _, id := range ids {
		k, err := data.UnmarshalPublicKey(ks.Keys[id])
		if err != nil {
			return nil, fmt.Errorf("key %s of %s: %w", short(id), ks.Name, err)
		}
		if k.ID() != id {
			return nil, fmt.Errorf("key %s of %s is listed under another ID (%s)", short(k.ID()), ks.Name, short(id))
		}
		out = append(out, k)
	}
	return out, nil
}

// Sign signs the proposal with every key of its sets that cs holds
// (only those listed, if only is not empty), each over the document its
// set signs. No network.
func (p *Proposal) Sign(cs signed.CryptoService, only []string) (Signatures, error) {
	sigs := Signatures{}
	seen := map[string]bool{}
	signedBy := map[string]bool{}
	for _, ks := range p.MustSign {
		doc := ks.doc()
		body := p.Doc(doc)
		if body == nil {
			return nil, fmt.Errorf("proposal for %s: %s signs %s, which the proposal lacks: prepare again", p.GUN, ks.Name, doc)
		}
		keys, err := ks.PublicKeys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if seen[doc+"/"+k.ID()] || (len(only) > 0 && !slices.Contains(only, k.ID())) {
				continue
			}
			id, err := utils.CanonicalKeyID(k)
			if err != nil {
				return nil, err
			}
			if _, _, err := cs.GetPrivateKey(id); err != nil {
				continue
			}
			raw := canonicaljson.RawMessage(body)
			s := &data.Signed{Signed: &raw}
			if err := signed.Sign(cs, s, []data.PublicKey{k}, 1, nil); err != nil {
				return nil, fmt.Errorf("sign the new %s of %s with key %s: %w", doc, p.GUN, short(k.ID()), err)
			}
			seen[doc+"/"+k.ID()] = true
			signedBy[k.ID()] = true
			sigs[doc] = append(sigs[doc], s.Signatures...)
		}
	}
	for _, id := range only {
		if !signedBy[id] {
			return sigs, fmt.Errorf("key %s: not one of the keys that must sign, or not here (trust dir, inserted YubiKey)", short(id))
		}
	}
	return sigs, nil
}

// Len is how many signatures there are.
func (s Signatures) Len() int {
	n := 0
	for _, l := range s {
		n += len(l)
	}
	return n
}

// SetStatus is how far one key set is from its threshold.
type SetStatus struct {
	KeySet
	// Valid are the key IDs with a valid signature.
	Valid []string
}

// Met reports whether the threshold is met.
func (s SetStatus) Met() bool { return len(s.Valid) >= s.Threshold }

// Check verifies sigs over the proposal and counts them per key set; a
// signature that does not verify, or is over another document, counts
// for nothing. ok is true when every threshold is met.
func (p *Proposal) Check(sigs Signatures) (st []SetStatus, ok bool, err error) {
	ok = true
	for _, ks := range p.MustSign {
		keys, err := ks.PublicKeys()
		if err != nil {
			return nil, false, err
		}
		body := p.Doc(ks.doc())
		s := SetStatus{KeySet: ks}
		for _, k := range keys {
			for _, sig := range sigs[ks.doc()] {
				if sig.KeyID != k.ID() || slices.Contains(s.Valid, k.ID()) || body == nil {
					continue
				}
				if signed.VerifySignature(body, &sig, k) == nil {
					s.Valid = append(s.Valid, k.ID())
				}
			}
		}
		ok = ok && s.Met()
		st = append(st, s)
	}
	return st, ok, nil
}

// PublishProposal uploads the proposal with sigs after checking locally that
// every threshold is met and that the repository has not changed since
// it was proposed; the server signs the next snapshot and timestamp (a
// snapshot key in the trust dir signs it here instead). It reads the
// result back through the engine.
func (r *Repo) PublishProposal(ctx context.Context, p *Proposal, sigs Signatures) error {
	if err := p.Publishable(sigs); err != nil {
		return err
	}
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, IgnoreExpiry: true})
	if err != nil {
		return err
	}
	if sha(res.Raw["root"]) != p.Base.RootSHA256 || sha(res.Raw["targets"]) != p.Base.TargetsSHA256 {
		now := 0
		if tr := res.Roles[data.CanonicalTargetsRole.String()]; tr != nil {
			now = tr.Version
		}
		return fmt.Errorf("publish %s of %s: the repository changed since the ceremony was prepared (root v%d, targets v%d then; root v%d, targets v%d now): prepare it again",
			p.What(), p.GUN, p.Base.RootVersion, p.Base.TargetsVersion, res.Roles["root"].Version, now)
	}
	files := map[string][]byte{}
	rootJSON := res.Raw["root"]
	for _, doc := range []string{DocRoot, DocTargets} {
		body := p.Doc(doc)
		if body == nil {
			continue
		}
		raw := canonicaljson.RawMessage(body)
		b, err := canonicaljson.Marshal(&data.Signed{Signed: &raw, Signatures: sigs[doc]})
		if err != nil {
			return err
		}
		files[doc] = b
		if doc == DocRoot {
			rootJSON = b
		}
	}
	var sr data.SignedRoot
	if err := json.Unmarshal(rootJSON, &sr); err != nil {
		return fmt.Errorf("parse the root of %s: %w", p.GUN, err)
	}
	snap := sr.Signed.Roles[data.CanonicalSnapshotRole]
	snapRole := rootBaseRole(snap, sr.Signed.Keys, data.CanonicalSnapshotRole)
	if !r.serverHolds(data.CanonicalSnapshotRole, snapRole) {
		if !r.holdsAny(snapRole) {
			return fmt.Errorf("publish %s of %s: the snapshot key (%s) is neither this trust server's nor in %s: rotate it too (--rotate snapshot --server-managed)", p.What(), p.GUN, joinIDs(snapRole), r.opts.TrustDir)
		}
		uploaded := map[string][]byte{}
		for k, v := range files {
			uploaded[k] = v
		}
		sn, _, err := r.signNextSnapshot(res.Raw["snapshot"], uploaded, snapRole, time.Time{})
		if err != nil {
			return err
		}
		files[data.CanonicalSnapshotRole.String()] = sn
	}
	if err := r.remote.SetMulti(files); err != nil {
		return r.wrap("publish "+p.What()+" of", err)
	}
	if _, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server, Transport: r.opts.Transport}); err != nil {
		return fmt.Errorf("%s of %s was published, but reading it back failed: %w", p.What(), p.GUN, err)
	}
	return nil
}

// Publishable checks, with no network, that sigs meet every threshold;
// the error names the first key set short of it.
func (p *Proposal) Publishable(sigs Signatures) error {
	st, _, err := p.Check(sigs)
	if err != nil {
		return err
	}
	for _, s := range st {
		if !s.Met() {
			return fmt.Errorf("publish %s of %s: %s has %d of the %d signatures it needs: sign with more of its keys (signet ceremony sign)", p.What(), p.GUN, s.Name, len(s.Valid), s.Threshold)
		}
	}
	return nil
}

// What names what the proposal publishes: "root v3", "targets v7",
// "root v3 and targets v7".
func (p *Proposal) What() string {
	var parts []string
	if p.Signed != nil {
		parts = append(parts, fmt.Sprintf("root v%d", p.Version))
	}
	if p.Targets != nil {
		parts = append(parts, fmt.Sprintf("targets v%d", p.TargetsVersion))
	}
	return strings.Join(parts, " and ")
}

func rootBaseRole(rr *data.RootRole, keys data.Keys, name data.RoleName) data.BaseRole {
	br := data.BaseRole{Name: name, Keys: map[string]data.PublicKey{}}
	if rr == nil {
		return br
	}
	br.Threshold = rr.Threshold
	for _, id := range rr.KeyIDs {
		br.Keys[id] = keys[id]
	}
	return br
}

// RootCert makes the root certificate of a key cs holds (a key file or
// a YubiKey), as notary does when it initialises a repository: a
// self-signed certificate with the GUN as common name, valid 10 years.
func RootCert(cs signed.CryptoService, keyID, gun string) (data.PublicKey, error) {
	priv, _, err := cs.GetPrivateKey(keyID)
	if err != nil {
		return nil, fmt.Errorf("root key %s: %w: it must be in the trust dir or on an inserted YubiKey", short(keyID), err)
	}
	now := time.Now()
	cert, err := cryptoservice.GenerateCertificate(priv, data.GUN(gun), now.Add(-time.Hour), now.AddDate(10, 0, 0))
	if err != nil {
		return nil, fmt.Errorf("make the root certificate of key %s for %s: %w", short(keyID), gun, err)
	}
	return data.NewECDSAx509PublicKey(utils.CertToPEM(cert)), nil
}

// LoadRootCert reads a root certificate (PEM) made for gun.
func LoadRootCert(path, gun string) (data.PublicKey, error) {
	cert, err := utils.LoadCertFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read root certificate %s: %w", path, err)
	}
	if cert.Subject.CommonName != gun {
		return nil, fmt.Errorf("root certificate %s is for %q, not %s: make one for this repository (signet ceremony cert)", path, cert.Subject.CommonName, gun)
	}
	return utils.CertToKey(cert), nil
}

func sha(b []byte) string {
	if b == nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func threshold(br data.BaseRole) string { return fmt.Sprintf("%d", br.Threshold) }

// CryptoService is the repository's keys (trust dir, YubiKeys, a key
// from the environment), for signing a ceremony.
func (r *Repo) CryptoService() signed.CryptoService { return r.cs }
