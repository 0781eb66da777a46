package publish

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/ceremony"
)

// CeremonyChange is what a ceremony changes, as the CLI gives it.
type CeremonyChange struct {
	// RootKeys are key IDs in the key store (files or YubiKeys) whose
	// root certificates are made now; RootCerts are PEM files of root
	// certificates made elsewhere (signet ceremony cert).
	RootKeys  []string
	RootCerts []string
	Threshold int
	// Rotate are roles to give new keys: timestamp and snapshot move to
	// new keys the trust server makes; targets to TargetsKeys, or to a
	// key made now in the trust dir.
	Rotate        []string
	ServerManaged bool
	// TargetsKeys are the new repository keys: PEM public key files, or
	// IDs of keys the trust dir or a YubiKey holds. TargetsThreshold is
	// how many must sign (0: 1).
	TargetsKeys      []string
	TargetsThreshold int
	// RootExpires and TargetsExpires, if not zero, are the new root's
	// and targets' lifetimes from now.
	RootExpires    time.Duration
	TargetsExpires time.Duration
}

// PrepareCeremony reads image's current trust data and writes the
// ceremony folder dir for the change (needs the trust server).
func PrepareCeremony(ctx context.Context, c Config, image, dir string, ch CeremonyChange, who string) (*trust.Proposal, error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return nil, fmt.Errorf("ceremony for %s: name a repository without a tag", image)
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return nil, err
	}
	rc := trust.Change{RootThreshold: ch.Threshold, TargetsThreshold: ch.TargetsThreshold}
	rotateTargets := false
	for _, r := range ch.Rotate {
		role := data.RoleName(r)
		if role == data.CanonicalTargetsRole {
			rotateTargets = true
			continue
		}
		rc.Rotations = append(rc.Rotations, trust.Rotation{Role: role, ServerManaged: ch.ServerManaged || role == data.CanonicalTimestampRole})
	}
	if len(ch.TargetsKeys) > 0 && !rotateTargets {
		return nil, fmt.Errorf("ceremony for %s: --targets-key goes with --rotate targets", image)
	}
	if len(rc.Rotations) > 0 {
		if err := trust.CheckRotations(rc.Rotations); err != nil {
			return nil, err
		}
	}
	r, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return nil, err
	}
	for _, id := range ch.RootKeys {
		k, err := trust.RootCert(r.CryptoService(), id, r.GUN())
		if err != nil {
			return nil, err
		}
		rc.RootKeys = append(rc.RootKeys, k)
	}
	for _, f := range ch.RootCerts {
		k, err := trust.LoadRootCert(f, r.GUN())
		if err != nil {
			return nil, err
		}
		rc.RootKeys = append(rc.RootKeys, k)
	}
	if rotateTargets {
		if rc.TargetsKeys, err = publicKeys(r, ch.TargetsKeys); err != nil {
			return nil, err
		}
		if len(rc.TargetsKeys) == 0 {
			k, err := r.CryptoService().Create(data.CanonicalTargetsRole, data.GUN(r.GUN()), data.ECDSAKey)
			if err != nil {
				return nil, fmt.Errorf("make a new repository key for %s: %w", r.GUN(), err)
			}
			rc.TargetsKeys = []data.PublicKey{k}
		}
	}
	now := time.Now()
	if ch.RootExpires > 0 {
		rc.RootExpires = now.Add(ch.RootExpires)
	}
	if ch.TargetsExpires > 0 {
		rc.TargetsExpires = now.Add(ch.TargetsExpires)
	}
	p, err := r.Propose(ctx, rc)
	if err != nil {
		return nil, err
	}
	if err := ceremony.Write(dir, p, who, time.Now()); err != nil {
		return nil, err
	}
	return p, nil
}

// SignCeremony signs the ceremony in dir with the keys c's trust dir and
// hardware keys hold (only those listed, if any). It needs no network.
func SignCeremony(c Config, dir string, only []string, who string, describe func(string) string) (*ceremony.Ceremony, []string, error) {
	cer, err := ceremony.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	opts := trust.Options{TrustDir: c.TrustDir, Server: cer.Proposal.Server, Passphrases: c.Passphrases, HardwareKeys: c.HardwareKeys, Logger: c.Logger}
	r, err := trust.Open(cer.Proposal.GUN, opts)
	if err != nil {
		return nil, nil, err
	}
	added, err := cer.Sign(r.CryptoService(), only, who, describe, time.Now())
	return cer, added, err
}

// PublishCeremony uploads the ceremony in dir once its thresholds are met
// and the repository has not changed since it was prepared.
func PublishCeremony(ctx context.Context, c Config, dir, who string) (*ceremony.Ceremony, error) {
	cer, err := ceremony.Load(dir)
	if err != nil {
		return nil, err
	}
	if err := cer.Proposal.Publishable(cer.List()); err != nil {
		return cer, err // before any network
	}
	if c.Server == "" {
		c.Server = cer.Proposal.Server
	}
	repo, err := registry.ParseRepository(cer.Proposal.GUN)
	if err != nil {
		return nil, err
	}
	r, err := c.open(ctx, repo, "push", "pull")
	if err != nil {
		return nil, err
	}
	if err := r.PublishProposal(ctx, cer.Proposal, cer.List()); err != nil {
		return cer, err
	}
	return cer, cer.Published(who, time.Now())
}

// RootCertFile writes the root certificate of keyID (held in c's trust
// dir or hardware keys) for image's repository to out, and returns the
// key ID root.json will list. No network.
func RootCertFile(c Config, image, keyID, out string) (gun, id string, err error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return "", "", fmt.Errorf("cert for %s: name a repository without a tag", image)
	}
	repo, err := registry.ParseRepository(repoName)
	if err != nil {
		return "", "", err
	}
	gun = registry.GUN(repo)
	// trust.Open does no I/O; the server is never contacted.
	r, err := trust.Open(gun, trust.Options{TrustDir: c.TrustDir, Server: "https://offline.invalid", Passphrases: c.Passphrases, HardwareKeys: c.HardwareKeys})
	if err != nil {
		return "", "", err
	}
	if keyID == "" {
		ids := r.CryptoService().ListKeys(data.CanonicalRootRole)
		if len(ids) != 1 {
			return "", "", fmt.Errorf("cert for %s: %d root keys here (%v): name one with --key", gun, len(ids), ids)
		}
		keyID = ids[0]
	}
	k, err := trust.RootCert(r.CryptoService(), keyID, gun)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(out, k.Public(), 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", out, err)
	}
	return gun, k.ID(), nil
}
