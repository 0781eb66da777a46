// Package bucket is the blob cache's shared store on object storage,
// through gocloud.dev/blob: a bucket of an S3-compatible service (AWS S3,
// Ceph RGW, SeaweedFS, Garage, ...) or a folder on a shared file system,
// named by a URL. Replicas of the proxy behind one load balancer point
// at the same bucket, so a blob is fetched from the upstream once for
// all of them.
//
// Objects are named "<prefix>sha256/<64 hex>" and hold the blob's bytes.
// The store trusts them no more than an upstream: blobcache hashes every
// byte it reads from the bucket and deletes an object that does not
// match.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs
	"gocloud.dev/gcerrors"

	"github.com/signet-project/signet/registry/blobcache"
)

// Bucket is a blobcache.Shared store in a gocloud.dev bucket.
type Bucket struct {
	b    *blob.Bucket
	name string // the URL without its query, for logs
}

var _ blobcache.Shared = (*Bucket)(nil)

// Open opens the bucket named by rawURL:
//
//	s3://BUCKET?region=REGION[&endpoint=https://HOST:PORT][&use_path_style=true][&prefix=DIR/]
//	file:///PATH/TO/FOLDER[?prefix=DIR/]
//
// For s3:// the credentials come from the AWS SDK's usual places
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials,
// AWS_PROFILE, an instance or pod role); see
// https://gocloud.dev/howto/blob/#s3 for every parameter. Open checks
// that the bucket can be listed, so a wrong name, endpoint or key fails
// here, at start, rather than on the first pull.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("shared cache URL: %w", err)
	}
	switch u.Scheme {
	case "s3", "file":
	default:
		return nil, fmt.Errorf("shared cache URL %q: give s3://BUCKET?region=... (S3-compatible object storage) or file:///FOLDER", redact(u))
	}
	name := redact(u)
	b, err := blob.OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("open shared cache %s: %w", name, err)
	}
	it := b.List(&blob.ListOptions{Prefix: "sha256/"})
	if _, err := it.Next(ctx); err != nil && !errors.Is(err, io.EOF) {
		b.Close()
		return nil, fmt.Errorf("open shared cache %s: list the bucket: %w (check the bucket name, endpoint, region and credentials)", name, err)
	}
	return &Bucket{b: b, name: name}, nil
}

// redact is u without its query (which names no secrets in gocloud's
// URLs, but may be long) and without user information.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}

func key(digest string) string {
	return "sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// Open returns the object of digest; an error wrapping
// blobcache.ErrNotShared if there is none.
func (b *Bucket) Open(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	r, err := b.b.NewReader(ctx, key(digest), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, 0, fmt.Errorf("%s in %s: %w", digest, b.name, blobcache.ErrNotShared)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s from %s: %w", digest, b.name, err)
	}
	return r, r.Size(), nil
}

// Put uploads size bytes of r as the object of digest. Object storage
// makes an object visible only once its upload completed (a file://
// bucket writes a temporary file and renames it).
func (b *Bucket) Put(ctx context.Context, digest string, size int64, r io.Reader) error {
	err := b.b.Upload(ctx, key(digest), io.LimitReader(r, size), &blob.WriterOptions{
		ContentType:                 "application/octet-stream",
		DisableContentTypeDetection: true,
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", digest, b.name, err)
	}
	return nil
}

// Delete removes the object of digest, if any.
func (b *Bucket) Delete(ctx context.Context, digest string) error {
	err := b.b.Delete(ctx, key(digest))
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s from %s: %w", digest, b.name, err)
	}
	return nil
}

// String is the bucket's URL without its query.
func (b *Bucket) String() string { return b.name }

// Close releases the bucket's connections.
func (b *Bucket) Close() error { return b.b.Close() }
