package publish

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// giveKey makes a signer key pair: the private key goes into c's trust
// dir (the signer's), the certificate path is returned (what the
// signer hands the administrator).
func giveKey(t *testing.T, c Config, role string) string {
	t.Helper()
	return shareKey(t, role, c)
}

// genKey makes a key for role in c's trust dir and returns its ID.
func genKey(t *testing.T, c Config, role string) string {
	t.Helper()
	s, err := keys.Open(c.TrustDir, c.Passphrases)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Generate(role, "", "ecdsa")
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// withEnvKey is c with the key file of id (from the trust dir of from)
// handed in as SIGNET_SIGNER_KEY_FILE, as a pipeline or an officer
// holding a second signer's key would.
func withEnvKey(t *testing.T, c, from Config, id string) Config {
	t.Helper()
	s, err := keys.Open(from.TrustDir, from.Passphrases)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := s.Export(id)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/signer.key"
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := env(map[string]string{keys.SignerKeyFileEnv: path, "SIGNET_DELEGATION_PASSPHRASE": pass})
	if c.SignerKey, err = keys.FromEnv(getenv, c.Passphrases, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

// onlyKey returns the ID of the one key in c's trust dir.
func onlyKey(t *testing.T, c Config) string {
	t.Helper()
	s, err := keys.Open(c.TrustDir, c.Passphrases)
	if err != nil {
		t.Fatal(err)
	}
	list := s.List()
	if len(list) != 1 {
		t.Fatalf("%d keys in %s, want 1", len(list), c.TrustDir)
	}
	return list[0].ID
}

func wantDenied(t *testing.T, c Config, image, want string) {
	t.Helper()
	_, err := Verify(context.Background(), c, image)
	var deny *trust.DenyError
	if !errors.As(err, &deny) || !strings.Contains(err.Error(), want) {
		t.Fatalf("verify %s: %v, want a denial saying %q", image, err, want)
	}
}

func wantVerified(t *testing.T, c Config, image, role string) {
	t.Helper()
	v, err := Verify(context.Background(), c, image)
	if err != nil || v.Role != role {
		t.Fatalf("verify %s: %+v %v, want it signed in %s", image, v, err, role)
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one saying %q", err, want)
	}
}

func sign(t *testing.T, c Config, images ...string) {
	t.Helper()
	for _, image := range images {
		if _, err := Sign(context.Background(), c, []Request{{Image: image}}); err != nil {
			t.Fatalf("sign %s: %v", image, err)
		}
	}
}

// delegation returns the listed delegation role of image.
func delegation(t *testing.T, c Config, image, role string) trust.Delegation {
	t.Helper()
	_, list, err := DelegationList(context.Background(), c, image)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.Role == role {
			return d
		}
	}
	t.Fatalf("%s has no delegation %s: %+v", image, role, list)
	return trust.Delegation{}
}

// TestSignerLifecycle: a signer added by key ID signs a tag into
// targets/releases; rotating to a key held here re-signs at once and
// the tag stays served; removing the signer needs --yes (last releases
// key), then its tag is denied and the tag in targets stays.
func TestSignerLifecycle(t *testing.T) {
	reg := testservers.Registry(t)
	c := testConfig(t, testservers.TrustServer(t))
	ctx := context.Background()
	repo := reg + "/team/signers"
	testservers.PushRandom(t, repo+":v1")
	testservers.PushRandom(t, repo+":v2")
	sign(t, c, repo+":v1")

	alice := genKey(t, c, "targets/alice")
	out, err := SignerAdd(ctx, c, "alice", []string{alice}, []string{repo})
	if err != nil {
		t.Fatalf("signer add: %v", err)
	}
	if got := strings.Join(out[0].Published, " "); got != "targets" {
		t.Errorf("signer add published %q, want targets", got)
	}
	sign(t, c, repo+":v2")
	wantVerified(t, c, repo+":v2", "targets/releases")

	alice2 := genKey(t, c, "targets/alice")
	res, err := SignerRotate(ctx, c, "alice", []string{alice2}, repo)
	if err != nil {
		t.Fatalf("signer rotate: %v", err)
	}
	if len(res.KeptKeys) != 0 || strings.Join(res.Resigned, " ") != "targets/alice targets/releases" {
		t.Errorf("rotate with the new key held: %+v, want both roles re-signed and no key kept", res)
	}
	if d := delegation(t, c, repo, "targets/alice"); !slices.Equal(d.KeyIDs, []string{alice2}) || !slices.Equal(d.Tags, []string{"v2"}) {
		t.Errorf("targets/alice after rotation: %+v", d)
	}
	wantVerified(t, c, repo+":v2", "targets/releases")
	wantVerified(t, testConfig(t, c.Server), repo+":v2", "targets/releases")

	_, err = SignerRemove(ctx, c, "alice", []string{repo}, false)
	wantErr(t, err, "last key of targets/releases; readers stop serving the tags signed only there (v2); tags in targets stay (v1): add --yes")
	if _, err := SignerRemove(ctx, c, "alice", []string{repo}, true); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, c, repo+":v2", "targets/releases has no keys")
	wantVerified(t, c, repo+":v1", "targets")
	_, err = SignerRemove(ctx, c, "alice", []string{repo}, true)
	wantErr(t, err, "no such signer")
}

// TestSignerRemoveKeepsReleasesValid: alice and bob sign into
// targets/releases, alice last. Removing alice where no other releases
// key is held is refused (targets/releases would fail and every tag be
// denied); with bob's key handed in, targets/releases is re-signed by
// bob and every tag stays served.
func TestSignerRemoveKeepsReleasesValid(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, alice, bob := testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/two"
	for _, tag := range []string{"v1", "v2", "v3"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	sign(t, admin, repo+":v1")
	for name, c := range map[string]Config{"alice": alice, "bob": bob} {
		if _, err := SignerAdd(ctx, admin, name, []string{giveKey(t, c, "targets/"+name)}, []string{repo}); err != nil {
			t.Fatal(err)
		}
	}
	sign(t, bob, repo+":v2")
	sign(t, alice, repo+":v3")

	_, err := SignerRemove(ctx, admin, "alice", []string{repo}, true)
	var fe *trust.FailError
	if !errors.As(err, &fe) || fe.Role != "targets/releases" {
		t.Fatalf("removing the signer of the current targets/releases without another key: %v, want a *trust.FailError", err)
	}
	wantErr(t, err, "run this where another releases key")

	out, err := SignerRemove(ctx, withEnvKey(t, admin, bob, onlyKey(t, bob)), "alice", []string{repo}, false)
	if err != nil {
		t.Fatalf("remove alice with bob's key: %v", err)
	}
	if strings.Join(out[0].Resigned, " ") != "targets/releases" {
		t.Errorf("remove: %+v, want targets/releases re-signed", out[0].EditResult)
	}
	for _, tag := range []string{"v2", "v3"} {
		wantVerified(t, testConfig(t, server), repo+":"+tag, "targets/releases")
	}
	wantVerified(t, testConfig(t, server), repo+":v1", "targets")
	// Bob goes on signing.
	testservers.PushRandom(t, repo+":v4")
	sign(t, bob, repo+":v4")
	wantVerified(t, testConfig(t, server), repo+":v4", "targets/releases")
}

// TestSignerRotateInTwoSteps: the administrator rotates alice to a key
// only alice holds: both keys stay listed (alice's tags stay valid)
// until alice signs with the new key; the same command then drops the
// old key, and every tag is still served.
func TestSignerRotateInTwoSteps(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, alice, alice2 := testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/rot"
	for _, tag := range []string{"v1", "v2"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	if _, err := SignerAdd(ctx, admin, "alice", []string{giveKey(t, alice, "targets/alice")}, []string{repo}); err != nil {
		t.Fatal(err)
	}
	sign(t, alice, repo+":v1")
	oldID := onlyKey(t, alice)

	newCert := giveKey(t, alice2, "targets/alice")
	res, err := SignerRotate(ctx, admin, "alice", []string{newCert}, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeptKeys) != 1 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "stay listed until alice signs with the new key") {
		t.Fatalf("first rotation step: %+v, want the old key kept and a note", res)
	}
	if d := delegation(t, admin, repo, "targets/alice"); len(d.KeyIDs) != 2 {
		t.Fatalf("targets/alice lists %v, want the old and the new key", d.KeyIDs)
	}
	wantVerified(t, testConfig(t, server), repo+":v1", "targets/releases")

	// Alice signs with the new key only; then the old key goes.
	sign(t, alice2, repo+":v2")
	res, err = SignerRotate(ctx, admin, "alice", []string{newCert}, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeptKeys) != 0 || len(res.Resigned) != 0 {
		t.Fatalf("second rotation step: %+v, want the old key dropped with nothing to re-sign", res)
	}
	d := delegation(t, admin, repo, "targets/alice")
	if len(d.KeyIDs) != 1 || slices.Contains(d.KeyIDs, oldID) {
		t.Fatalf("targets/alice lists %v, want only the new key", d.KeyIDs)
	}
	for _, tag := range []string{"v1", "v2"} {
		wantVerified(t, testConfig(t, server), repo+":"+tag, "targets/releases")
	}
	// The old key signs nothing any more.
	testservers.PushRandom(t, repo+":v3")
	_, err = Sign(ctx, alice, []Request{{Image: repo + ":v3"}})
	wantErr(t, err, "no signer key")
}

// TestSignerReAddedWithNewKey: a signer removed (lost key) and added
// again with a new key: the trust server still has targets/<name>
// signed by the old key, which signet will not re-sign for it. The
// administrator is told; the signer runs the same command with the new
// key, which replaces it with an empty one; signing works again.
func TestSignerReAddedWithNewKey(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, alice, bob, alice2 := testConfig(t, server), testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/readd"
	for _, tag := range []string{"v1", "v2", "v3"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	for name, c := range map[string]Config{"alice": alice, "bob": bob} {
		if _, err := SignerAdd(ctx, admin, name, []string{giveKey(t, c, "targets/"+name)}, []string{repo}); err != nil {
			t.Fatal(err)
		}
	}
	sign(t, alice, repo+":v1")
	sign(t, bob, repo+":v2") // targets/releases is now signed by bob
	if _, err := SignerRemove(ctx, admin, "alice", []string{repo}, false); err != nil {
		t.Fatalf("remove alice (releases signed by bob): %v", err)
	}
	wantVerified(t, testConfig(t, server), repo+":v1", "targets/releases")

	cert := giveKey(t, alice2, "targets/alice")
	out, err := SignerAdd(ctx, admin, "alice", []string{cert}, []string{repo})
	if err != nil {
		t.Fatal(err)
	}
	if len(out[0].Notes) != 1 || !strings.Contains(out[0].Notes[0], "alice runs this same command where the new private key is") {
		t.Fatalf("re-adding alice: %+v, want a note saying what alice does", out[0].EditResult)
	}
	out, err = SignerAdd(ctx, alice2, "alice", []string{cert}, []string{repo})
	if err != nil {
		t.Fatalf("alice replaces her old targets/alice: %v", err)
	}
	if strings.Join(out[0].Published, " ") != "targets/alice" || strings.Join(out[0].Resigned, " ") != "targets/alice" {
		t.Fatalf("alice's run: %+v, want only targets/alice, signed again", out[0].EditResult)
	}
	sign(t, alice2, repo+":v3")
	for _, tag := range []string{"v1", "v2", "v3"} {
		wantVerified(t, testConfig(t, server), repo+":"+tag, "targets/releases")
	}
	if d := delegation(t, admin, repo, "targets/alice"); !slices.Equal(d.Tags, []string{"v3"}) {
		t.Errorf("targets/alice signs %v, want v3 (it started again empty)", d.Tags)
	}
}

// shareKey makes one signer key pair and imports the private key into
// the trust dir of each of cs; it returns the certificate path.
func shareKey(t *testing.T, role string, cs ...Config) string {
	t.Helper()
	return shareKeyOf(t, role, "", strings.TrimPrefix(role, "targets/"), cs...)
}

// shareKeyOf is shareKey for a key of gun (a repository key), whose
// certificate names cn.
func shareKeyOf(t *testing.T, role, gun, cn string, cs ...Config) string {
	t.Helper()
	cert, key := testkeys.Delegation(t, t.TempDir(), cn)
	raw, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		s, err := keys.Open(c.TrustDir, c.Passphrases)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Import(raw, role, gun); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// TestDelegationThresholdTwo: targets/releases with two keys and
// threshold 2. A trust dir with one of them cannot sign a tag; with both
// it can, and verify serves it. The threshold cannot exceed the keys
// kept; lowered to 1, a key can go and the tag stays served.
func TestDelegationThresholdTwo(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, one, both := testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/quorum"
	for _, tag := range []string{"v1", "v2"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	sign(t, admin, repo+":v1")
	certA := shareKey(t, "targets/releases", one, both)
	certB := shareKey(t, "targets/releases", both)

	_, err := DelegationAdd(ctx, admin, repo, "targets/qa", []string{certA}, 2, nil)
	wantErr(t, err, "threshold 2 but it has 1 keys: add keys (--key) or lower --threshold")
	if _, err := DelegationAdd(ctx, admin, repo, "targets/releases", []string{certA, certB}, 2, nil); err != nil {
		t.Fatal(err)
	}
	d := delegation(t, admin, repo, "targets/releases")
	if d.Threshold != 2 || len(d.KeyIDs) != 2 || !slices.Equal(d.Paths, []string{""}) {
		t.Fatalf("targets/releases: %+v, want 2 keys, threshold 2, every path", d)
	}

	_, err = Sign(ctx, one, []Request{{Image: repo + ":v2"}})
	wantErr(t, err, "found 1 of 2 needed keys")
	wantDenied(t, testConfig(t, server), repo+":v2", "not signed")
	sign(t, both, repo+":v2")
	wantVerified(t, testConfig(t, server), repo+":v2", "targets/releases")

	keyB := delegationKeyOf(t, d, certB)
	_, err = DelegationRemove(ctx, admin, repo, "targets/releases", []string{keyB[:12]}, nil, false)
	wantErr(t, err, "it needs 2 signatures and would keep 1 keys: lower its threshold first")
	if _, err := DelegationAdd(ctx, admin, repo, "targets/releases", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := DelegationRemove(ctx, admin, repo, "targets/releases", []string{certB}, nil, false); err != nil {
		t.Fatal(err)
	}
	if d := delegation(t, admin, repo, "targets/releases"); d.Threshold != 1 || len(d.KeyIDs) != 1 {
		t.Fatalf("targets/releases: %+v, want one key, threshold 1", d)
	}
	wantVerified(t, testConfig(t, server), repo+":v2", "targets/releases")

	_, err = DelegationRemove(ctx, admin, repo, "targets/releases", nil, nil, false)
	wantErr(t, err, "it signs v2, which it then no longer vouches for; readers stop serving the tags signed only there (v2); tags in targets stay (v1): add --yes")
}

// delegationKeyOf returns the key ID d lists for the certificate file.
func delegationKeyOf(t *testing.T, d trust.Delegation, cert string) string {
	t.Helper()
	k, err := pemKey(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.KeyIDs, k.ID()) {
		t.Fatalf("%s lists %v, not %s", d.Role, d.KeyIDs, k.ID())
	}
	return k.ID()
}

// TestThresholdTwoNeedsBothSignatures: a trust server serving a
// threshold-2 targets/releases signed by one of its two keys (what a
// compromised server, or a signer acting alone, could produce) gets
// the tag denied; signed by both, it is served.
func TestThresholdTwoNeedsBothSignatures(t *testing.T) {
	reg := testservers.Registry(t)
	gun := reg + "/quorum/app"
	img := testservers.PushRandom(t, gun+":v1")
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	ts := testtuf.New(t, gun)
	var ks data.KeyList
	for range 2 {
		k, err := ts.CS.Create(trust.ReleasesRole, data.GUN(gun), data.ECDSAKey)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	if err := ts.Repo.UpdateDelegationKeys(trust.ReleasesRole, ks, nil, 2); err != nil {
		t.Fatal(err)
	}
	if err := ts.Repo.UpdateDelegationPaths(trust.ReleasesRole, []string{""}, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Repo.InitTargets(trust.ReleasesRole); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	ts.AddTargetHash(trust.ReleasesRole, "v1", sum[:], int64(len(raw)))
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name    string
		signers data.KeyList
		deny    string
	}{
		{"one of two keys", ks[:1], "bad signature or threshold"},
		{"both keys", ks, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			ts.ServeRaw(trust.ReleasesRole, ts.SignWith(trust.ReleasesRole, tc.signers...))
			c := testConfig(t, srv.URL)
			if tc.deny != "" {
				wantDenied(t, c, gun+":v1", tc.deny)
				return
			}
			wantVerified(t, c, gun+":v1", "targets/releases")
		})
	}
}

// TestSignerAddToDisabledReleases: after the last signer was removed,
// targets/releases has no keys but still holds metadata signed by the
// removed key. Adding a signer whose key is not held here is refused
// (targets/releases would fail, and every tag be denied); with the new
// signer's key handed in, targets/releases starts again empty, signed by
// it: the removed signer's tag stays denied, the tag in targets stays
// served, and the new signer signs.
func TestSignerAddToDisabledReleases(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, alice, bob := testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/disabled"
	for _, tag := range []string{"v1", "v2", "v3"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	sign(t, admin, repo+":v1")
	if _, err := SignerAdd(ctx, admin, "alice", []string{giveKey(t, alice, "targets/alice")}, []string{repo}); err != nil {
		t.Fatal(err)
	}
	sign(t, alice, repo+":v2")
	if _, err := SignerRemove(ctx, admin, "alice", []string{repo}, true); err != nil {
		t.Fatal(err)
	}

	bobCert := giveKey(t, bob, "targets/bob")
	_, err := SignerAdd(ctx, admin, "bob", []string{bobCert}, []string{repo})
	var fe *trust.FailError
	if !errors.As(err, &fe) || fe.Role != "targets/releases" {
		t.Fatalf("adding bob to a targets/releases holding alice's old metadata: %v, want a *trust.FailError", err)
	}
	wantErr(t, err, "run this where bob's private key is too")
	wantVerified(t, testConfig(t, server), repo+":v1", "targets")

	out, err := SignerAdd(ctx, withEnvKey(t, admin, bob, onlyKey(t, bob)), "bob", []string{bobCert}, []string{repo})
	if err != nil {
		t.Fatalf("add bob with bob's key: %v", err)
	}
	if !slices.Contains(out[0].Resigned, "targets/releases") {
		t.Fatalf("add bob: %+v, want targets/releases signed again", out[0].EditResult)
	}
	wantVerified(t, testConfig(t, server), repo+":v1", "targets")
	wantDenied(t, testConfig(t, server), repo+":v2", "not signed")
	sign(t, bob, repo+":v3")
	wantVerified(t, testConfig(t, server), repo+":v3", "targets/releases")
}

// TestSignAfterRemovalElsewhere: alice is removed from targets/releases
// by a tool that does not sign it again (the notary CLI, as docker trust
// signer remove does), so the server's targets/releases is signed only
// by a key it no longer lists. Bob's signet sign starts it again: empty
// above the old version, signed by bob, then his tag; it says so; the
// tags alice and bob signed before stay denied (nothing in that file was
// valid any more), the tag in targets stays served.
func TestSignAfterRemovalElsewhere(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin, alice, bob := testConfig(t, server), testConfig(t, server), testConfig(t, server)
	repo := reg + "/team/elsewhere"
	for _, tag := range []string{"v1", "v2", "v3", "v4"} {
		testservers.PushRandom(t, repo+":"+tag)
	}
	sign(t, admin, repo+":v1")
	aliceCert := giveKey(t, alice, "targets/alice")
	for name, cert := range map[string]string{"alice": aliceCert, "bob": giveKey(t, bob, "targets/bob")} {
		if _, err := SignerAdd(ctx, admin, name, []string{cert}, []string{repo}); err != nil {
			t.Fatal(err)
		}
	}
	sign(t, bob, repo+":v2")
	sign(t, alice, repo+":v3")
	// notary names a key by its canonical ID (of the key, not of its
	// certificate), as docker trust signer remove does.
	delegationKeyOf(t, delegation(t, admin, repo, "targets/releases"), aliceCert)
	notary(t, admin.TrustDir, server, "delegation", "remove", repo, "targets/releases", onlyKey(t, alice))
	notary(t, admin.TrustDir, server, "publish", repo)
	if d := delegation(t, testConfig(t, server), repo, "targets/releases"); d.Status != verify.RoleFailed {
		t.Fatalf("targets/releases after the removal: %+v, want failed", d)
	}

	res, err := Sign(ctx, bob, []Request{{Image: repo + ":v4"}})
	if err != nil {
		t.Fatalf("bob signs after alice's removal elsewhere: %v", err)
	}
	if notes := strings.Join(res[0].Notes, "\n"); !strings.Contains(notes, "targets/releases held metadata signed by removed keys: it starts again empty") {
		t.Errorf("sign notes %q, want the restart of targets/releases said", notes)
	}
	wantVerified(t, testConfig(t, server), repo+":v4", "targets/releases")
	wantVerified(t, testConfig(t, server), repo+":v1", "targets")
	for _, tag := range []string{"v2", "v3"} {
		wantDenied(t, testConfig(t, server), repo+":"+tag, "not signed")
	}
	if out := notary(t, t.TempDir(), server, "list", repo); !strings.Contains(out, "v4") {
		t.Fatalf("notary list:\n%s", out)
	}
}
