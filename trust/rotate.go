package trust

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/trust/verify"
)

// Rotation is one role whose keys a root rotation replaces.
type Rotation struct {
	// Role is timestamp or snapshot.
	Role data.RoleName
	// ServerManaged: the trust server makes and holds the new key. The
	// timestamp key is always the server's.
	ServerManaged bool
}

// RotateResult says what a rotation did.
type RotateResult struct {
	// RootVersion is the root version that names the new keys.
	RootVersion int
	// Keys maps each rotated role to its new key ID.
	Keys map[string]string
}

// Rotate replaces the keys of roles in a new root version signed by the
// repository's existing root keys (which the trust dir or a YubiKey must
// hold), so clients that pinned the old root follow without any action.
// It reads the current trust data through the engine (trust/verify),
// ignoring only expiry: a repository mirrored off a server that stopped
// renewing its timestamp is exactly what this takes over. The new keys
// are made by the trust server (POST <role>.key); the server then signs
// the next snapshot and timestamp with them.
//
// This is the take-over step after signet mirror: the timestamp key (and
// the snapshot key, when the old server held it) move from the old
// server to this one. Rotating root and targets keys, and thresholds,
// come with key ceremonies.
func (r *Repo) Rotate(ctx context.Context, rotations []Rotation) (RotateResult, error) {
	var out RotateResult
	if err := CheckRotations(rotations); err != nil {
		return out, err
	}
	if r.keyErr != nil {
		return out, fmt.Errorf("rotate keys of %s: %w", r.gun, r.keyErr)
	}
	p, err := r.Propose(ctx, Change{Rotations: rotations})
	if err != nil {
		return out, err
	}
	if err := r.signAndPublish(ctx, p); err != nil {
		return out, err
	}
	return RotateResult{RootVersion: p.Version, Keys: p.Rotated}, nil
}

// CheckRotations refuses rotations signet does not do (before any I/O).
func CheckRotations(rotations []Rotation) error {
	if len(rotations) == 0 {
		return errors.New("rotate: name a role: timestamp, snapshot")
	}
	seen := map[data.RoleName]bool{}
	for _, rot := range rotations {
		switch {
		case seen[rot.Role]:
			return fmt.Errorf("rotate: %s named twice", rot.Role)
		case rot.Role == data.CanonicalTimestampRole:
		case rot.Role == data.CanonicalSnapshotRole && rot.ServerManaged:
		case rot.Role == data.CanonicalSnapshotRole:
			return errors.New("rotate snapshot: only to a key the trust server holds for now (--server-managed)")
		default:
			return fmt.Errorf("rotate %s: name root, targets, snapshot or timestamp", rot.Role)
		}
		seen[rot.Role] = true
	}
	return nil
}

// serverHolds reports whether the trust server's current key for role is
// one of those role names (GET <role>.key answers the key the server
// holds for the root, or a new one).
func (r *Repo) serverHolds(role data.RoleName, br data.BaseRole) bool {
	raw, err := r.remote.GetKey(role)
	if err != nil {
		return false
	}
	k, err := data.UnmarshalPublicKey(raw)
	return err == nil && slices.Contains(br.ListKeyIDs(), k.ID())
}

// holdsAny reports whether the trust dir (or a YubiKey) holds a private
// key of the role.
func (r *Repo) holdsAny(br data.BaseRole) bool {
	for _, id := range br.ListKeyIDs() {
		if _, _, err := r.cs.GetPrivateKey(id); err == nil {
			return true
		}
	}
	return false
}

// signNextSnapshot signs the snapshot after current with role's keys
// at hand: version bumped, the hashes of files (role -> the bytes being
// uploaded), and expires unless it is zero (then kept).
func (r *Repo) signNextSnapshot(current []byte, files map[string][]byte, role data.BaseRole, expires time.Time) ([]byte, *data.SignedSnapshot, error) {
	var sn data.SignedSnapshot
	if err := json.Unmarshal(current, &sn); err != nil {
		return nil, nil, fmt.Errorf("parse the snapshot of %s: %w", r.gun, err)
	}
	for name, b := range files {
		meta, err := data.NewFileMeta(bytes.NewReader(b), data.NotaryDefaultHashes...)
		if err != nil {
			return nil, nil, fmt.Errorf("hash %s of %s: %w", name, r.gun, err)
		}
		sn.AddMeta(data.RoleName(name), meta)
	}
	sn.Signed.Version++
	if !expires.IsZero() {
		sn.Signed.Expires = expires
	}
	s, err := sn.ToSigned()
	if err != nil {
		return nil, nil, fmt.Errorf("encode the snapshot of %s: %w", r.gun, err)
	}
	s.Signatures = nil
	if err := signed.Sign(r.cs, s, role.ListKeys(), role.Threshold, nil); err != nil {
		return nil, nil, r.wrap("sign the snapshot of", err)
	}
	b, err := canonicaljson.Marshal(s)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the snapshot of %s: %w", r.gun, err)
	}
	return b, &sn, nil
}

// rootKeyErr says which keys are needed when root cannot be signed.
func rootKeyErr(err error, trustDir string) error {
	var ins signed.ErrInsufficientSignatures
	if errors.As(err, &ins) {
		return fmt.Errorf("%w: the trust dir %s (and any inserted YubiKey) holds too few of the root keys: import them (signet key import) or insert the card", err, trustDir)
	}
	return err
}

func joinIDs(br data.BaseRole) string {
	ids := br.ListKeyIDs()
	slices.Sort(ids)
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		if len(id) > 12 {
			id = id[:12]
		}
		out += id
	}
	return out
}

// TakeOver lists the rotations that move a repository's server-held keys
// to this trust server: the timestamp, unless root already names the
// server's key; the snapshot too, when nobody here can sign it (neither
// the server nor the trust dir holds a key root names for it: the old
// server held it, as Docker Content Trust does). Empty means there is
// nothing to take over.
func (r *Repo) TakeOver(ctx context.Context) ([]Rotation, error) {
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, IgnoreExpiry: true})
	if err != nil {
		return nil, err
	}
	var out []Rotation
	ts, sn := res.Roles[data.CanonicalTimestampRole.String()], res.Roles[data.CanonicalSnapshotRole.String()]
	if !r.serverHolds(data.CanonicalTimestampRole, baseRole(ts)) {
		out = append(out, Rotation{Role: data.CanonicalTimestampRole, ServerManaged: true})
	}
	if !r.serverHolds(data.CanonicalSnapshotRole, baseRole(sn)) && !r.holdsAny(baseRole(sn)) {
		out = append(out, Rotation{Role: data.CanonicalSnapshotRole, ServerManaged: true})
	}
	return out, nil
}

// baseRole is enough of a role for key checks.
func baseRole(ro *verify.Role) data.BaseRole {
	if ro == nil {
		return data.BaseRole{}
	}
	keys := map[string]data.PublicKey{}
	for _, id := range ro.KeyIDs {
		keys[id] = nil
	}
	return data.BaseRole{Name: data.RoleName(ro.Name), Keys: keys, Threshold: ro.Threshold}
}

// signAndPublish signs p with every key at hand and publishes it: the
// one-shot of a ceremony. Too few keys is an error naming the key set.
func (r *Repo) signAndPublish(ctx context.Context, p *Proposal) error {
	sigs, err := p.Sign(r.cs, nil)
	if err != nil {
		return err
	}
	st, ok, err := p.Check(sigs)
	if err != nil {
		return err
	}
	if !ok {
		for _, s := range st {
			if !s.Met() {
				err := rootKeyErr(signed.ErrInsufficientSignatures{FoundKeys: len(s.Valid), NeededKeys: s.Threshold}, r.opts.TrustDir)
				if s.Doc == DocTargets {
					err = fmt.Errorf("%w: the trust dir %s (and any inserted YubiKey) holds too few of the repository keys: import them, or sign in steps (signet ceremony)", signed.ErrInsufficientSignatures{FoundKeys: len(s.Valid), NeededKeys: s.Threshold}, r.opts.TrustDir)
				}
				return fmt.Errorf("sign %s of %s (%s): %w", p.What(), r.gun, s.Name, err)
			}
		}
	}
	return r.PublishProposal(ctx, p, sigs)
}

// RotateTargets replaces the repository (targets) keys, for a key that
// is lost or compromised: new keys (one made in the trust dir, or keyIDs,
// repository keys the trust dir or a YubiKey holds; threshold k, 0 for
// 1) are named by a new root version signed by the existing root keys,
// and the current targets, as the engine verified them, are signed again
// with the new keys and uploaded with that root in one publish; the
// trust server then signs snapshot and timestamp. Delegations keep their
// own keys and signatures. The old key signs nothing any more: the trust
// server refuses targets signed by it. Its key file stays in the trust
// dir (out.OldKeys): a failed publish must not lose it, and removing it
// is the user's call. It is the one-shot of a ceremony with --rotate
// targets.
func (r *Repo) RotateTargets(ctx context.Context, keyIDs []string, k int) (TargetsRotation, error) {
	var out TargetsRotation
	if r.keyErr != nil {
		return out, fmt.Errorf("rotate the repository key of %s: %w", r.gun, r.keyErr)
	}
	cur, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, IgnoreExpiry: true})
	if err != nil {
		return out, err
	}
	if tr := cur.Roles[data.CanonicalTargetsRole.String()]; tr != nil {
		out.OldKeys = slices.Clone(tr.KeyIDs)
	}
	var (
		keys []data.PublicKey
		made string
	)
	for _, id := range keyIDs {
		key, err := r.newTargetsKey(id, out.OldKeys)
		if err != nil {
			return out, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		key, err := r.cs.Create(data.CanonicalTargetsRole, r.gun, data.ECDSAKey)
		if err != nil {
			return out, r.wrap("create a repository key for", err)
		}
		keys, made = []data.PublicKey{key}, key.ID()
	}
	p, err := r.Propose(ctx, Change{TargetsKeys: keys, TargetsThreshold: k})
	if err == nil {
		err = r.signAndPublish(ctx, p)
	}
	if err != nil {
		if made != "" {
			_ = r.cs.RemoveKey(made) // made for this rotation, named by nothing
		}
		return out, err
	}
	out.RootVersion = p.Version
	out.Keys = map[string]string{data.CanonicalTargetsRole.String(): p.Rotated[data.CanonicalTargetsRole.String()]}
	return out, nil
}

// TargetsRotation says what RotateTargets did.
type TargetsRotation struct {
	RotateResult
	// OldKeys are the replaced repository keys, still in the trust dir.
	OldKeys []string
}

// newTargetsKey takes keyID, a repository key the trust dir (or a
// YubiKey) holds; it must not be one the targets role lists already.
func (r *Repo) newTargetsKey(keyID string, old []string) (data.PublicKey, error) {
	priv, role, err := r.cs.GetPrivateKey(keyID)
	if err != nil {
		if perr := r.opts.Passphrases.Err(); perr != nil {
			return nil, fmt.Errorf("repository key %s: %w", keyID, perr)
		}
		return nil, fmt.Errorf("repository key %s: not in %s: import it (signet key import --role targets --gun %s) or leave out --targets-key to make one", keyID, r.opts.TrustDir, r.gun)
	}
	if role != data.CanonicalTargetsRole {
		return nil, fmt.Errorf("key %s is a %s key: pass a repository key (signet key generate --role targets --gun %s)", keyID, role, r.gun)
	}
	key := data.PublicKeyFromPrivate(priv)
	if slices.Contains(old, key.ID()) {
		return nil, fmt.Errorf("key %s already is a repository key of %s: pass a new one, or leave out --targets-key to make one", keyID, r.gun)
	}
	return key, nil
}
