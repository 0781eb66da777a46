package ceremony

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/trust"
)

const gun = "registry.example.com/team/app"

// proposal is a one-key proposal over fixed bytes, and the key's store.
func proposal(t *testing.T) (*trust.Proposal, *cryptoservice.CryptoService) {
	t.Helper()
	cs := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("x")))
	k, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := trust.RootCert(cs, k.ID(), gun)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(cert)
	return &trust.Proposal{GUN: gun, Server: "https://trust.example.com", Version: 2, Changes: []string{"root keys"},
		Signed:   []byte(`{"_type":"Root","version":2}`),
		MustSign: []trust.KeySet{{Name: "new root", Threshold: 1, Keys: map[string]json.RawMessage{cert.ID(): raw}}}}, cs
}

func TestWriteLoadSign(t *testing.T) {
	p, cs := proposal(t)
	dir := filepath.Join(t.TempDir(), "c")
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := Write(dir, p, "officer@host", now); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, p, "officer@host", now); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("prepare into a used folder: %v", err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Status(); ok {
		t.Fatal("publishable with no signature")
	}
	added, err := c.Sign(cs, nil, "holder@laptop", func(string) string { return "key file" }, now)
	if err != nil || len(added) != 1 {
		t.Fatalf("sign: %v %v", added, err)
	}
	c, _ = Load(dir)
	if _, ok, _ := c.Status(); !ok {
		t.Fatal("not publishable after the one signature needed")
	}
	if added, err := c.Sign(cs, nil, "holder@laptop", nil, now); err != nil || len(added) != 0 {
		t.Fatalf("second signature by the same key: %v %v", added, err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, TranscriptFile))
	if !strings.Contains(string(log), "prepared root v2") || !strings.Contains(string(log), "(key file)") {
		t.Fatalf("transcript:\n%s", log)
	}
	// A key the ceremony does not need cannot sign it.
	other := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("x")))
	other.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if _, err := c.Sign(other, nil, "x", nil, now); err == nil || !strings.Contains(err.Error(), "none of the keys") {
		t.Fatalf("sign with a foreign key: %v", err)
	}
}

func TestLoadRefusesTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(dir string)
		want   string
	}{
		{"bytes to sign edited", func(dir string) {
			os.WriteFile(filepath.Join(dir, RootFile), []byte(`{"_type":"Root","version":3}`), 0o600)
		}, "was changed after prepare"},
		{"plan not a plan", func(dir string) {
			os.WriteFile(filepath.Join(dir, PlanFile), []byte(`{}`), 0o600)
		}, "is not a signet-ceremony/1 plan"},
		{"signature under another key's name", func(dir string) {
			os.WriteFile(filepath.Join(dir, SignaturesDir, "abc.json"), []byte(`{"keyid":"def","method":"ecdsa","sig":"AA=="}`), 0o600)
		}, "not a signature by key abc"},
		{"no ceremony", func(dir string) { os.RemoveAll(dir) }, "is it a folder signet ceremony prepare wrote?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := proposal(t)
			dir := filepath.Join(t.TempDir(), "c")
			if err := Write(dir, p, "o", time.Now()); err != nil {
				t.Fatal(err)
			}
			tc.tamper(dir)
			if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
