package trust

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
)

// A change of root goes in three steps, which may run on different
// machines: ProposeRoot (online: reads the current trust data, asks the
// server for new keys) writes the exact bytes to sign; SignProposal
// (offline: keys only) adds signatures; PublishRoot (online) checks the
// thresholds and that nothing changed since, then uploads. Rotate runs
// all three with the keys at hand; signet ceremony runs them apart.

// RootChange is what a new root version changes.
type RootChange struct {
	// RootKeys, if set, replace the root keys: root certificates
	// (ecdsa-x509 with the GUN as common name; see RootCert).
	RootKeys []data.PublicKey
	// RootThreshold is how many root keys must sign (default: kept, or 1
	// with new keys).
	RootThreshold int
	// Rotations give the timestamp and snapshot new server-held keys.
	Rotations []Rotation
	// RootExpires, if set, is the new root's expiry.
	RootExpires time.Time
}

// KeySet is a set of keys of which Threshold must sign.
type KeySet struct {
	// Name says which: "current root", "new root".
	Name      string `json:"name"`
	Threshold int    `json:"threshold"`
	// Keys are the public keys (notary's JSON form) by key ID.
	Keys map[string]json.RawMessage `json:"keys"`
}

// Proposal is a new root version to sign: Signed is the canonical JSON
// of its "signed" object, exactly what each signature is over.
type Proposal struct {
	GUN     string    `json:"gun"`
	Server  string    `json:"server"`
	Version int       `json:"root_version"`
	Expires time.Time `json:"root_expires"`
	// Base is the trust data the proposal was made from; publishing
	// checks it has not changed.
	Base Base `json:"base"`
	// MustSign are the key sets whose thresholds must be met: the
	// current root's keys and the new root's (TUF §5.3.4).
	MustSign []KeySet `json:"must_sign"`
	// Rotated maps a rotated role to its new key ID.
	Rotated map[string]string `json:"rotated,omitempty"`
	// Changes says in words what changes.
	Changes []string `json:"changes"`
	Signed  []byte   `json:"-"`
}

// Base identifies the trust data a proposal was made from.
type Base struct {
	RootVersion   int    `json:"root_version"`
	RootSHA256    string `json:"root_sha256"`
	TargetsSHA256 string `json:"targets_sha256"`
}

// ProposeRoot reads the current trust data through the engine (ignoring
// only expiry) and builds the new root version ch describes. New server
// keys for rotated roles are made by the trust server now.
func (r *Repo) ProposeRoot(ctx context.Context, ch RootChange) (*Proposal, error) {
	if err := CheckRotations(ch.Rotations); err != nil && len(ch.Rotations) > 0 {
		return nil, err
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
	p := &Proposal{GUN: r.gun.String(), Server: r.opts.Server, Rotated: map[string]string{},
		Base: Base{RootVersion: repo.Root.Signed.Version, RootSHA256: sha(res.Raw["root"]), TargetsSHA256: sha(res.Raw["targets"])}}

	if len(ch.RootKeys) > 0 {
		if err := repo.ReplaceBaseKeys(data.CanonicalRootRole, ch.RootKeys...); err != nil {
			return nil, fmt.Errorf("replace the root keys of %s: %w", r.gun, err)
		}
		if ch.RootThreshold == 0 {
			ch.RootThreshold = 1
		}
	}
	if ch.RootThreshold > 0 {
		rr := repo.Root.Signed.Roles[data.CanonicalRootRole]
		if ch.RootThreshold > len(rr.KeyIDs) {
			return nil, fmt.Errorf("root threshold %d of %s: only %d root keys; give more --root-key or a lower --threshold", ch.RootThreshold, r.gun, len(rr.KeyIDs))
		}
		rr.Threshold = ch.RootThreshold
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
	newRoot, err := repo.GetBaseRole(data.CanonicalRootRole)
	if err != nil {
		return nil, err
	}
	if !oldRoot.Equals(newRoot) {
		p.Changes = append(p.Changes, fmt.Sprintf("root keys: %s of %s -> %s of %s", threshold(oldRoot), joinIDs(oldRoot), threshold(newRoot), joinIDs(newRoot)))
	}
	p.Expires = repo.Root.Signed.Expires
	if !ch.RootExpires.IsZero() {
		p.Expires = ch.RootExpires
		p.Changes = append(p.Changes, "root expires: "+p.Expires.UTC().Format(time.RFC3339))
	}
	if len(p.Changes) == 0 {
		return nil, fmt.Errorf("propose a new root for %s: nothing changes", r.gun)
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
	p.MustSign = []KeySet{keySet("current root", oldRoot)}
	if !oldRoot.Equals(newRoot) {
		p.MustSign = append(p.MustSign, keySet("new root", newRoot))
	}
	return p, nil
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

func keySet(name string, br data.BaseRole) KeySet {
	ks := KeySet{Name: name, Threshold: br.Threshold, Keys: map[string]json.RawMessage{}}
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
// (only those listed, if only is not empty). No network.
func (p *Proposal) Sign(cs signed.CryptoService, only []string) ([]data.Signature, error) {
	var sigs []data.Signature
	seen := map[string]bool{}
	for _, ks := range p.MustSign {
		keys, err := ks.PublicKeys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if seen[k.ID()] || (len(only) > 0 && !slices.Contains(only, k.ID())) {
				continue
			}
			id, err := utils.CanonicalKeyID(k)
			if err != nil {
				return nil, err
			}
			if _, _, err := cs.GetPrivateKey(id); err != nil {
				continue
			}
			raw := canonicaljson.RawMessage(p.Signed)
			s := &data.Signed{Signed: &raw}
			if err := signed.Sign(cs, s, []data.PublicKey{k}, 1, nil); err != nil {
				return nil, fmt.Errorf("sign the new root of %s with key %s: %w", p.GUN, short(k.ID()), err)
			}
			seen[k.ID()] = true
			sigs = append(sigs, s.Signatures...)
		}
	}
	if len(only) > 0 {
		for _, id := range only {
			if !seen[id] {
				return sigs, fmt.Errorf("key %s: not one of the keys that must sign, or not here (trust dir, inserted YubiKey)", short(id))
			}
		}
	}
	return sigs, nil
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
// signature that does not verify counts for nothing. ok is true when
// every threshold is met.
func (p *Proposal) Check(sigs []data.Signature) (st []SetStatus, ok bool, err error) {
	ok = true
	for _, ks := range p.MustSign {
		keys, err := ks.PublicKeys()
		if err != nil {
			return nil, false, err
		}
		s := SetStatus{KeySet: ks}
		for _, k := range keys {
			for i := range sigs {
				sig := sigs[i]
				if sig.KeyID != k.ID() || slices.Contains(s.Valid, k.ID()) {
					continue
				}
				if signed.VerifySignature(p.Signed, &sig, k) == nil {
					s.Valid = append(s.Valid, k.ID())
				}
			}
		}
		ok = ok && s.Met()
		st = append(st, s)
	}
	return st, ok, nil
}

// PublishRoot uploads the proposal with sigs after checking locally that
// every threshold is met and that the repository has not changed since
// it was proposed; the server signs the next snapshot and timestamp (a
// snapshot key in the trust dir signs it here instead). It reads the
// result back through the engine.
func (r *Repo) PublishRoot(ctx context.Context, p *Proposal, sigs []data.Signature) error {
	st, ok, err := p.Check(sigs)
	if err != nil {
		return err
	}
	if !ok {
		for _, s := range st {
			if !s.Met() {
				return fmt.Errorf("publish the new root of %s: %s has %d of the %d signatures it needs: sign with more of its keys (signet ceremony sign)", p.GUN, s.Name, len(s.Valid), s.Threshold)
			}
		}
	}
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, IgnoreExpiry: true})
	if err != nil {
		return err
	}
	if now := sha(res.Raw["root"]); now != p.Base.RootSHA256 || sha(res.Raw["targets"]) != p.Base.TargetsSHA256 {
		return fmt.Errorf("publish the new root of %s: the repository changed since the ceremony was prepared (root v%d then, v%d now, or new targets): prepare it again",
			p.GUN, p.Base.RootVersion, res.Roles["root"].Version)
	}
	raw := canonicaljson.RawMessage(p.Signed)
	rootJSON, err := canonicaljson.Marshal(&data.Signed{Signed: &raw, Signatures: sigs})
	if err != nil {
		return err
	}
	files := map[string][]byte{data.CanonicalRootRole.String(): rootJSON}
	var sr data.SignedRoot
	if err := json.Unmarshal(p.Signed, &sr.Signed); err != nil {
		return fmt.Errorf("parse the new root of %s: %w", p.GUN, err)
	}
	snap := sr.Signed.Roles[data.CanonicalSnapshotRole]
	snapRole := rootBaseRole(snap, sr.Signed.Keys, data.CanonicalSnapshotRole)
	if !r.serverHolds(data.CanonicalSnapshotRole, snapRole) {
		if !r.holdsAny(snapRole) {
			return fmt.Errorf("publish the new root of %s: the snapshot key (%s) is neither this trust server's nor in %s: rotate it too (--rotate snapshot --server-managed)", p.GUN, joinIDs(snapRole), r.opts.TrustDir)
		}
		sn, _, err := r.signNextSnapshot(res.Raw["snapshot"], map[string][]byte{data.CanonicalRootRole.String(): rootJSON}, snapRole, time.Time{})
		if err != nil {
			return err
		}
		files[data.CanonicalSnapshotRole.String()] = sn
	}
	if err := r.remote.SetMulti(files); err != nil {
		return r.wrap("publish the new root of", err)
	}
	if _, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server, Transport: r.opts.Transport}); err != nil {
		return fmt.Errorf("root version %d of %s was published, but reading it back failed: %w", p.Version, p.GUN, err)
	}
	return nil
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
