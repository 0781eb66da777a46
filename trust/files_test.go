package trust

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
)

// TestDamagedCachedRoot: a cached root.json notary cannot load (it pins
// the repository's root) is an error naming the file and what to do.
func TestDamagedCachedRoot(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not json") }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"empty", func([]byte) []byte { return nil }},
		{"signed part changed", func(b []byte) []byte { return bytes.Replace(b, []byte(`"version":1`), []byte(`"version":7`), 1) }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gun := "registry.example.com/team/root" + string(rune('a'+i))
			dir := t.TempDir()
			if _, err := openRepo(t, gun, srv, dir, nil).Sign(ctx, []Target{randomTarget(t, "v1")}); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "tuf", gun, "metadata", "root.json")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(raw)
			if bytes.Equal(damaged, raw) {
				t.Fatal("the damage changed nothing")
			}
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(gun, Options{TrustDir: dir, Server: srv, Passphrases: testPassphrases()})
			if err == nil || !strings.Contains(err.Error(), "read cached root of "+gun+" "+path+": ") ||
				!strings.Contains(err.Error(), "remove it only if you know why it changed") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("open with a damaged cached root: %v", err)
			}
			t.Logf("open: %v", err)
		})
	}
}

// TestDamagedKeyFile: a key file that cannot be read stops signing,
// revoking and push's preflight with an error naming it; on a new
// repository no root key is made in its place.
func TestDamagedKeyFile(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()

	// A new repository and a damaged root key file: no new root key.
	dir := t.TempDir()
	priv := filepath.Join(dir, "private")
	if err := os.MkdirAll(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(priv, "0123abcd.key")
	if err := os.WriteFile(rootFile, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: root\n\nMIIB"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "registry.example.com/team/newrepo", srv, dir, nil)
	_, err := r.Sign(ctx, []Target{randomTarget(t, "v1")})
	var fe *keys.FileError
	if !errors.As(err, &fe) || fe.Path != rootFile || !strings.HasSuffix(err.Error(), "fix or remove it") {
		t.Fatalf("sign with a damaged root key file: %v", err)
	}
	t.Logf("sign: %v", err)
	if err := r.Preflight(ctx, "v1"); !errors.As(err, &fe) {
		t.Fatalf("preflight with a damaged root key file: %v", err)
	}
	if entries, _ := os.ReadDir(priv); len(entries) != 1 {
		t.Fatalf("private/ holds %d files after the refused sign, want only the damaged one", len(entries))
	}

	// An existing repository and a damaged repository (targets) key.
	gun := "registry.example.com/team/oldrepo"
	dir = t.TempDir()
	if _, err := openRepo(t, gun, srv, dir, nil).Sign(ctx, []Target{randomTarget(t, "v1")}); err != nil {
		t.Fatal(err)
	}
	var targetsFile string
	entries, _ := os.ReadDir(filepath.Join(dir, "private"))
	for _, e := range entries {
		p := filepath.Join(dir, "private", e.Name())
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("role: targets")) {
			targetsFile = p
			if err := os.WriteFile(p, b[:len(b)-30], 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if targetsFile == "" {
		t.Fatal("no targets key file written")
	}
	r = openRepo(t, gun, srv, dir, nil)
	if _, err := r.Sign(ctx, []Target{randomTarget(t, "v2")}); !errors.As(err, &fe) || fe.Path != targetsFile {
		t.Fatalf("sign with a damaged targets key file: %v", err)
	}
	if _, err := r.Revoke(ctx, []string{"v1"}); !errors.As(err, &fe) || fe.Path != targetsFile {
		t.Fatalf("revoke with a damaged targets key file: %v", err)
	}
}
