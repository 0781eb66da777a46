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
	for _, r := range roles {
		role := data.RoleName(r)
		rots = append(rots, trust.Rotation{Role: role, ServerManaged: serverManaged || role == data.CanonicalTimestampRole})
	}
	if err := trust.CheckRotations(rots); err != nil {
		return "", res, err
	}
	t, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return "", res, err
	}
	res, err = t.Rotate(ctx, rots)
	return t.GUN(), res, err
}

// OpenRepo opens repo's trust data on c's trust server for changes (push
// and pull), for the commands that work on the trust data directly.
func OpenRepo(ctx context.Context, c Config, repo name.Repository) (*trust.Repo, error) {
	return c.open(ctx, repo, "push", "pull")
}
