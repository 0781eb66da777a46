// Package registry does signet's image operations over
// go-containerregistry: parse and normalise references, resolve a tag to
// the digest and size of its manifest, and push images from an OCI image
// layout, a `docker save` tarball or another registry.
package registry

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options configure registry access. The zero value uses the Docker
// keychain (~/.docker/config.json and credential helpers) and the default
// transport.
type Options struct {
	// Keychain resolves credentials; nil uses authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport carries requests; nil uses remote.DefaultTransport.
	Transport http.RoundTripper
	// Progress, if set, receives upload progress while pushing. Push
	// closes it when it returns.
	Progress chan<- v1.Update
}

func (o Options) remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("signet")}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	return opts
}

// Target is what a tag names in a registry: the digest and size of the
// exact manifest (or index) bytes, which is what a trust target records.
type Target struct {
	// Ref is the image reference, normalised.
	Ref name.Tag
	// GUN is the trust collection name (docker.io/library/alpine).
	GUN string
	// Digest is the sha256 of the manifest bytes.
	Digest v1.Hash
	// Size is the length of the manifest bytes.
	Size int64
	// MediaType is the manifest's media type.
	MediaType types.MediaType
}

// ParseTag parses IMAGE[:TAG] as Docker does (docker.io and "latest" by
// default). A reference by digest is refused: trust signs tags.
func ParseTag(s string) (name.Tag, error) {
	if strings.Contains(s, "@") {
		return name.Tag{}, fmt.Errorf("image %q is a digest reference: name a tag (IMAGE:TAG) to sign or verify", s)
	}
	t, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, fmt.Errorf("parse image %q: %w", s, err)
	}
	return t, nil
}

// ParseRepository parses IMAGE (no tag, no digest).
func ParseRepository(s string) (name.Repository, error) {
	r, err := name.NewRepository(s)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parse repository %q: %w", s, err)
	}
	return r, nil
}

// GUN is the Notary globally unique name of a repository: the fully
// qualified repository without tag, with Docker Hub spelt docker.io as
// Docker's trust data has it (go-containerregistry says index.docker.io).
func GUN(repo name.Repository) string {
	n := repo.Name()
	if rest, ok := strings.CutPrefix(n, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return n
}
