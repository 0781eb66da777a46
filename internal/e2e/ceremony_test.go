package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/keys"
)

// TestDockerReadsAfterCeremony: after a ceremony moves a repository's
// root to 2 of 3 keys, the docker CLI (client only, with the old root in
// its trust dir) reads the repository, and signet inspect still equals
// docker trust inspect, root keys included.
func TestDockerReadsAfterCeremony(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	reg.push(t, "team/app:v1")
	trustURL, caFile := tlsTrustServer(t)
	docker := newDockerCLI(t, trustURL, caFile)
	r := newReaders(t, reg.host, trustURL, caFile)
	r.cfg.TrustDir = filepath.Join(docker.dir, "trust")
	gun := reg.host + "/team/app"
	if _, err := publish.Sign(ctx, r.cfg, []publish.Request{{Image: gun + ":v1"}}); err != nil {
		t.Fatal(err)
	}
	docker.run("trust", "inspect", gun) // docker caches root v1

	var certs []string
	var holders []publish.Config
	for range 3 {
		h, cert := newRootHolder(t, gun)
		certs = append(certs, cert)
		holders = append(holders, h)
	}
	dir := filepath.Join(t.TempDir(), "ceremony")
	if _, err := publish.PrepareCeremony(ctx, r.cfg, gun, dir, publish.CeremonyChange{RootCerts: certs, Threshold: 2}, "officer"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []publish.Config{r.cfg, holders[0], holders[2]} {
		if _, _, err := publish.SignCeremony(c, dir, nil, "signer", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := publish.PublishCeremony(ctx, r.cfg, dir, "officer"); err != nil {
		t.Fatal(err)
	}
	out := docker.run("trust", "inspect", gun)
	if !strings.Contains(out, `"SignedTag": "v1"`) {
		t.Fatalf("docker trust inspect after the ceremony:\n%s", out)
	}
	compareInspect(t, docker, r, gun, "after a 2-of-3 root ceremony")
	r.expect("team/app:v1", true, "")
}

// newRootHolder is a root key holder: a trust dir of their own with one
// root key file, and the root certificate they hand to the preparer.
func newRootHolder(t *testing.T, gun string) (publish.Config, string) {
	t.Helper()
	h := publish.Config{TrustDir: t.TempDir(), Passphrases: &keys.Retriever{Getenv: func(k string) string { return passphrases[k] }}}
	_, cert := testkeys.RootHolder(t, h.TrustDir, h.Passphrases.PassRetriever(), gun)
	return h, cert
}
