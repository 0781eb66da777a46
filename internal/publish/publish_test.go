package publish

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-project/signet/internal/testenv"
	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust"
)

const pass = "test key passphrase"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func testConfig(t *testing.T, server string) Config { return benchConfig(t, server) }

func benchConfig(t testing.TB, server string) Config {
	return Config{
		TrustDir: t.TempDir(),
		Server:   server,
		Passphrases: &keys.Retriever{Getenv: env(map[string]string{
			"SIGNET_ROOT_PASSPHRASE":       pass,
			"SIGNET_REPOSITORY_PASSPHRASE": pass,
			"SIGNET_DELEGATION_PASSPHRASE": pass,
		})},
	}
}

func digestOf(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

func TestSignVerifyRevoke(t *testing.T) {
	reg := testservers.Registry(t)
	c := testConfig(t, testservers.TrustServer(t))
	ctx := context.Background()
	image := reg + "/team/app:v1"
	testservers.PushRandom(t, image)

	signed, err := Sign(ctx, c, []Request{{Image: image}})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if len(signed) != 1 || signed[0].Digest != digestOf(t, image) || !signed[0].Init || signed[0].GUN != reg+"/team/app" {
		t.Fatalf("signed %+v, want the registry's digest %s, a new repository", signed, digestOf(t, image))
	}
	v, err := Verify(ctx, c, image)
	if err != nil || v.Digest != digestOf(t, image) || v.Role != "targets" {
		t.Fatalf("verify: %+v %v", v, err)
	}
	// Signing the same digest again (a re-run pipeline) succeeds.
	if _, err := Sign(ctx, c, []Request{{Image: image}}); err != nil {
		t.Fatalf("sign again: %v", err)
	}

	// A fresh trust dir (another machine) verifies too.
	other := testConfig(t, c.Server)
	if _, err := Verify(ctx, other, image); err != nil {
		t.Fatalf("verify from a fresh trust dir: %v", err)
	}

	// The tag moves: verify fails naming both digests.
	before := digestOf(t, image)
	testservers.PushRandom(t, image)
	after := digestOf(t, image)
	_, err = Verify(ctx, c, image)
	var deny *trust.DenyError
	if !errors.As(err, &deny) || deny.Reason != trust.ReasonMismatch || !strings.Contains(err.Error(), before) || !strings.Contains(err.Error(), after) {
		t.Fatalf("verify after the tag moved: %v; want a mismatch naming %s and %s", err, before, after)
	}

	// An unsigned tag is denied.
	testservers.PushRandom(t, reg+"/team/app:unsigned")
	if _, err := Verify(ctx, c, reg+"/team/app:unsigned"); !errors.As(err, &deny) || deny.Reason != trust.ReasonNotSigned {
		t.Fatalf("verify unsigned: %v", err)
	}

	// Revoke: the signature is gone.
	if tags, err := Revoke(ctx, c, image); err != nil || len(tags) != 1 {
		t.Fatalf("revoke: %v %v", tags, err)
	}
	if _, err := Verify(ctx, other, image); !errors.As(err, &deny) || deny.Reason != trust.ReasonNotSigned {
		t.Fatalf("verify after revoke: %v", err)
	}
}

func TestPushFromLayoutTarballAndIndex(t *testing.T) {
	reg := testservers.Registry(t)
	c := testConfig(t, testservers.TrustServer(t))
	ctx := context.Background()

	// OCI layout with one image.
	img, _ := random.Image(1024, 2)
	dir := t.TempDir()
	lp, err := layout.Write(dir, emptyIndex())
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	s, _, err := Push(ctx, c, dir, reg+"/team/app:layout", false)
	if err != nil {
		t.Fatalf("push layout: %v", err)
	}
	want, _ := img.Digest()
	if s.Digest != want.String() || s.Digest != digestOf(t, reg+"/team/app:layout") {
		t.Fatalf("pushed %s, image %s, registry %s", s.Digest, want, digestOf(t, reg+"/team/app:layout"))
	}

	// Another registry's multi-arch index: the index digest is signed.
	testservers.PushRandomIndex(t, reg+"/upstream/multi:1")
	s, _, err = Push(ctx, c, reg+"/upstream/multi:1", reg+"/team/multi:1", false)
	if err != nil {
		t.Fatalf("push index: %v", err)
	}
	if s.Digest != digestOf(t, reg+"/upstream/multi:1") {
		t.Fatalf("signed %s, want the index digest %s", s.Digest, digestOf(t, reg+"/upstream/multi:1"))
	}
	if _, err := Verify(ctx, c, reg+"/team/multi:1"); err != nil {
		t.Fatalf("verify index: %v", err)
	}
}

func TestPassphraseErrors(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	image := reg + "/team/app:v1"
	testservers.PushRandom(t, image)

	// No passphrase and no terminal: fails at once naming the variable.
	c := testConfig(t, server)
	c.Passphrases = &keys.Retriever{Getenv: env(nil)}
	_, err := Sign(ctx, c, []Request{{Image: image}})
	if err == nil || !strings.Contains(err.Error(), "SIGNET_ROOT_PASSPHRASE") {
		t.Fatalf("sign without passphrase: %v", err)
	}

	// Sign once, then a wrong repository passphrase: clear one-line error.
	c = testConfig(t, server)
	if _, err := Sign(ctx, c, []Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	c.Passphrases = &keys.Retriever{Getenv: env(map[string]string{"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "wrong passphrase"})}
	testservers.PushRandom(t, reg+"/team/app:v2")
	_, err = Sign(ctx, c, []Request{{Image: reg + "/team/app:v2"}})
	if err == nil || !strings.Contains(err.Error(), "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE does not decrypt") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("sign with a wrong passphrase: %v", err)
	}
	// Nothing was staged: with the right passphrase only v2 is added.
	c.Passphrases = testConfig(t, server).Passphrases
	if _, err := Sign(ctx, c, []Request{{Image: reg + "/team/app:v2"}}); err != nil {
		t.Fatal(err)
	}
}

// notary runs the real notary v0.7.0 CLI on a trust dir.
func notary(t *testing.T, trustDir, server string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.NotaryCLI(t), append([]string{"-s", server, "-d", trustDir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(),
		"NOTARY_ROOT_PASSPHRASE="+pass, "NOTARY_TARGETS_PASSPHRASE="+pass,
		"NOTARY_SNAPSHOT_PASSPHRASE="+pass, "NOTARY_DELEGATION_PASSPHRASE="+pass)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("notary %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestNotaryInteropBothWays: what signet signs, notary lists with the
// registry's digest; what notary signs (addhash), signet verifies; and a
// delegation added with notary is signed into by signet.
func TestNotaryInteropBothWays(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()

	// signet -> notary
	c := testConfig(t, server)
	image := reg + "/team/app:v1"
	testservers.PushRandom(t, image)
	if _, err := Sign(ctx, c, []Request{{Image: image}}); err != nil {
		t.Fatal(err)
	}
	out := notary(t, t.TempDir(), server, "list", reg+"/team/app")
	if !strings.Contains(out, strings.TrimPrefix(digestOf(t, image), "sha256:")) {
		t.Fatalf("notary list lacks %s:\n%s", digestOf(t, image), out)
	}

	// notary -> signet
	nd := t.TempDir()
	other := reg + "/team/other:v1"
	testservers.PushRandom(t, other)
	r, _ := name.ParseReference(other)
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	notary(t, nd, server, "init", reg+"/team/other", "-p")
	notary(t, nd, server, "addhash", reg+"/team/other", "v1", fmt.Sprint(desc.Size), "--sha256", desc.Digest.Hex, "-p")
	if _, err := Verify(ctx, testConfig(t, server), other); err != nil {
		t.Fatalf("signet verify of notary's signature: %v", err)
	}
	// A wrong size signed by notary is caught.
	notary(t, nd, server, "addhash", reg+"/team/other", "v1", fmt.Sprint(desc.Size+1), "--sha256", desc.Digest.Hex, "-p")
	if _, err := Verify(ctx, testConfig(t, server), other); !IsDenied(err) {
		t.Fatalf("verify with a wrong signed size: %v", err)
	}
}

func emptyIndex() v1Index { return emptyIdx }

// TestPushNothingItCannotSign: with no passphrase and no terminal, push
// fails before uploading anything; --allow-unsigned pushes and says why
// it did not sign.
func TestPushNothingItCannotSign(t *testing.T) {
	reg := testservers.Registry(t)
	c := testConfig(t, testservers.TrustServer(t))
	c.Passphrases = &keys.Retriever{Getenv: env(nil)}
	ctx := context.Background()
	testservers.PushRandom(t, reg+"/src/app:1")
	dst := reg + "/team/app:1"

	_, _, err := Push(ctx, c, reg+"/src/app:1", dst, false)
	if err == nil || !strings.Contains(err.Error(), "nothing pushed") || !strings.Contains(err.Error(), "SIGNET_ROOT_PASSPHRASE") {
		t.Fatalf("push without passphrase: %v", err)
	}
	r, _ := name.ParseReference(dst)
	if _, err := remote.Head(r); err == nil {
		t.Fatalf("%s exists in the registry after a refused push", dst)
	}

	s, unsigned, err := Push(ctx, c, reg+"/src/app:1", dst, true)
	if err != nil || unsigned == nil || s.Digest != digestOf(t, reg+"/src/app:1") {
		t.Fatalf("push --allow-unsigned: %+v %v %v", s, unsigned, err)
	}
	if _, err := Verify(ctx, testConfig(t, c.Server), dst); !IsDenied(err) {
		t.Fatalf("verify of the unsigned push: %v", err)
	}
}

// TestSignsIntoHeldDelegation: in a repository with a targets/releases
// delegation (added with the notary CLI, sharing the trust dir as a
// docker user would), signet signs into the delegation it holds the key
// for, and readers see it there.
func TestSignsIntoHeldDelegation(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	gun := reg + "/team/app"
	work := t.TempDir()
	certPath, keyPath := testkeys.Delegation(t, work, "ci")
	notary(t, c.TrustDir, server, "init", gun, "-p")
	notary(t, c.TrustDir, server, "delegation", "add", gun, "targets/releases", certPath, "--all-paths", "-p")
	notary(t, c.TrustDir, server, "key", "import", keyPath, "--role", "targets/releases")

	image := gun + ":v1"
	testservers.PushRandom(t, image)
	signed, err := Sign(ctx, c, []Request{{Image: image}})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if strings.Join(signed[0].Roles, ",") != "targets/releases" {
		t.Fatalf("signed into %v, want targets/releases", signed[0].Roles)
	}
	v, err := Verify(ctx, testConfig(t, server), image)
	if err != nil || v.Role != "targets/releases" {
		t.Fatalf("verify: %+v %v", v, err)
	}
	out := notary(t, t.TempDir(), server, "list", gun)
	if !strings.Contains(out, "targets/releases") || !strings.Contains(out, strings.TrimPrefix(digestOf(t, image), "sha256:")) {
		t.Fatalf("notary list:\n%s", out)
	}
	// A trust dir without the signer key cannot sign: the error says how.
	other := testConfig(t, server)
	notary(t, other.TrustDir, server, "list", gun) // fetch trust data only
	_, err = Sign(ctx, other, []Request{{Image: image}})
	if err == nil || !strings.Contains(err.Error(), "no signer key") {
		t.Fatalf("sign without the delegation key: %v", err)
	}
}

// TestSignsWithSignerKeyFromEnv: a pipeline with no key files signs into
// targets/releases with its key given as base64 in SIGNET_SIGNER_KEY.
func TestSignsWithSignerKeyFromEnv(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin := testConfig(t, server)
	gun := reg + "/team/app"
	certPath, keyPath := testkeys.Delegation(t, t.TempDir(), "ci")
	// The administrator initialises with signet (snapshot key on the
	// server, as docker does) and adds the CI signer with the notary CLI
	// on the same trust dir.
	if _, err := Init(ctx, admin, gun); err != nil {
		t.Fatal(err)
	}
	notary(t, admin.TrustDir, server, "delegation", "add", gun, "targets/releases", certPath, "--all-paths", "-p")

	raw, _ := os.ReadFile(keyPath)
	envVars := map[string]string{keys.SignerKeyEnv: base64.StdEncoding.EncodeToString(raw)}
	getenv := func(k string) string { return envVars[k] }
	ci := Config{TrustDir: t.TempDir(), Server: server, Passphrases: &keys.Retriever{Getenv: getenv}}
	var err error
	if ci.SignerKey, err = keys.FromEnv(getenv, ci.Passphrases, ""); err != nil || ci.SignerKey == nil {
		t.Fatalf("signer key from env: %v", err)
	}
	image := gun + ":v1"
	testservers.PushRandom(t, image)
	signed, err := Sign(ctx, ci, []Request{{Image: image}})
	if err != nil || strings.Join(signed[0].Roles, ",") != "targets/releases" {
		t.Fatalf("sign with the env key: %+v %v", signed, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(ci.TrustDir, "private")); len(entries) != 0 {
		t.Fatalf("the env key was written to the trust dir: %v", entries)
	}
	if v, err := Verify(ctx, testConfig(t, server), image); err != nil || v.Role != "targets/releases" {
		t.Fatalf("verify: %+v %v", v, err)
	}
}
