package publish

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
)

// Rotate replaces the keys of roles ("timestamp", "snapshot") of image's
// repository with keys the trust server makes, in a new root version
// signed by the existing root keys (see trust.Repo.Rotate).
// serverManaged applies to the snapshot; the timestamp key is always the
// server's.
func Rotate(ctx context.Context, c Config, image string, roles []string, serverManaged bool) (gun string, res trust.RotateResult, err error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return "", res, fmt.Errorf("rotate %s: name a repository without a tag", image)
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return "", res, err
	}
	var rots []trust.Rotation
	rotateRoot := false
	for _, r := range roles {
		role := data.RoleName(r)
		if role == data.CanonicalRootRole {
			rotateRoot = true
			continue
		}
		rots = append(rots, trust.Rotation{Role: role, ServerManaged: serverManaged || role == data.CanonicalTimestampRole})
	}
	if len(rots) > 0 || !rotateRoot {
		if err := trust.CheckRotations(rots); err != nil {
			return "", res, err
		}
	}
	t, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return "", res, err
	}
	if rotateRoot {
		res, err = rotateRootKey(ctx, t, rots)
		return t.GUN(), res, err
	}
	res, err = t.Rotate(ctx, rots)
	return t.GUN(), res, err
}

// rotateRootKey is the one-shot root rotation, all keys at hand: a new
// root key in the trust dir, a new root version naming it (and any other
// rotations), signed by the current root keys and the new one, published.
// A ceremony does the same in steps, with keys held by several people.
func rotateRootKey(ctx context.Context, t *trust.Repo, rots []trust.Rotation) (trust.RotateResult, error) {
	var res trust.RotateResult
	cs := t.CryptoService()
	k, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		return res, fmt.Errorf("make a new root key for %s: %w", t.GUN(), err)
	}
	cert, err := trust.RootCert(cs, k.ID(), t.GUN())
	if err != nil {
		return res, err
	}
	p, err := t.Propose(ctx, trust.Change{RootKeys: []data.PublicKey{cert}, Rotations: rots})
	if err != nil {
		return res, err
	}
	sigs, err := p.Sign(cs, nil)
	if err != nil {
		return res, err
	}
	if err := t.PublishProposal(ctx, p, sigs); err != nil {
		return res, err
	}
	keys := map[string]string{data.CanonicalRootRole.String(): cert.ID()}
	for role, id := range p.Rotated {
		keys[role] = id
	}
	return trust.RotateResult{RootVersion: p.Version, Keys: keys}, nil
}

// OpenRepo opens repo's trust data on c's trust server for changes (push
// and pull), for the commands that work on the trust data directly.
func OpenRepo(ctx context.Context, c Config, repo name.Repository) (*trust.Repo, error) {
	return c.open(ctx, repo, "push", "pull")
}
