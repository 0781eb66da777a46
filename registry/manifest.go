package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxManifestBytes caps a manifest (or index) read from a registry, as
// the proxy does.
const MaxManifestBytes = 4 << 20

// manifestAccept lists the manifest types asked for.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// Resolve asks the registry which manifest a tag names now. It fetches
// the manifest bytes (GET, at most MaxManifestBytes) and hashes them:
// the digest and size are computed, never taken from the registry's
// Docker-Content-Digest or Content-Length headers, so a registry that
// answers HEAD with one digest and GET with other bytes cannot make
// signet sign or verify what it does not serve.
func Resolve(ctx context.Context, tag name.Tag, opts Options) (Target, error) {
	raw, mt, err := FetchManifest(ctx, tag, opts)
	if err != nil {
		return Target{}, fmt.Errorf("resolve %s: %w", tag, err)
	}
	sum := sha256.Sum256(raw)
	return Target{Ref: tag, GUN: GUN(tag.Context()), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size: int64(len(raw)), MediaType: mt}, nil
}

// FetchManifest GETs the manifest ref names and returns its exact bytes
// and media type. More than MaxManifestBytes is an error.
func FetchManifest(ctx context.Context, ref name.Reference, opts Options) ([]byte, types.MediaType, error) {
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, "", fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(base, "signet"), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, "", err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref.Identifier())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", err
	}
	if resp.ContentLength > MaxManifestBytes {
		return nil, "", fmt.Errorf("manifest of %s is %d bytes, over the %d-byte limit", ref, resp.ContentLength, MaxManifestBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read manifest of %s: %w", ref, err)
	}
	if len(raw) > MaxManifestBytes {
		return nil, "", fmt.Errorf("manifest of %s is over the %d-byte limit", ref, MaxManifestBytes)
	}
	return raw, types.MediaType(resp.Header.Get("Content-Type")), nil
}
