package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/utils"
)

// TestCheckFiles: every key file notary would list is read; one that
// cannot be is an error naming the file and the fix, where notary's key
// store would skip it silently.
func TestCheckFiles(t *testing.T) {
	k, err := utils.GenerateECDSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := utils.ConvertPrivateKeyToPKCS8(k, "root", "", pass)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ek)
	plain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"role": "targets/releases"}, Bytes: der})
	block, _ := pem.Decode(encrypted)
	damagedDER := pem.EncodeToMemory(&pem.Block{Type: block.Type, Headers: block.Headers, Bytes: block.Bytes[:len(block.Bytes)/2]})
	truncated := encrypted[:len(encrypted)/2]

	tests := []struct {
		name  string
		files map[string][]byte // under private/
		want  string            // "" for no error; else the reason
		bad   string            // the file named
	}{
		{name: "no private folder"},
		{name: "good keys", files: map[string][]byte{"a.key": encrypted, "b.key": plain, "notes.txt": []byte("not a key file")}},
		{name: "empty", files: map[string][]byte{"a.key": encrypted, "root.key": {}}, want: "empty file", bad: "root.key"},
		{name: "truncated PEM", files: map[string][]byte{"r.key": truncated}, want: "no PEM block", bad: "r.key"},
		{name: "not PEM", files: map[string][]byte{"r.key": []byte("hello")}, want: "no PEM block", bad: "r.key"},
		{name: "damaged encrypted key", files: map[string][]byte{"r.key": damagedDER}, want: "not PKCS#8", bad: "r.key"},
		{name: "damaged plain key", files: map[string][]byte{"r.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})}, want: "private key is damaged", bad: "r.key"},
		{name: "certificate", files: map[string][]byte{"r.key": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, want: `PEM type "CERTIFICATE" is not a private key`, bad: "r.key"},
		{name: "in a subfolder, first by path", files: map[string][]byte{"z.key": {}, "gun/a.key": []byte("x")}, want: "no PEM block", bad: "gun/a.key"},
		{name: "too big", files: map[string][]byte{"r.key": make([]byte, MaxKeyFileBytes+1)}, want: "not a key file", bad: "r.key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tc.files {
				p := filepath.Join(dir, "private", filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckFiles(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckFiles: %v", err)
				}
				return
			}
			var fe *FileError
			path := filepath.Join(dir, "private", filepath.FromSlash(tc.bad))
			if !errors.As(err, &fe) || fe.Path != path {
				t.Fatalf("CheckFiles: %v, want a *FileError for %s", err, path)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "read key file "+path+": ") || !strings.Contains(msg, tc.want) || !strings.HasSuffix(msg, ": fix or remove it") || strings.Contains(msg, "\n") {
				t.Fatalf("CheckFiles: %q, want one line naming %s with %q and the fix", msg, path, tc.want)
			}
			// Opening the key store refuses the trust dir too.
			if _, err := Open(dir, &Retriever{Getenv: passEnv()}); !errors.As(err, &fe) {
				t.Fatalf("Open: %v, want the *FileError", err)
			}
		})
	}
}

// TestCheckFilesSymlink: notary's key store ignores a linked key file, so
// a linked root key would look absent; signet names it.
func TestCheckFilesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "private", "abc.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckFiles(dir); err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("CheckFiles: %v, want the link named", err)
	}
}

// TestGenerateRootRefusedWithDamagedRootFile: a trust dir whose root key
// file is damaged gets no second root key.
func TestGenerateRootRefusedWithDamagedRootFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Retriever{Getenv: passEnv()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Generate("root", "", "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(info.Location)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(info.Location, raw[:len(raw)-40], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, &Retriever{Getenv: passEnv()}); err == nil || !strings.Contains(err.Error(), info.Location) {
		t.Fatalf("Open with a damaged root key file: %v, want the file named", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "private"))
	if len(entries) != 1 {
		t.Fatalf("private/ holds %d files, want only the damaged one", len(entries))
	}
}
