package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"
)

// TestArchiveAndIgnoreExpiry: past the timestamp's expiry a read is
// denied as frozen; a mirror (IgnoreExpiry) still verifies everything
// else and lists what expired; an archive rule pinning the snapshot
// waives only the timestamp and snapshot expiry, and only for that
// snapshot.
func TestArchiveAndIgnoreExpiry(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "m1")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	later := time.Now().Add(30 * 24 * time.Hour) // timestamp expired (14 days)

	_, _, err := update(nil, f, tofu(), later)
	wantReason(t, err, ReasonExpired)

	_, res, err := Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: tofu(), Now: later, IgnoreExpiry: true})
	if err != nil {
		t.Fatalf("mirror read: %v", err)
	}
	if len(res.Expired) != 1 || res.Expired[0] != "timestamp" {
		t.Fatalf("expired = %v, want [timestamp]", res.Expired)
	}
	pin := res.SnapshotSHA256

	_, res, err = Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: tofu(), Now: later, ArchiveSnapshot: pin})
	if err != nil {
		t.Fatalf("archive read: %v", err)
	}
	if !res.Archived || !res.Expires.After(later) {
		t.Fatalf("archived %v, expires %v", res.Archived, res.Expires)
	}
	if got, _, err := res.Lookup(gun, "v1", DockerPath); err != nil || string(got.SHA256) != string(digest("m1")) {
		t.Fatalf("archived v1: %v", err)
	}

	// Any other snapshot (new data, or an edited one) is refused.
	other := append([]byte(nil), pin...)
	other[0] ^= 1
	_, _, err = Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: tofu(), Now: later, ArchiveSnapshot: other})
	wantReason(t, err, ReasonArchive)

	// Targets expiry is not waived.
	far := time.Now().AddDate(2, 0, 0) // targets expire after a year here
	_, _, err = Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: tofu(), Now: far, ArchiveSnapshot: pin})
	wantReason(t, err, ReasonExpired)
}

// TestPinFollowsRootRotation: a reader that pinned the root certificate
// of version 1 and has no state follows the rotation to version 2 by
// walking from the pinned version; a pin no version matches is refused.
func TestPinFollowsRootRotation(t *testing.T) {
	f := newFakeServer(t)
	f.AddTarget(data.CanonicalTargetsRole, "v1", "m1")
	f.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	oldID := f.RootCertID()
	if err := f.Repo.ReplaceBaseKeys(data.CanonicalRootRole, f.CertKey()); err != nil {
		t.Fatal(err)
	}
	f.Publish(data.CanonicalRootRole)
	st, res, err := Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: Pin{CertIDs: []string{oldID}}, Now: time.Now()})
	if err != nil {
		t.Fatalf("pinned to root v1 after a rotation: %v", err)
	}
	if v, _ := rootVersion(st.Root); v != 2 || res.Roles["root"].Version != 2 {
		t.Fatalf("trusted root version %d, want 2", v)
	}
	_, _, err = Update(t.Context(), Request{GUN: gun, Fetcher: f, Pin: Pin{CertIDs: []string{strings.Repeat("ab", 32)}}, Now: time.Now()})
	wantReason(t, err, ReasonRoot)
}
