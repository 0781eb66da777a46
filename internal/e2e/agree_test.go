package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testtuf"
)

const releases = data.RoleName("targets/releases")

// sign signs img as tag into role of a testtuf repository.
func sign(ts *testtuf.Server, role data.RoleName, tag string, img image) {
	sum, _ := hex.DecodeString(img.digest.Hex)
	ts.AddTargetHash(role, tag, sum, img.size)
}

// TestReadersAgree: signet verify, a proxy that saw the repository before
// the change and a freshly started proxy give one answer for each case of
// trust data, served by a trust server the test controls completely (it
// holds the snapshot and timestamp keys, as a compromised server would).
func TestReadersAgree(t *testing.T) {
	type check struct {
		tag     string
		allowed bool
		want    string // in the denial
		// rejected: the timestamp, snapshot or targets fail, so the
		// refresh is rejected as a whole and the running proxy keeps
		// serving what it verified before (until that expires).
		rejected bool
	}
	tests := []struct {
		name string
		// change turns honest trust data (targets: v1=old, base=base;
		// releases: v2=new) into the case.
		change func(t *testing.T, ts *testtuf.Server, k data.PublicKey, imgs map[string]image)
		checks []check
		// deniedByDigest are images (by key in imgs) that no proxy may
		// serve by digest any more, though the running one served them
		// before the change.
		deniedByDigest []string
	}{
		{"honest", func(*testing.T, *testtuf.Server, data.PublicKey, map[string]image) {},
			[]check{{"v1", true, "", false}, {"v2", true, "", false}, {"base", true, "", false}, {"nope", false, "not signed in targets/releases or targets", false}}, nil},
		{"signer removed: releases keyless is passed over", func(t *testing.T, ts *testtuf.Server, k data.PublicKey, _ map[string]image) {
			if err := ts.Repo.UpdateDelegationKeys(releases, nil, []string{k.ID()}, 1); err != nil {
				t.Fatal(err)
			}
			ts.Publish(data.CanonicalTargetsRole)
		}, []check{{"v1", true, "", false}, {"base", true, "", false}, {"v2", false, "targets/releases has no keys", false}}, []string{"new"}},
		{"releases with a bad signature denies though targets has v1", func(t *testing.T, ts *testtuf.Server, _ data.PublicKey, imgs map[string]image) {
			rogue, _ := ts.CS.Create("targets/rogue", data.GUN(ts.GUN), data.ECDSAKey)
			sign(ts, releases, "v1", imgs["evil"])
			ts.ServeRaw(releases, ts.SignWith(releases, rogue))
		}, []check{{"v1", false, "bad signature", false}, {"base", false, "bad signature", false}}, nil},
		{"expired releases denies though targets has v1", func(t *testing.T, ts *testtuf.Server, _ data.PublicKey, imgs map[string]image) {
			sign(ts, releases, "v1", imgs["evil"])
			s, err := ts.Repo.SignTargets(releases, time.Now().Add(-time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			ts.ServeRaw(releases, testtuf.Marshal(t, s))
		}, []check{{"v1", false, "expired", false}, {"base", false, "expired", false}}, nil},
		{"oversized targets declared by the snapshot", func(t *testing.T, ts *testtuf.Server, _ data.PublicKey, _ map[string]image) {
			ts.ServeRaw(data.CanonicalTargetsRole, []byte(`{"signed":{"x":"`+strings.Repeat("a", 40<<20)+`"}}`))
		}, []check{{"v1", false, "too large", true}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			imgs := map[string]image{
				"old":  reg.push(t, "team/app:v1"),
				"new":  reg.push(t, "team/app:v2"),
				"base": reg.push(t, "team/app:base"),
				"evil": reg.push(t, "team/app:evil"),
			}
			ts := testtuf.New(t, reg.host+"/team/app")
			sign(ts, data.CanonicalTargetsRole, "v1", imgs["old"])
			sign(ts, data.CanonicalTargetsRole, "base", imgs["base"])
			k := ts.Delegate(releases)
			sign(ts, releases, "v2", imgs["new"])
			ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole, releases)
			srv := httptest.NewServer(ts)
			t.Cleanup(srv.Close)

			r := newReaders(t, reg.host, srv.URL, "")
			// The running proxy and verify's cache see the honest data
			// first.
			for _, tag := range []string{"v1", "v2", "base"} {
				r.expect("team/app:"+tag, true, "")
			}
			tc.change(t, ts, k, imgs)
			for _, c := range tc.checks {
				if c.rejected {
					r.expectExcept("team/app:"+c.tag, c.allowed, c.want, "running proxy")
					continue
				}
				r.expect("team/app:"+c.tag, c.allowed, c.want)
			}
			for _, key := range tc.deniedByDigest {
				ref := "team/app@" + imgs[key].digest.String()
				for label, host := range map[string]string{"running proxy": r.running, "fresh proxy": r.replica()} {
					if err := pull(host, ref); !isDenied(err) {
						t.Errorf("%s served %s (%s) by digest after the change: %v", label, key, ref, err)
					}
				}
			}
		})
	}
}

// TestVerifyHashesTheManifest: a registry that answers HEAD with the
// signed digest and GET with other bytes does not get a tag verified;
// the proxy serves the signed bytes.
func TestVerifyHashesTheManifest(t *testing.T) {
	reg := newRegistry(t)
	signed := reg.push(t, "team/app:v1")
	other := reg.push(t, "team/app:other")
	reg.lie = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/team/app/manifests/v1" {
			return false
		}
		w.Header().Set("Docker-Content-Digest", signed.digest.String())
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.Itoa(int(signed.size)))
			return true
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(other.raw)))
		w.Write(other.raw)
		return true
	}
	ts := testtuf.New(t, reg.host+"/team/app")
	sign(ts, data.CanonicalTargetsRole, "v1", signed)
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	r := newReaders(t, reg.host, srv.URL, "")

	_, err := r.verify(reg.host + "/team/app:v1")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), other.digest.Hex) {
		t.Fatalf("verify of a lying registry: exit %d, %v; want 1 naming the served digest %s", exitCode(err), err, other.digest)
	}
	// The proxy pins the tag to the signed digest and hashes what it
	// serves.
	ref, _ := name.ParseReference(r.running + "/team/app:v1")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(desc.Manifest); hex.EncodeToString(got[:]) != signed.digest.Hex {
		t.Fatalf("proxy served sha256:%x, want the signed %s", got, signed.digest)
	}
}
