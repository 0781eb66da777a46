package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testenv"
)

// notaryCLI runs the real notary v0.7.0 client with its own trust dir and
// HOME, passphrases from the environment as a pipeline would set them.
type notaryCLI struct {
	t        *testing.T
	bin      string
	trustDir string
	home     string
}

func newNotaryCLI(t *testing.T) *notaryCLI {
	return &notaryCLI{t: t, bin: testenv.NotaryCLI(t), trustDir: t.TempDir(), home: t.TempDir()}
}

func (n *notaryCLI) run(server string, args ...string) (string, error) {
	n.t.Helper()
	full := append([]string{"-s", server, "-d", n.trustDir}, args...)
	cmd := exec.Command(n.bin, full...)
	cmd.Env = append(os.Environ(),
		"HOME="+n.home,
		"NOTARY_ROOT_PASSPHRASE="+testPassphrase,
		"NOTARY_TARGETS_PASSPHRASE="+testPassphrase,
		"NOTARY_SNAPSHOT_PASSPHRASE="+testPassphrase,
		"NOTARY_DELEGATION_PASSPHRASE="+testPassphrase,
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *notaryCLI) must(server string, args ...string) string {
	n.t.Helper()
	out, err := n.run(server, args...)
	if err != nil {
		n.t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// delegationKey writes an EC key and a self-signed certificate for it, as
// `notary delegation add` and `notary key import` take them.
func delegationKey(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "releases"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "releases.crt"), filepath.Join(dir, "releases.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestNotaryCLIInterop drives the real notary v0.7.0 CLI through the
// whole life of a repository against signet's server: init, targets and
// delegation signing, key rotation, restart, delete.
func TestNotaryCLIInterop(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			n := newNotaryCLI(t)
			db := dsn(t)
			ts, _ := startServer(t, db, Options{})
			url := ts.URL
			gun := "registry.example.com/team/app"
			work := t.TempDir()

			n.must(url, "init", gun, "-p")

			// A target in "targets" from a file, one from a hash.
			file := filepath.Join(work, "manifest.json")
			content := []byte(`{"schemaVersion":2}`)
			if err := os.WriteFile(file, content, 0o600); err != nil {
				t.Fatal(err)
			}
			n.must(url, "add", gun, "v1", file)
			n.must(url, "addhash", gun, "v2", "1234", "--sha256", strings.Repeat("ab", 32))
			n.must(url, "publish", gun)

			// A delegation, as docker's signers: targets/releases.
			cert, key := delegationKey(t, work)
			n.must(url, "delegation", "add", gun, "targets/releases", cert, "--all-paths", "-p")
			n.must(url, "key", "import", key, "--role", "targets/releases")
			n.must(url, "add", gun, "v3", file, "--roles", "targets/releases", "-p")

			out := n.must(url, "list", gun)
			for _, want := range []string{"v1", "v2", "v3", sha256Hex(content), strings.Repeat("ab", 32), "targets/releases"} {
				if !strings.Contains(out, want) {
					t.Fatalf("notary list lacks %q:\n%s", want, out)
				}
			}

			// Server-managed keys rotate, and the repository still reads.
			n.must(url, "key", "rotate", gun, "snapshot", "-r")
			n.must(url, "key", "rotate", gun, "timestamp", "-r")
			fresh := newNotaryCLI(t)
			if out := fresh.must(url, "list", gun); !strings.Contains(out, "v3") {
				t.Fatalf("list after rotation lacks v3:\n%s", out)
			}

			// Restart on the same database: a cached client and a fresh
			// one still verify, and publishing again works.
			ts.Close()
			ts2, _ := startServer(t, db, Options{})
			url = ts2.URL
			if out := n.must(url, "list", gun); !strings.Contains(out, "v3") {
				t.Fatalf("list after restart lacks v3:\n%s", out)
			}
			n.must(url, "addhash", gun, "v4", "99", "--sha256", strings.Repeat("cd", 32), "-p")
			fresh2 := newNotaryCLI(t)
			if out := fresh2.must(url, "list", gun); !strings.Contains(out, "v4") {
				t.Fatalf("list after restart and publish lacks v4:\n%s", out)
			}

			n.must(url, "delete", gun, "--remote")
			if out, err := newNotaryCLI(t).run(url, "list", gun); err == nil {
				t.Fatalf("list after delete --remote succeeded:\n%s", out)
			} else if !strings.Contains(out, "does not have trust data") {
				t.Fatalf("list after delete: want 'does not have trust data', got:\n%s", out)
			}
			fmt.Fprint(os.Stderr) // keep fmt for debugging helpers
		})
	}
}
