package bucket_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/blobcache/bucket"
)

// backend is one kind of shared store: its URL, and how to put bytes
// under a digest's object behind the store's back.
type backend struct {
	name string
	open func(t *testing.T) string // a fresh bucket's URL
}

func backends() []backend {
	return []backend{
		{"file", func(t *testing.T) string { return "file://" + filepath.ToSlash(t.TempDir()) }},
		{"s3", func(t *testing.T) string {
			s := testenv.S3Server(t)
			t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			q := url.Values{"region": {s.Region}, "endpoint": {s.Endpoint}, "use_path_style": {"true"}, "prefix": {"cache/"}}
			if strings.HasPrefix(s.Endpoint, "http://") {
				q.Set("disable_https", "true")
			}
			return "s3://" + s.Bucket + "?" + q.Encode()
		}},
	}
}

func testBlob(n int, seed uint64) ([]byte, string) {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	sum := sha256.Sum256(b)
	return b, "sha256:" + hex.EncodeToString(sum[:])
}

// source is an upstream that counts its fetches.
type source struct {
	data    []byte
	fetches atomic.Int64
}

func (s *source) fetch(context.Context) (io.ReadCloser, int64, error) {
	s.fetches.Add(1)
	return io.NopCloser(bytes.NewReader(s.data)), int64(len(s.data)), nil
}

func openStore(t *testing.T, shared blobcache.Shared) *blobcache.Store {
	t.Helper()
	s, err := blobcache.Open(t.TempDir(), blobcache.Options{Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openBucket(t *testing.T, rawURL string) *bucket.Bucket {
	t.Helper()
	b, err := bucket.Open(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func read(t *testing.T, s *blobcache.Store, digest string, src *source) ([]byte, error) {
	t.Helper()
	rd, err := s.Fetch(context.Background(), digest, -1, src.fetch)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// waitPut waits until s copied n blobs to its shared store (the copy
// runs in the background).
func waitPut(t *testing.T, s *blobcache.Store, n int64) {
	t.Helper()
	for range 500 {
		if st := s.Stats().Shared; st.Puts >= n {
			return
		} else if st.Errors > 0 {
			t.Fatalf("copy to the shared store failed: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("blob not copied to the shared store: %+v", s.Stats().Shared)
}

// waitIdle waits until s has no fetch in progress: a fetch is committed
// after its reader got the last byte.
func waitIdle(t *testing.T, s *blobcache.Store) {
	t.Helper()
	for range 1000 {
		if s.Stats().InFlight == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fetch still in progress after 10 s: %+v", s.Stats())
}

// TestSharedAcrossReplicas: two stores (two proxies) on one bucket. A
// blob fetched from the source by the first is read by the second from
// the bucket, hashed, without a fetch of its own; a manifest kept by the
// first is there too.
func TestSharedAcrossReplicas(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			u := be.open(t)
			a, b := openStore(t, openBucket(t, u)), openStore(t, openBucket(t, u))
			data, digest := testBlob(3<<20+17, 1)
			src := &source{data: data}
			if got, err := read(t, a, digest, src); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("replica a: %v", err)
			}
			waitPut(t, a, 1)
			if got, err := read(t, b, digest, src); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("replica b: %v", err)
			}
			if n := src.fetches.Load(); n != 1 {
				t.Errorf("source fetched %d times for two replicas, want 1", n)
			}
			waitIdle(t, b)
			if st := b.Stats(); st.Shared.Hits != 1 || st.Objects != 1 {
				t.Errorf("replica b: %+v", st)
			}
			// Read from the bucket, b does not copy it back.
			if st := b.Stats().Shared; st.Puts != 0 {
				t.Errorf("replica b copied a blob it read from the bucket: %+v", st)
			}

			man, mdig := testBlob(900, 2)
			if err := a.Keep(context.Background(), mdig, man); err != nil {
				t.Fatal(err)
			}
			waitPut(t, a, 2)
			none := &source{}
			if got, err := read(t, b, mdig, none); err != nil || !bytes.Equal(got, man) || none.fetches.Load() != 0 {
				t.Fatalf("kept manifest through the bucket: %v, %d fetches", err, none.fetches.Load())
			}
		})
	}
}

// TestSharedBadObject: an object changed in the bucket is never served
// whole: the reader fails before the last byte, the object is deleted,
// and the next fetch goes to the source.
func TestSharedBadObject(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			u := be.open(t)
			bk := openBucket(t, u)
			data, digest := testBlob(1<<20, 3)
			bad := bytes.Clone(data)
			bad[len(bad)/2] ^= 1
			if err := bk.Put(context.Background(), digest, int64(len(bad)), bytes.NewReader(bad)); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, bk)
			src := &source{data: data}
			got, err := read(t, s, digest, src)
			if !errors.Is(err, blobcache.ErrMismatch) {
				t.Fatalf("read of a changed shared object: %d bytes, %v; want ErrMismatch", len(got), err)
			}
			if len(got) >= len(data) {
				t.Fatalf("all %d bytes delivered before the mismatch", len(got))
			}
			if rc, _, err := bk.Open(context.Background(), digest); !errors.Is(err, blobcache.ErrNotShared) {
				if err == nil {
					rc.Close()
				}
				t.Fatalf("bad object still in the bucket: %v", err)
			}
			if got, err := read(t, s, digest, src); err != nil || !bytes.Equal(got, data) || src.fetches.Load() != 1 {
				t.Fatalf("after the bad object: %v, %d source fetches", err, src.fetches.Load())
			}
			if st := s.Stats().Shared; st.Mismatches != 1 {
				t.Errorf("shared stats: %+v", st)
			}
		})
	}
}

// TestSharedDown: with the bucket's service gone, fetches go to the
// source and the failure is counted, not returned.
func TestSharedDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	u := "s3://down?region=us-east-1&use_path_style=true&disable_https=true&endpoint=" + url.QueryEscape(endpoint)
	if _, err := bucket.Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "check the bucket name, endpoint") {
		t.Fatalf("Open of an unreachable bucket: %v", err)
	}

	// Reachable at start, gone later: a file bucket whose folder goes.
	dir := t.TempDir()
	bk := openBucket(t, "file://"+filepath.ToSlash(dir))
	s := openStore(t, bk)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, digest := testBlob(70000, 4)
	src := &source{data: data}
	if got, err := read(t, s, digest, src); err != nil || !bytes.Equal(got, data) || src.fetches.Load() != 1 {
		t.Fatalf("with the bucket gone: %v, %d source fetches", err, src.fetches.Load())
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"http://bucket", "gs://b", "::"} {
		if _, err := bucket.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}
