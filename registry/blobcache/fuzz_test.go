package blobcache

import (
	"path/filepath"
	"testing"
)

// FuzzCheckDigest: a digest that passes the check names a file directly
// inside the store's folder, whatever a client sent.
func FuzzCheckDigest(f *testing.F) {
	_, d := testBlob(1, 1)
	for _, seed := range []string{d, "sha256:../../etc/passwd", "sha256:" + d[7:70] + "/", "", "sha256:" + d[7:70] + "G"} {
		f.Add(seed)
	}
	s := &Store{dir: filepath.Join("/cache", "sha256")}
	f.Fuzz(func(t *testing.T, d string) {
		if checkDigest(d) != nil {
			return
		}
		p := s.path(d)
		if filepath.Dir(p) != s.dir || len(filepath.Base(p)) != hexLen || !isHex(filepath.Base(p)) || digestPrefix+filepath.Base(p) != d {
			t.Fatalf("digest %q maps to %q", d, p)
		}
	})
}
