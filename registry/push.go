package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source kinds Push accepts.
const (
	SourceLayout   = "oci-layout"
	SourceTarball  = "tarball"
	SourceRegistry = "registry"
)

// Artifact is an image or an index to push, with its exact manifest.
type Artifact struct {
	Kind  string
	image v1.Image
	index v1.ImageIndex
}

// Open finds what src names: a folder with an oci-layout file (an OCI
// image layout holding one image or index), a file (a `docker save` or
// OCI tarball with one image), or else an image reference in a registry.
func Open(ctx context.Context, src string, opts Options) (Artifact, error) {
	if fi, err := os.Stat(src); err == nil {
		if fi.IsDir() {
			return openLayout(src)
		}
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			return Artifact{}, fmt.Errorf("read image tarball %q: %w (a tarball with several images is not supported: save one image)", src, err)
		}
		return Artifact{Kind: SourceTarball, image: img}, nil
	}
	ref, err := name.ParseReference(src)
	if err != nil {
		return Artifact{}, fmt.Errorf("source %q is neither a file, a folder nor an image reference: %w", src, err)
	}
	desc, err := remote.Get(ref, opts.remote(ctx)...)
	if err != nil {
		return Artifact{}, fmt.Errorf("read source image %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return Artifact{}, fmt.Errorf("read source index %s: %w", ref, err)
		}
		return Artifact{Kind: SourceRegistry, index: idx}, nil
	}
	img, err := desc.Image()
	if err != nil {
		return Artifact{}, fmt.Errorf("read source image %s: %w", ref, err)
	}
	return Artifact{Kind: SourceRegistry, image: img}, nil
}

func openLayout(dir string) (Artifact, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return Artifact{}, fmt.Errorf("folder %q is not an OCI image layout (no oci-layout file)", dir)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return Artifact{}, fmt.Errorf("read OCI layout %q: %w", dir, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return Artifact{}, fmt.Errorf("read OCI layout %q: %w", dir, err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		return Artifact{}, fmt.Errorf("read index.json of %q: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return Artifact{}, fmt.Errorf("OCI layout %q lists %d manifests in index.json: it must hold exactly one image or index", dir, len(im.Manifests))
	}
	d := im.Manifests[0]
	switch {
	case d.MediaType.IsIndex():
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			return Artifact{}, fmt.Errorf("read index %s in %q: %w", d.Digest, dir, err)
		}
		return Artifact{Kind: SourceLayout, index: idx}, nil
	case d.MediaType.IsImage():
		img, err := root.Image(d.Digest)
		if err != nil {
			return Artifact{}, fmt.Errorf("read image %s in %q: %w", d.Digest, dir, err)
		}
		return Artifact{Kind: SourceLayout, image: img}, nil
	}
	return Artifact{}, fmt.Errorf("OCI layout %q holds a %s, not an image or index", dir, d.MediaType)
}

// Manifest returns the exact manifest (or index) bytes that will be pushed.
func (a Artifact) Manifest() ([]byte, types.MediaType, error) {
	if a.index != nil {
		b, err := a.index.RawManifest()
		if err != nil {
			return nil, "", err
		}
		mt, err := a.index.MediaType()
		return b, mt, err
	}
	if a.image == nil {
		return nil, "", errors.New("empty artifact")
	}
	b, err := a.image.RawManifest()
	if err != nil {
		return nil, "", err
	}
	mt, err := a.image.MediaType()
	return b, mt, err
}

// Push uploads an artifact to dst and returns the digest and size of the
// manifest bytes pushed (what the registry serves for dst from now on).
func Push(ctx context.Context, a Artifact, dst name.Tag, opts Options) (Target, error) {
	raw, mt, err := a.Manifest()
	if err != nil {
		return Target{}, fmt.Errorf("read manifest to push to %s: %w", dst, err)
	}
	ropts := opts.remote(ctx)
	if opts.Progress != nil {
		ropts = append(ropts, remote.WithProgress(opts.Progress))
	}
	if a.index != nil {
		err = remote.WriteIndex(dst, a.index, ropts...)
	} else {
		err = remote.Write(dst, a.image, ropts...)
	}
	if err != nil {
		return Target{}, fmt.Errorf("push %s: %w", dst, err)
	}
	sum := sha256.Sum256(raw)
	return Target{
		Ref:       dst,
		GUN:       GUN(dst.Context()),
		Digest:    v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)},
		Size:      int64(len(raw)),
		MediaType: mt,
	}, nil
}
