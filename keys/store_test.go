package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/testenv"
)

const pass = "key store test passphrase"

func passEnv(extra ...string) func(string) string {
	m := map[string]string{"SIGNET_ROOT_PASSPHRASE": pass, "SIGNET_REPOSITORY_PASSPHRASE": pass, "SIGNET_DELEGATION_PASSPHRASE": pass}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return func(k string) string { return m[k] }
}

// signWith proves a stored key signs: notary's signer over some bytes,
// verified with the key's public half.
func signWith(t *testing.T, s *Store, id string) {
	t.Helper()
	priv, _, err := s.ks.GetKey(id)
	if err != nil {
		t.Fatalf("unlock %s: %v", id, err)
	}
	msg := []byte("signet key store test")
	sig, err := priv.Sign(rand.Reader, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := signed.Verifiers[priv.SignatureAlgorithm()]
	if err := v.Verify(data.PublicKeyFromPrivate(priv), sig, msg); err != nil {
		t.Fatalf("signature by %s does not verify: %v", id, err)
	}
}

func notaryCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.NotaryCLI(t), append([]string{"-d", dir}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NOTARY_ROOT_PASSPHRASE="+pass, "NOTARY_TARGETS_PASSPHRASE="+pass, "NOTARY_DELEGATION_PASSPHRASE="+pass, "NOTARY_SNAPSHOT_PASSPHRASE="+pass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestImportFromNotaryDockerAndPKCS8(t *testing.T) {
	s, err := Open(t.TempDir(), &Retriever{Getenv: passEnv()})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	// 1. A key written by `notary key generate -o` (encrypted PKCS#8).
	notaryCLI(t, t.TempDir(), "key", "generate", "--role", "targets/releases", "-o", filepath.Join(work, "rel"))
	raw, err := os.ReadFile(filepath.Join(work, "rel-key.pem"))
	if err != nil {
		t.Fatalf("notary did not write rel-key.pem: %v", err)
	}
	info, err := s.Import(raw, "", "")
	if err != nil || info.Role != "targets/releases" {
		t.Fatalf("import notary key: %+v %v", info, err)
	}
	signWith(t, s, info.ID)

	// 2. A `docker trust key generate` key file: encrypted PKCS#8 with
	// role: <signer name> and no gun (the encoding docker uses).
	k, _ := utils.GenerateECDSAKey(rand.Reader)
	dockerPEM, err := utils.ConvertPrivateKeyToPKCS8(k, "alice", "", pass)
	if err != nil {
		t.Fatal(err)
	}
	info, err = s.Import(dockerPEM, "", "")
	if err != nil || info.Role != "alice" || info.ID != k.ID() {
		t.Fatalf("import docker key: %+v %v", info, err)
	}
	signWith(t, s, info.ID)

	// 3. A plain PKCS#8 key with the role given on the command line.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ek)
	info, err = s.Import(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "targets", "registry.example.com/app")
	if err != nil || info.GUN != "registry.example.com/app" {
		t.Fatalf("import PKCS#8 key: %+v %v", info, err)
	}
	signWith(t, s, info.ID)

	if got := len(s.List()); got != 3 {
		t.Fatalf("list has %d keys, want 3", got)
	}
	// Files 0600 in a 0700 folder.
	for _, k := range s.List() {
		fi, err := os.Stat(k.Location)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v", k.Location, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(s.dir, "private")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("private folder mode %v %v", fi.Mode(), err)
	}
}

func TestImportErrors(t *testing.T) {
	s, _ := Open(t.TempDir(), &Retriever{Getenv: passEnv("SIGNET_DELEGATION_PASSPHRASE", "not the passphrase")})
	k, _ := utils.GenerateECDSAKey(rand.Reader)
	enc, _ := utils.ConvertPrivateKeyToPKCS8(k, "targets/releases", "", pass)
	tests := []struct {
		name      string
		pem       []byte
		role, gun string
		want      string
	}{
		{"wrong passphrase", enc, "", "", "SIGNET_DELEGATION_PASSPHRASE does not decrypt"},
		{"not PEM", []byte("hello"), "targets", "x", "no PEM block"},
		{"no role", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "", "", "pass --role"},
		{"targets without gun", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "targets", "", "pass --gun"},
		{"timestamp", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "timestamp", "", "held by the trust server"},
	}
	for _, tc := range tests {
		_, err := s.Import(tc.pem, tc.role, tc.gun)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if len(s.List()) != 0 {
		t.Fatal("a failed import left a key behind")
	}
}

// TestExportIntoNotary: a key exported by signet imports into the notary
// CLI, which then lists it under the same ID.
func TestExportIntoNotary(t *testing.T) {
	s, _ := Open(t.TempDir(), &Retriever{Getenv: passEnv()})
	info, err := s.Generate("targets/releases", "", "ecdsa")
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Export(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "exported.pem")
	os.WriteFile(file, out, 0o600)
	nd := t.TempDir()
	notaryCLI(t, nd, "key", "import", file)
	if list := notaryCLI(t, nd, "key", "list"); !strings.Contains(list, info.ID) || !strings.Contains(list, "targets/releases") {
		t.Fatalf("notary key list after import lacks %s:\n%s", info.ID, list)
	}
}

func TestGeneratePasswdRemove(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, &Retriever{Getenv: passEnv()})
	info, err := s.Generate("root", "", "ed25519")
	if err != nil {
		t.Fatal(err)
	}
	signWith(t, s, info.ID)
	if err := s.Passwd(info.ID, "short"); err == nil {
		t.Fatal("short new passphrase accepted")
	}
	if err := s.Passwd(info.ID, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	old, _ := Open(dir, &Retriever{Getenv: passEnv()})
	if _, _, err := old.ks.GetKey(info.ID); err == nil {
		t.Fatal("the old passphrase still decrypts after passwd")
	}
	fresh, _ := Open(dir, &Retriever{Getenv: passEnv("SIGNET_ROOT_PASSPHRASE", "a brand new passphrase")})
	signWith(t, fresh, info.ID)
	if err := fresh.Remove(info.ID); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Remove(info.ID); err == nil {
		t.Fatal("second remove succeeded")
	}
	if _, err := s.Generate("targets", "", "ecdsa"); err == nil || !strings.Contains(err.Error(), "--gun") {
		t.Fatalf("targets key without gun: %v", err)
	}
}
