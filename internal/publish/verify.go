package publish

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// Verified is a tag whose served digest is the signed one.
type Verified struct {
	Image  string
	Digest string
	Size   int64
	Role   string
}

// read verifies repo's trust data with the engine (trust/verify), as
// every reader in signet does.
func (c Config) read(ctx context.Context, repo name.Repository, all bool) (*verify.Result, string, error) {
	server := c.serverFor(repo)
	gun := registry.GUN(repo)
	rt, err := trust.NewTransport(ctx, server, gun, c.TrustAuth, "pull")
	if err != nil {
		return nil, gun, err
	}
	res, err := trust.Read(ctx, gun, trust.ReadOptions{TrustDir: c.TrustDir, Server: server, Transport: rt,
		Rule: verify.Rule{}, AllDelegations: all})
	return res, gun, err
}

// Verify checks that the manifest the registry serves now for image is
// the signed one: the tag is decided by the engine along docker's path
// (targets/releases, then targets), then the manifest is fetched and its
// bytes hashed; no registry header is trusted. Not signed, a moved tag,
// or trust data that fails verification is a *trust.DenyError.
func Verify(ctx context.Context, c Config, image string) (Verified, error) {
	tag, err := registry.ParseTag(image)
	if err != nil {
		return Verified{}, err
	}
	res, gun, err := c.read(ctx, tag.Context(), false)
	if err != nil {
		return Verified{}, err
	}
	t, role, err := res.Lookup(gun, tag.TagStr(), verify.DockerPath)
	if err != nil {
		return Verified{}, lookupDenial(tag.String(), err)
	}
	raw, _, err := registry.FetchManifest(ctx, tag, c.Registry)
	if err != nil {
		return Verified{}, fmt.Errorf("fetch manifest of %s: %w", tag, err)
	}
	served := sha256.Sum256(raw)
	signed := trust.SignedTarget{Tag: tag.TagStr(), SHA256: t.SHA256, Size: t.Length, Role: role}
	if err := trust.Check(tag.String(), signed, served[:], int64(len(raw))); err != nil {
		return Verified{}, err
	}
	return Verified{Image: tag.String(), Digest: signed.Digest(), Size: signed.Size, Role: role}, nil
}

// lookupDenial turns an engine lookup error into a *trust.DenyError.
func lookupDenial(image string, err error) error {
	var ns *verify.NotSignedError
	if errors.As(err, &ns) {
		return &trust.DenyError{Image: image, Reason: trust.ReasonNotSigned, Err: errors.New(ns.Detail)}
	}
	return &trust.DenyError{Image: image, Reason: trust.ReasonTrustData, Err: err}
}

// Inspection is one image's inspection, with what docker's format has no
// field for.
type Inspection struct {
	trust.Inspection
	// Notes name disabled or failed delegations.
	Notes []string `json:"-"`
}

// Inspect returns docker-trust-inspect-shaped data for each image
// (IMAGE or IMAGE:TAG; a tag keeps only that tag), from trust data the
// engine verified.
func Inspect(ctx context.Context, c Config, images []string) ([]Inspection, error) {
	var out []Inspection
	for _, image := range images {
		repoName, tagName := splitTag(image)
		repo, err := registry.ParseRepository(repoName)
		if err != nil {
			return out, err
		}
		res, gun, err := c.read(ctx, repo, true)
		if err != nil {
			return out, err
		}
		in, notes := trust.Inspect(image, gun, res)
		if tagName != "" {
			kept := in.SignedTags[:0]
			for _, t := range in.SignedTags {
				if t.SignedTag == tagName {
					kept = append(kept, t)
				}
			}
			in.SignedTags = kept
		}
		out = append(out, Inspection{Inspection: in, Notes: notes})
	}
	return out, nil
}
