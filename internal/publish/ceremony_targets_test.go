package publish

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/ceremony"
)

// repoKey makes a repository (targets) key pair for gun, imports the
// private key into the trust dir of each of cs and returns the path of
// its certificate (what a key holder hands the ceremony's preparer).
func repoKey(t *testing.T, gun string, cs ...Config) string {
	t.Helper()
	return shareKeyOf(t, "targets", gun, "repository", cs...)
}

// TestCeremonyTargetsTwoOfThree rotates the repository key to a 2-of-3
// set held by three people, in a ceremony signed with the trust server
// off the network: root (by the root key) and the re-signed targets (by
// two of the three). A notary client with the old root cached follows,
// signet verify passes; afterwards signing a tag needs two of the keys
// at hand, and the trust server refuses targets signed by one.
func TestCeremonyTargetsTwoOfThree(t *testing.T) {
	reg := testservers.Registry(t)
	server, down := testservers.SwitchableTrustServer(t)
	ctx := context.Background()
	admin := testConfig(t, server)
	gun := reg + "/team/tgt"
	testservers.PushRandom(t, gun+":v1")
	sign(t, admin, gun+":v1")
	nd := t.TempDir()
	notary(t, nd, server, "list", gun) // caches root v1

	a, b, c, both := testConfig(t, server), testConfig(t, server), testConfig(t, server), testConfig(t, server)
	certs := []string{repoKey(t, gun, a, both), repoKey(t, gun, b, both), repoKey(t, gun, c)}
	dir := filepath.Join(t.TempDir(), "ceremony")
	p, err := PrepareCeremony(ctx, admin, gun, dir, CeremonyChange{Rotate: []string{"targets"}, TargetsKeys: certs,
		TargetsThreshold: 2, TargetsExpires: 90 * 24 * time.Hour}, "admin")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if p.Version != 2 || p.TargetsVersion < 2 || len(p.MustSign) != 2 {
		t.Fatalf("proposal: root v%d, targets v%d, %d key sets", p.Version, p.TargetsVersion, len(p.MustSign))
	}
	if ks := p.MustSign[1]; ks.Doc != trust.DocTargets || ks.Threshold != 2 || len(ks.Keys) != 3 {
		t.Fatalf("targets key set %+v", ks)
	}
	if d := time.Until(p.TargetsExpires); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("targets expire in %v, want 90 days", d)
	}
	for _, f := range []string{ceremony.RootFile, ceremony.TargetsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("ceremony folder lacks %s: %v", f, err)
		}
	}

	down.Store(true) // offline from here to publish
	for _, who := range []Config{admin, a} {
		if _, added, err := SignCeremony(who, dir, nil, "signer", nil); err != nil || len(added) != 1 {
			t.Fatalf("sign: %v %v", added, err)
		}
	}
	if _, err := PublishCeremony(ctx, admin, dir, "admin"); err == nil || !strings.Contains(err.Error(), "new repository (targets) has 1 of the 2 signatures it needs") {
		t.Fatalf("publish with one repository key: %v", err)
	}
	if _, added, err := SignCeremony(b, dir, nil, "signer", nil); err != nil || len(added) != 1 {
		t.Fatalf("sign by the second key holder: %v %v", added, err)
	}
	if _, added, err := SignCeremony(b, dir, nil, "signer", nil); err != nil || len(added) != 0 {
		t.Fatalf("signing twice: %v %v", added, err)
	}
	down.Store(false)
	if _, err := PublishCeremony(ctx, admin, dir, "admin"); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if out := notary(t, nd, server, "list", gun); !strings.Contains(out, "v1") {
		t.Fatalf("notary list with the old cached root:\n%s", out)
	}
	wantVerified(t, testConfig(t, server), gun+":v1", "targets")
	transcript, _ := os.ReadFile(filepath.Join(dir, ceremony.TranscriptFile))
	if n := strings.Count(string(transcript), "signed targets with key"); n != 2 {
		t.Errorf("transcript has %d targets signatures, want 2:\n%s", n, transcript)
	}

	// From now on a tag needs two of the repository keys.
	testservers.PushRandom(t, gun+":v2")
	_, err = Sign(ctx, a, []Request{{Image: gun + ":v2"}})
	wantErr(t, err, "it needs 2 signatures")
	sign(t, both, gun+":v2")
	wantVerified(t, testConfig(t, server), gun+":v2", "targets")
	if out := notary(t, nd, server, "list", gun); !strings.Contains(out, "v2") {
		t.Fatalf("notary list lacks v2:\n%s", out)
	}
	k, err := pemKey(certs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, err = uploadTargetsSignedWith(t, a, server, gun, k)
	wantErr(t, err, "valid signatures did not meet threshold for targets")
}

// TestCeremonyTargetsExpiry re-signs the targets offline with a new
// expiry: no new root, one key set (the repository key), and the notary
// client still lists.
func TestCeremonyTargetsExpiry(t *testing.T) {
	reg := testservers.Registry(t)
	server, down := testservers.SwitchableTrustServer(t)
	ctx := context.Background()
	admin := testConfig(t, server)
	gun := reg + "/team/exp"
	testservers.PushRandom(t, gun+":v1")
	sign(t, admin, gun+":v1")
	dir := filepath.Join(t.TempDir(), "ceremony")
	p, err := PrepareCeremony(ctx, admin, gun, dir, CeremonyChange{TargetsExpires: 2 * 365 * 24 * time.Hour}, "admin")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if p.Signed != nil || p.Version != 0 || len(p.MustSign) != 1 || p.MustSign[0].Name != "repository (targets)" {
		t.Fatalf("proposal: root v%d, key sets %+v", p.Version, p.MustSign)
	}
	if _, err := os.Stat(filepath.Join(dir, ceremony.RootFile)); !os.IsNotExist(err) {
		t.Fatalf("a targets-only ceremony wrote %s: %v", ceremony.RootFile, err)
	}
	down.Store(true)
	if _, added, err := SignCeremony(admin, dir, nil, "admin", nil); err != nil || len(added) != 1 {
		t.Fatalf("sign: %v %v", added, err)
	}
	down.Store(false)
	if _, err := PublishCeremony(ctx, admin, dir, "admin"); err != nil {
		t.Fatalf("publish: %v", err)
	}
	rep := Status(ctx, admin, []string{gun}, 0, time.Now)[0]
	if tr := roleOf(t, rep, "targets"); time.Until(tr.Expires) < 700*24*time.Hour || tr.Version != p.TargetsVersion {
		t.Fatalf("targets after publish: v%d expires %v", tr.Version, tr.Expires)
	}
	if r := rootVersion(t, admin, gun); r != 1 {
		t.Errorf("root version %d, want 1 (unchanged)", r)
	}
	if out := notary(t, t.TempDir(), server, "list", gun); !strings.Contains(out, "v1") {
		t.Fatalf("notary list:\n%s", out)
	}
	// The same folder cannot be published twice: the repository changed.
	_, err = PublishCeremony(ctx, admin, dir, "admin")
	wantErr(t, err, "changed since the ceremony was prepared")
}
