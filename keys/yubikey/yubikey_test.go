//go:build !nopcsc && cgo && unix

package yubikey

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-piv/piv-go/v2/piv"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/internal/pivsim"
	"github.com/signet-project/signet/internal/pivsim/pivsimtest"
	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
)

const repoPass = "repository passphrase"

// insertCard puts a fresh simulated YubiKey in the vpcd reader and opens
// it through piv-go, libpcsclite and pcscd.
func insertCard(t *testing.T, pin string) (*Card, *pivsim.Card, *[]string) {
	t.Helper()
	sim, err := pivsim.New(pivsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reader := pivsimtest.Insert(t, sim)
	var touches []string
	c, err := OpenReader(reader, Options{
		PIN:   func(uint32, int) (string, error) { return pin, nil },
		Touch: func(_ uint32, slot string) { touches = append(touches, slot) },
	})
	if err != nil {
		t.Fatalf("open the simulated card: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, sim, &touches
}

// TestRootOnYubiKeyReadByNotary: a repository initialised with its root
// key generated on the (simulated) YubiKey, signed and published, is read
// back by the real notary CLI, and root.json names the card's key.
func TestRootOnYubiKeyReadByNotary(t *testing.T) {
	c, sim, touches := insertCard(t, piv.DefaultPIN)
	hk, err := c.Generate(GenerateOptions{Slot: RootSlot, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyAlways, Subject: "root"})
	if err != nil {
		t.Fatalf("generate on the card: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(sim.AttestationRoot())
	a, err := c.Attest(RootSlot, roots)
	if err != nil || a.Serial != c.Serial {
		t.Fatalf("attest: %+v %v", a, err)
	}
	if _, err := c.Attest(RootSlot, nil); err == nil {
		t.Fatal("the simulator's attestation verified against Yubico's roots")
	}

	reg, server := testservers.Registry(t), testservers.TrustServer(t)
	cfg := publish.Config{
		TrustDir:     t.TempDir(),
		Server:       server,
		Passphrases:  &keys.Retriever{Getenv: func(k string) string { return map[string]string{"SIGNET_REPOSITORY_PASSPHRASE": repoPass}[k] }},
		HardwareKeys: []trustmanagerKeyStore{&KeyStore{Card: c}},
	}
	image := reg + "/team/app:v1"
	testservers.PushRandom(t, image)
	if _, err := publish.Sign(context.Background(), cfg, []publish.Request{{Image: image}}); err != nil {
		t.Fatalf("sign with the root on the card: %v", err)
	}
	// No root key file was written: the root never touched the disk.
	for _, k := range mustStore(t, cfg.TrustDir).List() {
		if k.Role == "root" {
			t.Fatalf("a root key file exists: %+v", k)
		}
	}
	if len(*touches) == 0 {
		t.Fatal("no touch notice for a touch-always slot")
	}

	// root.json lists a certificate for the card's key, and the notary
	// CLI reads the repository.
	resp, err := httpGet(server + "/v2/" + reg + "/team/app/_trust/tuf/root.json")
	if err != nil {
		t.Fatal(err)
	}
	var root data.SignedRoot
	if err := json.Unmarshal(resp, &root); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range root.Signed.Roles[data.CanonicalRootRole].KeyIDs {
		if canon, err := utils.CanonicalKeyID(root.Signed.Keys[id]); err == nil && canon == hk.ID() {
			found = true
		}
	}
	if !found {
		t.Fatalf("root.json does not name the card's key %s", hk.ID())
	}
	cmd := exec.Command(testenv.NotaryCLI(t), "-s", server, "-d", t.TempDir(), "list", reg+"/team/app")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v1") {
		t.Fatalf("notary list: %v\n%s", err, out)
	}
}

func TestWrongPINReportsTriesLeft(t *testing.T) {
	c, _, _ := insertCard(t, "000000")
	_, err := c.Generate(GenerateOptions{Slot: RootSlot})
	if err == nil || !strings.Contains(err.Error(), "wrong PIN") || !strings.Contains(err.Error(), "tries left") {
		t.Fatalf("generate with a wrong PIN: %v", err)
	}
	info, err := c.Info()
	if err != nil || info.PINRetries != 2 {
		t.Fatalf("info after one wrong PIN: %+v %v", info, err)
	}
}

func TestSetupAndReset(t *testing.T) {
	c, _, touches := insertCard(t, "654321")
	if err := c.Setup("654321", "87654321"); err != nil {
		t.Fatalf("setup: %v", err)
	}
	// The stored management key is found behind the new PIN.
	hk, err := c.Generate(GenerateOptions{Slot: RootSlot, TouchPolicy: piv.TouchPolicyNever})
	if err != nil {
		t.Fatalf("generate after setup: %v", err)
	}
	// A touch-never slot signs without a touch notice.
	if _, err := hk.Sign(rand.Reader, []byte("m"), nil); err != nil || len(*touches) != 0 {
		t.Fatalf("sign on a touch-never slot: %v, touch notices %v", err, *touches)
	}
	if err := c.Setup("654321", "87654321"); err == nil {
		t.Fatal("a second setup succeeded with the default management key")
	}
	info, _ := c.Info()
	if len(info.Slots) != 1 {
		t.Fatalf("slots before reset: %+v", info.Slots)
	}
	if err := c.Reset(); err != nil {
		t.Fatalf("reset: %v", err)
	}
	info, err = c.Info()
	if err != nil || len(info.Slots) != 0 || info.PINRetries != 3 {
		t.Fatalf("after reset: %+v %v", info, err)
	}
}

// BenchmarkSign compares one TUF signature with a file key (software
// ECDSA) and with the simulated card through pcscd.
func BenchmarkSign(b *testing.B) {
	msg := []byte(`{"signed":{"_type":"Targets","version":2}}`)
	b.Run("file-key", func(b *testing.B) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		priv, _ := utils.ECDSAToPrivateKey(k)
		for b.Loop() {
			if _, err := priv.Sign(rand.Reader, msg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("simulated-yubikey", func(b *testing.B) {
		sim, err := pivsim.New(pivsim.Options{})
		if err != nil {
			b.Fatal(err)
		}
		reader := pivsimtest.Insert(b, sim)
		c, err := OpenReader(reader, Options{PIN: func(uint32, int) (string, error) { return piv.DefaultPIN, nil }})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		hk, err := c.Generate(GenerateOptions{Slot: RootSlot, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := hk.Sign(rand.Reader, msg, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestImportSoftwareRoot: a software root key (kept as a backup) copied
// into the slot signs on the card with the same key ID.
func TestImportSoftwareRoot(t *testing.T) {
	c, _, _ := insertCard(t, piv.DefaultPIN)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	soft, _ := utils.ECDSAToPrivateKey(k)
	hk, err := c.Import(soft, GenerateOptions{Slot: RootSlot, TouchPolicy: piv.TouchPolicyNever, Subject: "root backup"})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if hk.ID() != soft.ID() {
		t.Fatalf("card key ID %s, software key ID %s", hk.ID(), soft.ID())
	}
	ks := &KeyStore{Card: c}
	got, role, err := ks.GetKey(soft.ID())
	if err != nil || role != data.CanonicalRootRole {
		t.Fatalf("key store: %v %v", role, err)
	}
	sig, err := got.Sign(rand.Reader, []byte("m"), nil)
	if err != nil || !ecdsa.Verify(&k.PublicKey, sha256Of("m"), new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatalf("signature by the imported key does not verify: %v", err)
	}
	ed, _ := utils.GenerateED25519Key(rand.Reader)
	if _, err := c.Import(ed, GenerateOptions{Slot: RootSlot}); err == nil {
		t.Fatal("an Ed25519 key was accepted")
	}
}

// TestSignerKeyOnYubiKey: a CI signer whose key is generated on the card
// (slot 9d) is added as targets/releases with the notary CLI, and signet
// signs into the delegation on the card.
func TestSignerKeyOnYubiKey(t *testing.T) {
	c, _, _ := insertCard(t, piv.DefaultPIN)
	hk, err := c.Generate(GenerateOptions{Slot: SlotFor("targets/releases"), PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyNever, Subject: Subject("targets/releases", "")})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.CertificatePEM(SlotFor("targets/releases"))
	if err != nil {
		t.Fatal(err)
	}
	ks := &KeyStore{Card: c}
	if info, err := ks.GetKeyInfo(hk.ID()); err != nil || info.Role != "targets/releases" {
		t.Fatalf("key store sees %+v %v", info, err)
	}

	reg, server := testservers.Registry(t), testservers.TrustServer(t)
	env := map[string]string{"SIGNET_ROOT_PASSPHRASE": repoPass, "SIGNET_REPOSITORY_PASSPHRASE": repoPass}
	admin := publish.Config{TrustDir: t.TempDir(), Server: server, Passphrases: &keys.Retriever{Getenv: func(k string) string { return env[k] }}}
	gun := reg + "/team/app"
	if _, err := publish.Init(context.Background(), admin, gun); err != nil {
		t.Fatal(err)
	}
	certFile := t.TempDir() + "/ci.crt"
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.NotaryCLI(t), "-s", server, "-d", admin.TrustDir, "delegation", "add", gun, "targets/releases", certFile, "--all-paths", "-p")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NOTARY_ROOT_PASSPHRASE="+repoPass, "NOTARY_TARGETS_PASSPHRASE="+repoPass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("notary delegation add: %v\n%s", err, out)
	}

	ci := publish.Config{TrustDir: t.TempDir(), Server: server, Passphrases: &keys.Retriever{}, HardwareKeys: []trustmanagerKeyStore{ks}}
	image := gun + ":v1"
	testservers.PushRandom(t, image)
	signed, err := publish.Sign(context.Background(), ci, []publish.Request{{Image: image}})
	if err != nil || strings.Join(signed[0].Roles, ",") != "targets/releases" {
		t.Fatalf("sign with the card's signer key: %+v %v", signed, err)
	}
	v, err := publish.Verify(context.Background(), admin, image)
	if err != nil || v.Role != "targets/releases" {
		t.Fatalf("verify: %+v %v", v, err)
	}
}
