// Package verify is TUF verification for readers of Notary v1 trust data,
// as a pure step: given what was trusted before (State) and a Fetcher for
// metadata bytes, Update returns the verified targets of the requested
// roles and the new State, or a typed denial. It walks root rotations
// version by version and refuses rolled-back, expired (frozen),
// mixed-and-matched or badly signed metadata, with notary's tuf builder
// doing signature, threshold, delegation and hash checks and this package
// doing version floors, expiry (with an injected clock) and size caps.
package verify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
)

// Size caps for metadata fetched from a trust server.
const (
	MaxRootBytes      = 512 << 10
	MaxTimestampBytes = 64 << 10
	// MaxMetadataBytes caps snapshot, targets and delegations when the
	// referring metadata gives no length.
	MaxMetadataBytes = 32 << 20
	// MaxRootRotations bounds the root versions walked in one update.
	MaxRootRotations = 256
)

// Fetcher fetches one metadata file by name ("root.json", "3.root.json",
// "timestamp.json", "snapshot.<sha256>.json", "targets/releases.<sha256>.json"),
// reading at most max bytes; more is an error. A missing file is
// ErrNotFound.
type Fetcher interface {
	Fetch(ctx context.Context, name string, max int64) ([]byte, error)
}

// ErrNotFound is returned by a Fetcher for metadata that does not exist.
var ErrNotFound = errors.New("metadata not found")

// Pin says how a repository's root is trusted before any was seen.
type Pin struct {
	// CertIDs lists accepted root certificate key IDs for the GUN.
	CertIDs []string
	// CAFile is a PEM bundle; roots must chain to it.
	CAFile string
	// TOFU trusts the first root seen. It is refused together with
	// CertIDs or CAFile, and is off by default.
	TOFU bool
}

func (p Pin) config(gun data.GUN) (trustpinning.TrustPinConfig, error) {
	c := trustpinning.TrustPinConfig{DisableTOFU: !p.TOFU}
	if p.TOFU && (len(p.CertIDs) > 0 || p.CAFile != "") {
		return c, errors.New("pin: TOFU cannot be combined with certificate IDs or a CA")
	}
	if !p.TOFU && len(p.CertIDs) == 0 && p.CAFile == "" {
		return c, errors.New("pin: no root certificate IDs, no CA and TOFU not enabled: nothing to trust")
	}
	if len(p.CertIDs) > 0 {
		c.Certs = map[string][]string{gun.String(): p.CertIDs}
	}
	if p.CAFile != "" {
		c.CA = map[string]string{gun.String(): p.CAFile}
	}
	return c, nil
}

// State is what a reader verified before for one repository: the trusted
// root and the version floors that stop rollbacks.
type State struct {
	Root     []byte
	Versions map[string]int // role -> newest version verified
}

func (s *State) version(role data.RoleName) int {
	if s == nil || s.Versions == nil {
		return 0
	}
	return s.Versions[role.String()]
}

// Target is one signed target.
type Target struct {
	SHA256 []byte
	Length int64
}

// Result is the verified trust data of the requested roles.
type Result struct {
	// Targets maps role -> target name -> target, for each requested
	// role that exists (targets always does).
	Targets map[string]map[string]Target
	// Expires is the earliest expiry of the metadata used; past it, the
	// result must not be used.
	Expires time.Time
	// TimestampVersion is the verified timestamp's version.
	TimestampVersion int
}

// Denial reasons.
const (
	ReasonRoot      = "root not trusted"
	ReasonRollback  = "rollback"
	ReasonExpired   = "expired metadata"
	ReasonSignature = "bad signature or threshold"
	ReasonHash      = "metadata does not match its hash"
	ReasonTooLarge  = "metadata too large"
	ReasonMalformed = "malformed metadata"
	ReasonMissing   = "no trust data"
)

// Error is a verification failure: the trust data cannot be trusted. It
// is distinct from a Fetcher's I/O errors, which Update returns wrapped
// as they are.
type Error struct {
	GUN    string
	Role   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("trust data of %s: %s: %s: %v", e.GUN, e.Role, e.Reason, e.Err)
	}
	return fmt.Sprintf("trust data of %s: %s: %s", e.GUN, e.Role, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// classify maps notary's errors to reasons.
func classify(gun data.GUN, role data.RoleName, err error) error {
	if err == nil {
		return nil
	}
	var (
		low   signed.ErrLowVersion
		hash  data.ErrMismatchedChecksum
		bad   data.ErrInvalidChecksum
		meta  data.ErrInvalidMetadata
		synt  *json.SyntaxError
		utype *json.UnmarshalTypeError
	)
	reason := ReasonSignature
	switch {
	case errors.As(err, &low):
		reason = ReasonRollback
	case errors.As(err, &hash), errors.As(err, &bad):
		reason = ReasonHash
	case errors.As(err, &meta), errors.As(err, &synt), errors.As(err, &utype):
		reason = ReasonMalformed
	}
	var ve *Error
	if errors.As(err, &ve) {
		return err
	}
	return &Error{GUN: gun.String(), Role: role.String(), Reason: reason, Err: err}
}

// Update verifies the current trust data of gun. prev is what was trusted
// before (nil: nothing; the root is then trusted through pin). roles are
// the delegations to load besides targets (e.g. targets/releases).
func Update(ctx context.Context, gun string, prev *State, f Fetcher, pin Pin, now time.Time, roles ...string) (*State, *Result, error) {
	g := data.GUN(gun)
	tp, err := pin.config(g)
	if err != nil {
		return nil, nil, &Error{GUN: gun, Role: "root", Reason: ReasonRoot, Err: err}
	}
	if prev != nil && len(prev.Root) > 0 {
		// A root already trusted is not re-pinned: rotations were
		// verified against it.
		tp = trustpinning.TrustPinConfig{}
	}
	b, root, err := trustRoot(ctx, g, prev, f, tp)
	if err != nil {
		return nil, nil, err
	}
	next := &State{Root: root, Versions: map[string]int{}}
	rootChanged := prev != nil && string(prev.Root) != string(root)

	floor := func(role data.RoleName) int {
		// TUF §5.3.11: after a rotation of the timestamp or snapshot
		// keys, version floors reset (recovery from fast-forward).
		if rootChanged && (role == data.CanonicalTimestampRole || role == data.CanonicalSnapshotRole) {
			return 1
		}
		if v := prev.version(role); v > 0 {
			return v
		}
		return 1
	}

	// Timestamp (TUF §5.4).
	raw, err := f.Fetch(ctx, data.CanonicalTimestampRole.String()+".json", MaxTimestampBytes)
	if err != nil {
		return nil, nil, fetchErr(g, data.CanonicalTimestampRole, err)
	}
	if err := b.Load(data.CanonicalTimestampRole, raw, floor(data.CanonicalTimestampRole), true); err != nil {
		return nil, nil, classify(g, data.CanonicalTimestampRole, err)
	}
	// Snapshot by the hash the timestamp gives (TUF §5.5).
	if err := loadByHash(ctx, g, b, f, data.CanonicalSnapshotRole, floor(data.CanonicalSnapshotRole)); err != nil {
		return nil, nil, err
	}
	// Targets and delegations by the hashes the snapshot gives (§5.6).
	if err := loadByHash(ctx, g, b, f, data.CanonicalTargetsRole, floor(data.CanonicalTargetsRole)); err != nil {
		return nil, nil, err
	}
	loaded := []data.RoleName{data.CanonicalTargetsRole}
	for _, r := range roles {
		role := data.RoleName(r)
		if !data.IsDelegation(role) {
			continue
		}
		if !b.GetConsistentInfo(role).ChecksumKnown() {
			continue // not in the snapshot: never published or not delegated
		}
		if err := loadByHash(ctx, g, b, f, role, floor(role)); err != nil {
			return nil, nil, err
		}
		loaded = append(loaded, role)
	}
	repo, _, err := b.Finish()
	if err != nil {
		return nil, nil, classify(g, data.CanonicalTargetsRole, err)
	}
	res := &Result{Targets: map[string]map[string]Target{}, TimestampVersion: repo.Timestamp.Signed.Version}
	check := func(role data.RoleName, c data.SignedCommon) error {
		if !now.Before(c.Expires) {
			return &Error{GUN: gun, Role: role.String(), Reason: ReasonExpired, Err: fmt.Errorf("expired at %s", c.Expires.UTC().Format(time.RFC3339))}
		}
		if res.Expires.IsZero() || c.Expires.Before(res.Expires) {
			res.Expires = c.Expires
		}
		next.Versions[role.String()] = c.Version
		return nil
	}
	for _, c := range []struct {
		role data.RoleName
		sc   data.SignedCommon
	}{
		{data.CanonicalRootRole, repo.Root.Signed.SignedCommon},
		{data.CanonicalTimestampRole, repo.Timestamp.Signed.SignedCommon},
		{data.CanonicalSnapshotRole, repo.Snapshot.Signed.SignedCommon},
	} {
		if err := check(c.role, c.sc); err != nil {
			return nil, nil, err
		}
	}
	for _, role := range loaded {
		t, ok := repo.Targets[role]
		if !ok {
			return nil, nil, &Error{GUN: gun, Role: role.String(), Reason: ReasonMissing}
		}
		if err := check(role, t.Signed.SignedCommon); err != nil {
			return nil, nil, err
		}
		paths := []string{""}
		if role != data.CanonicalTargetsRole {
			dr, err := repo.GetDelegationRole(role)
			if err != nil {
				return nil, nil, classify(g, role, err)
			}
			paths = dr.Paths
		}
		files := map[string]Target{}
		for name, meta := range t.Signed.Targets {
			// A delegation signs only inside its paths (restricted by its
			// parents); anything else is ignored, as docker does.
			if !hasPrefix(name, paths) {
				continue
			}
			sum, ok := meta.Hashes["sha256"]
			if !ok || len(sum) != 32 {
				continue
			}
			files[name] = Target{SHA256: sum, Length: meta.Length}
		}
		res.Targets[role.String()] = files
	}
	return next, res, nil
}

func hasPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if len(name) >= len(p) && name[:len(p)] == p {
			return true
		}
	}
	return false
}

func fetchErr(g data.GUN, role data.RoleName, err error) error {
	if errors.Is(err, ErrNotFound) {
		return &Error{GUN: g.String(), Role: role.String(), Reason: ReasonMissing, Err: err}
	}
	var tl *TooLargeError
	if errors.As(err, &tl) {
		return &Error{GUN: g.String(), Role: role.String(), Reason: ReasonTooLarge, Err: err}
	}
	return fmt.Errorf("fetch %s of %s: %w", role, g, err)
}

// TooLargeError is returned by Fetchers for metadata over the cap.
type TooLargeError struct {
	Name string
	Max  int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Name, e.Max)
}

// loadByHash fetches role by the checksum and length that the already
// loaded metadata records for it, and loads it.
func loadByHash(ctx context.Context, g data.GUN, b tuf.RepoBuilder, f Fetcher, role data.RoleName, minVersion int) error {
	ci := b.GetConsistentInfo(role)
	max := ci.Length()
	if max <= 0 || max > MaxMetadataBytes {
		max = MaxMetadataBytes
	}
	if !ci.ChecksumKnown() {
		return &Error{GUN: g.String(), Role: role.String(), Reason: ReasonMissing, Err: errors.New("not listed in the snapshot")}
	}
	raw, err := f.Fetch(ctx, ci.ConsistentName()+".json", max)
	if err != nil {
		return fetchErr(g, role, err)
	}
	if err := b.Load(role, raw, minVersion, true); err != nil {
		return classify(g, role, err)
	}
	return nil
}

// trustRoot returns a builder with the root loaded: the root already
// trusted, rotated forward version by version to the server's current
// one (TUF §5.3), or, with no trusted root, the server's root checked
// against the pin.
func trustRoot(ctx context.Context, g data.GUN, prev *State, f Fetcher, tp trustpinning.TrustPinConfig) (tuf.RepoBuilder, []byte, error) {
	current, err := f.Fetch(ctx, "root.json", MaxRootBytes)
	if err != nil {
		return nil, nil, fetchErr(g, data.CanonicalRootRole, err)
	}
	if prev == nil || len(prev.Root) == 0 {
		b := tuf.NewRepoBuilder(g, nil, tp)
		if err := b.Load(data.CanonicalRootRole, current, 1, true); err != nil {
			return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: err}
		}
		return b, current, nil
	}
	trustedV, err := rootVersion(prev.Root)
	if err != nil {
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonMalformed, Err: err}
	}
	currentV, err := rootVersion(current)
	if err != nil {
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonMalformed, Err: err}
	}
	switch {
	case currentV < trustedV:
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRollback, Err: fmt.Errorf("server has root version %d, version %d is trusted", currentV, trustedV)}
	case currentV == trustedV:
		if string(current) != string(prev.Root) {
			return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: fmt.Errorf("root version %d differs from the trusted one", currentV)}
		}
		b := tuf.NewRepoBuilder(g, nil, tp)
		if err := b.Load(data.CanonicalRootRole, prev.Root, 1, true); err != nil {
			return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: err}
		}
		return b, prev.Root, nil
	case currentV-trustedV > MaxRootRotations:
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: fmt.Errorf("root jumped from version %d to %d", trustedV, currentV)}
	}
	b := tuf.NewRepoBuilder(g, nil, tp)
	if err := b.LoadRootForUpdate(prev.Root, trustedV, false); err != nil {
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: err}
	}
	for v := trustedV + 1; v < currentV; v++ {
		raw, err := f.Fetch(ctx, fmt.Sprintf("%d.root.json", v), MaxRootBytes)
		if err != nil {
			return nil, nil, fetchErr(g, data.CanonicalRootRole, err)
		}
		if err := b.LoadRootForUpdate(raw, v, false); err != nil {
			return nil, nil, &Error{GUN: g.String(), Role: fmt.Sprintf("root v%d", v), Reason: ReasonSignature, Err: err}
		}
	}
	if err := b.LoadRootForUpdate(current, currentV, true); err != nil {
		return nil, nil, &Error{GUN: g.String(), Role: fmt.Sprintf("root v%d", currentV), Reason: ReasonSignature, Err: err}
	}
	return b, current, nil
}

func rootVersion(raw []byte) (int, error) {
	var s struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int    `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("parse root: %w", err)
	}
	if s.Signed.Type != "Root" || s.Signed.Version < 1 {
		return 0, fmt.Errorf("not a root (type %q, version %d)", s.Signed.Type, s.Signed.Version)
	}
	return s.Signed.Version, nil
}

// HexSHA256 formats a target's digest.
func (t Target) HexSHA256() string { return hex.EncodeToString(t.SHA256) }
