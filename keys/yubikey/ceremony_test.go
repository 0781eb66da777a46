//go:build !nopcsc && cgo && unix

package yubikey

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/internal/pivsim"
	"github.com/signet-project/signet/internal/pivsim/pivsimtest"
	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

const rootPass = "root passphrase"

// TestCeremonyOnThreeYubiKeys is the ceremony of the field: a repository
// whose root is a key file moves to a root that needs 2 of 3 keys, each
// generated on its own (simulated) YubiKey; the cards take turns in one
// reader, as in a real ceremony. Three `signet ceremony sign` processes
// sign with the trust server off the network (the old file key, then two
// cards), then the ceremony is published. The stock notary CLI, which had
// cached the old root, lists the repository; signet verify and a proxy
// pinned to the old root's certificate serve the signed tag.
func TestCeremonyOnThreeYubiKeys(t *testing.T) {
	pivsimtest.VPCDAddr(t) // before the subtests: without vpcd the whole test skips (or fails in CI)
	bin := buildSignetWithPCSC(t)
	reg := testservers.Registry(t)
	server, down := testservers.SwitchableTrustServer(t)
	getenv := func(k string) string {
		return map[string]string{"SIGNET_ROOT_PASSPHRASE": rootPass, "SIGNET_REPOSITORY_PASSPHRASE": repoPass}[k]
	}
	admin := publish.Config{TrustDir: t.TempDir(), Server: server, Passphrases: &keys.Retriever{Getenv: getenv}}
	gun := reg + "/team/yk"
	image := gun + ":v1"
	testservers.PushRandom(t, image)
	ctx := context.Background()
	if _, err := publish.Sign(ctx, admin, []publish.Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	notaryDir := t.TempDir()
	notaryList(t, notaryDir, server, gun) // caches root v1

	// Each holder generates a root key on their card and makes its root
	// certificate for the repository.
	var sims []*pivsim.Card
	var certs []string
	for i := range 3 {
		sim, err := pivsim.New(pivsim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sims = append(sims, sim)
		cert := filepath.Join(t.TempDir(), fmt.Sprintf("holder%d.crt", i))
		certs = append(certs, cert)
		t.Run(fmt.Sprintf("card %d: generate and certify", i), func(t *testing.T) {
			c := openSim(t, sim)
			if _, err := c.Generate(GenerateOptions{Slot: RootSlot, PINPolicy: piv.PINPolicyOnce, TouchPolicy: piv.TouchPolicyAlways, Subject: Subject("root", "")}); err != nil {
				t.Fatal(err)
			}
			cfg := publish.Config{TrustDir: t.TempDir(), HardwareKeys: []trustmanagerKeyStore{&KeyStore{Card: c}}}
			if _, _, err := publish.RootCertFile(cfg, gun, "", cert); err != nil {
				t.Fatal(err)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "ceremony")
	p, err := publish.PrepareCeremony(ctx, admin, gun, dir, publish.CeremonyChange{RootCerts: certs, Threshold: 2}, "officer")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	var oldRootCertID string
	for id := range p.MustSign[0].Keys {
		oldRootCertID = id
	}

	down.Store(true) // no trust server from here to publish
	var transcript bytes.Buffer
	sign := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"ceremony", "sign", dir, "--yes"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		fmt.Fprintf(&transcript, "$ signet ceremony sign %s --yes %s   (%s)\n%s\n", filepath.Base(dir), strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
		if err != nil {
			t.Fatalf("ceremony sign %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for i := range 2 {
		t.Run(fmt.Sprintf("card %d: sign", i), func(t *testing.T) {
			pivsimtest.Insert(t, sims[i])
			out := sign([]string{"SIGNET_YUBIKEY_PIN=" + piv.DefaultPIN}, "--trust-dir", t.TempDir())
			if !strings.Contains(out, "signed with key") {
				t.Fatalf("card %d did not sign:\n%s", i, out)
			}
		})
	}
	// The old root's file key: --yubikey no, so this process leaves the
	// readers alone (with vpcd, a process that opens the empty reader
	// keeps the next inserted card from showing up in pcscd, which would
	// disturb the other test processes sharing it).
	sign([]string{"SIGNET_ROOT_PASSPHRASE=" + rootPass}, "--trust-dir", admin.TrustDir, "--yubikey", "no")
	status := exec.Command(bin, "ceremony", "status", dir)
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("ceremony status: %v\n%s", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "transcript.log"))
	if strings.Count(string(log), "slot 9c") != 2 {
		t.Fatalf("transcript does not name the two cards:\n%s", log)
	}

	down.Store(false)
	pub := exec.Command(bin, "ceremony", "publish", dir, "--trust-dir", t.TempDir())
	out, err := pub.CombinedOutput()
	fmt.Fprintf(&transcript, "$ signet ceremony publish %s\n%s\n", filepath.Base(dir), out)
	if err != nil {
		t.Fatalf("ceremony publish: %v\n%s", err, out)
	}
	listed := notaryList(t, notaryDir, server, gun)
	fmt.Fprintf(&transcript, "$ notary -d <old cache> list %s\n%s\n", gun, listed)
	if !strings.Contains(listed, "v1") {
		t.Fatalf("notary with the old root cached:\n%s", listed)
	}
	if _, err := publish.Verify(ctx, publish.Config{TrustDir: t.TempDir(), Server: server}, image); err != nil {
		t.Fatalf("verify after the ceremony: %v", err)
	}
	// A proxy pinned to the old root's certificate follows the rotation.
	px, err := proxy.New(proxy.Options{
		Upstreams: []proxy.Upstream{{URL: "http://" + reg}},
		Policy:    proxy.Policy{Rules: []proxy.Rule{{Match: reg + "/*", TrustServer: server, Pin: verify.Pin{CertIDs: []string{oldRootCertID}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(px.Handler())
	defer ps.Close()
	ref, _ := name.ParseReference(strings.TrimPrefix(ps.URL, "http://") + "/team/yk:v1")
	if _, err := remote.Get(ref); err != nil {
		t.Fatalf("pinned proxy after the ceremony: %v", err)
	}
	log, _ = os.ReadFile(filepath.Join(dir, "transcript.log"))
	if !strings.Contains(string(log), "published root v2") {
		t.Errorf("transcript.log lacks the publish:\n%s", log)
	}
	t.Logf("ceremony transcript:\n%s\ntranscript.log:\n%s", transcript.String(), log)
}

func openSim(t *testing.T, sim *pivsim.Card) *Card {
	t.Helper()
	reader := pivsimtest.Insert(t, sim)
	c, err := OpenReader(reader, Options{PIN: func(uint32, int) (string, error) { return piv.DefaultPIN, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func notaryList(t *testing.T, dir, server, gun string) string {
	t.Helper()
	cmd := exec.Command(testenv.NotaryCLI(t), "-s", server, "-d", dir, "list", gun)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("notary list: %v\n%s", err, out)
	}
	return string(out)
}

// buildSignetWithPCSC builds the signet binary with YubiKey support.
func buildSignetWithPCSC(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "signet")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/signet-project/signet/cmd/signet")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build signet: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkCeremonySign times what `signet ceremony sign` does per key:
// sign the proposed root's bytes and check the signature, with a file
// key and with a key on the simulated card (through pcscd).
func BenchmarkCeremonySign(b *testing.B) {
	gun := "registry.example.com/team/bench"
	bench := func(b *testing.B, cs signed.CryptoService, keyID string) {
		cert, err := trust.RootCert(cs, keyID, gun)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := json.Marshal(cert)
		p := &trust.Proposal{GUN: gun, Signed: []byte(`{"_type":"Root","version":2}`),
			MustSign: []trust.KeySet{{Name: "new root", Threshold: 1, Keys: map[string]json.RawMessage{cert.ID(): raw}}}}
		for b.Loop() {
			sigs, err := p.Sign(cs, nil)
			if err != nil || len(sigs) != 1 {
				b.Fatal(err)
			}
			if _, ok, err := p.Check(sigs); !ok || err != nil {
				b.Fatal("signature does not verify", err)
			}
		}
	}
	b.Run("file-key", func(b *testing.B) {
		cs := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("x")))
		k, err := cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
		if err != nil {
			b.Fatal(err)
		}
		bench(b, cs, k.ID())
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
		bench(b, cryptoservice.NewCryptoService(&KeyStore{Card: c}), hk.ID())
	})
}
