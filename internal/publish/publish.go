// Package publish joins registry and trust for the publisher's commands:
// push then sign, sign tags resolved from the registry, verify what the
// registry serves against the signature, inspect and revoke.
package publish

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/theupdateframework/notary/trustmanager"
	"golang.org/x/sync/errgroup"

	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
)

// DockerHubTrustServer is Docker's trust server for docker.io images.
const DockerHubTrustServer = "https://notary.docker.io"

// Config is what every publisher command shares.
type Config struct {
	// TrustDir holds keys and cached trust data.
	TrustDir string
	// Server is the trust server URL; empty derives it as docker does
	// (notary.docker.io for docker.io, else https://<registry>).
	Server string
	// TrustAuth authenticates to the trust server.
	TrustAuth trust.TransportOptions
	// Registry configures registry access.
	Registry registry.Options
	// Passphrases unlocks keys.
	Passphrases *keys.Retriever
	// Logger receives progress logs; nil discards.
	Logger *slog.Logger
	// SignerKey, if set, is a key from the environment held in memory.
	SignerKey *keys.EnvKey
	// HardwareKeys are device key stores (a YubiKey root) used first.
	HardwareKeys []trustmanager.KeyStore
}

// ServerFromEnv picks the trust server: the flag, else SIGNET_TRUST_SERVER,
// else DOCKER_CONTENT_TRUST_SERVER, else "" (derive per registry).
func ServerFromEnv(flag string, getenv func(string) string) string {
	for _, v := range []string{flag, getenv("SIGNET_TRUST_SERVER"), getenv("DOCKER_CONTENT_TRUST_SERVER")} {
		if v != "" {
			return v
		}
	}
	return ""
}

// serverFor returns the trust server for a repository.
func (c Config) serverFor(repo name.Repository) string {
	if c.Server != "" {
		return strings.TrimSuffix(c.Server, "/")
	}
	if repo.RegistryStr() == name.DefaultRegistry {
		return DockerHubTrustServer
	}
	return "https://" + repo.RegistryStr()
}

// open opens the trust data of repo with a transport for actions.
func (c Config) open(ctx context.Context, repo name.Repository, actions ...string) (*trust.Repo, error) {
	server := c.serverFor(repo)
	gun := registry.GUN(repo)
	rt, err := trust.NewTransport(ctx, server, gun, c.TrustAuth, actions...)
	if err != nil {
		return nil, err
	}
	opts := trust.Options{TrustDir: c.TrustDir, Server: server, Transport: rt, Passphrases: c.Passphrases, HardwareKeys: c.HardwareKeys, Logger: c.Logger}
	if c.SignerKey != nil {
		opts.ExtraKeys = []*keys.EnvKey{c.SignerKey}
	}
	return trust.Open(gun, opts)
}

// Request is one tag to sign; Digest and Size skip the registry lookup.
type Request struct {
	Image  string
	Digest string // "sha256:<hex>", optional
	Size   int64  // with Digest
}

// Signed reports one signed tag.
type Signed struct {
	Image  string
	GUN    string
	Tag    string
	Digest string
	Size   int64
	Roles  []string
	Init   bool
	// Notes say what else signing did (a delegation started again).
	Notes []string
}

// ParseDigest parses "sha256:<64 hex>".
func ParseDigest(d string) ([]byte, error) {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 {
		return nil, fmt.Errorf("digest %q: want sha256:<64 hex digits>", d)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil {
		return nil, fmt.Errorf("digest %q: want sha256:<64 hex digits>", d)
	}
	return b, nil
}

// Sign signs every request: tags without a digest are resolved from the
// registry first; tags are grouped by repository and each repository is
// published once.
func Sign(ctx context.Context, c Config, reqs []Request) ([]Signed, error) {
	type group struct {
		repo    name.Repository
		targets []trust.Target
		images  []string
	}
	// Resolve the tags that have no digest, a few at a time.
	resolved, err := resolveAll(ctx, c, reqs)
	if err != nil {
		return nil, err
	}
	groups := map[string]*group{}
	var order []string
	for i, req := range reqs {
		tag, err := registry.ParseTag(req.Image)
		if err != nil {
			return nil, err
		}
		var sum []byte
		size := req.Size
		if req.Digest != "" {
			if sum, err = ParseDigest(req.Digest); err != nil {
				return nil, fmt.Errorf("sign %s: %w", req.Image, err)
			}
			if size < 0 {
				return nil, fmt.Errorf("sign %s: manifest size %d: it must be a positive number of bytes", req.Image, size)
			}
			if size == 0 {
				return nil, fmt.Errorf("sign %s: a digest needs the manifest size too (--size)", req.Image)
			}
		} else {
			t := resolved[i]
			if t.Digest.Algorithm != "sha256" {
				return nil, fmt.Errorf("sign %s: the registry names it by %s; only sha256 can be signed", req.Image, t.Digest.Algorithm)
			}
			sum, _ = hex.DecodeString(t.Digest.Hex)
			size = t.Size
		}
		gun := registry.GUN(tag.Context())
		g, ok := groups[gun]
		if !ok {
			g = &group{repo: tag.Context()}
			groups[gun] = g
			order = append(order, gun)
		}
		g.targets = append(g.targets, trust.Target{Tag: tag.TagStr(), SHA256: sum, Size: size})
		g.images = append(g.images, tag.String())
	}
	var out []Signed
	for _, gun := range order {
		g := groups[gun]
		repo, err := c.open(ctx, g.repo, "push", "pull")
		if err != nil {
			return out, err
		}
		res, err := repo.Sign(ctx, g.targets)
		if err != nil {
			return out, err
		}
		for i, t := range g.targets {
			out = append(out, Signed{Image: g.images[i], GUN: gun, Tag: t.Tag, Digest: "sha256:" + hex.EncodeToString(t.SHA256), Size: t.Size, Roles: res.Roles, Init: res.Initialized, Notes: res.Notes})
		}
	}
	return out, nil
}

// resolveConcurrency bounds parallel registry lookups in Sign.
const resolveConcurrency = 8

// resolveAll resolves, in parallel, the requests without a digest; the
// result is indexed like reqs.
func resolveAll(ctx context.Context, c Config, reqs []Request) ([]registry.Target, error) {
	out := make([]registry.Target, len(reqs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveConcurrency)
	for i, req := range reqs {
		if req.Digest != "" {
			continue
		}
		tag, err := registry.ParseTag(req.Image)
		if err != nil {
			return nil, err
		}
		g.Go(func() error {
			t, err := registry.Resolve(gctx, tag, c.Registry)
			out[i] = t
			return err
		})
	}
	return out, g.Wait()
}

// Push pushes src to image (IMAGE:TAG) and signs the pushed digest.
// Before uploading it checks that the tag can be signed (trust server
// reachable, keys unlockable); if not, it pushes nothing, unless
// allowUnsigned, in which case it pushes and returns the reason it did
// not sign as unsigned. If signing fails after the push, the error says
// the image is in the registry unsigned.
func Push(ctx context.Context, c Config, src, image string, allowUnsigned bool) (s Signed, unsigned error, err error) {
	tag, err := registry.ParseTag(image)
	if err != nil {
		return Signed{}, nil, err
	}
	if err := checkSource(src); err != nil {
		return Signed{}, nil, err
	}
	art, err := registry.Open(ctx, src, c.Registry)
	if err != nil {
		return Signed{}, nil, err
	}
	repo, err := c.open(ctx, tag.Context(), "push", "pull")
	if err == nil {
		err = repo.Preflight(ctx, tag.TagStr())
	}
	if err != nil {
		if !allowUnsigned {
			return Signed{}, nil, fmt.Errorf("nothing pushed: %w (or pass --allow-unsigned)", err)
		}
		t, perr := registry.Push(ctx, art, tag, c.Registry)
		if perr != nil {
			return Signed{}, nil, perr
		}
		return Signed{Image: tag.String(), GUN: t.GUN, Tag: tag.TagStr(), Digest: "sha256:" + t.Digest.Hex, Size: t.Size}, err, nil
	}
	t, err := registry.Push(ctx, art, tag, c.Registry)
	if err != nil {
		return Signed{}, nil, err
	}
	// Sign with the repository checked above: no second trust server
	// handshake between push and sign.
	sum, err := hex.DecodeString(t.Digest.Hex)
	if err != nil {
		return Signed{}, nil, fmt.Errorf("%s was pushed as %s but NOT signed: %w", tag, t.Digest, err)
	}
	res, err := repo.Sign(ctx, []trust.Target{{Tag: tag.TagStr(), SHA256: sum, Size: t.Size}})
	if err != nil {
		return Signed{}, nil, fmt.Errorf("%s was pushed as sha256:%s but NOT signed: %w", tag, t.Digest.Hex, err)
	}
	return Signed{Image: tag.String(), GUN: t.GUN, Tag: tag.TagStr(), Digest: "sha256:" + t.Digest.Hex, Size: t.Size, Roles: res.Roles, Init: res.Initialized}, nil, nil
}

// Revoke removes the signature of image's tag, or of every tag when
// image has no tag.
func Revoke(ctx context.Context, c Config, image string) ([]string, error) {
	repoName, tagName := splitTag(image)
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return nil, err
	}
	r, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return nil, err
	}
	var tags []string
	if tagName != "" {
		tags = []string{tagName}
	}
	return r.Revoke(ctx, tags)
}

// Init creates and publishes a repository's trust data.
func Init(ctx context.Context, c Config, image string) (bool, error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return false, fmt.Errorf("init %s: name a repository without a tag", image)
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return false, err
	}
	r, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return false, err
	}
	created, err := r.Init(ctx)
	if err != nil || !created {
		return created, err
	}
	return true, r.Publish(ctx)
}

// splitTag splits IMAGE[:TAG], minding registry ports.
func splitTag(image string) (repo, tag string) {
	if strings.Contains(image, "@") {
		return image, ""
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}

// IsDenied reports whether err is a trust denial (not signed, moved).
func IsDenied(err error) bool {
	var d *trust.DenyError
	return errors.As(err, &d)
}
