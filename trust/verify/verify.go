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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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
	// MaxUpdateBytes bounds all metadata fetched in one update, whatever
	// lengths a (server-signed) snapshot declares.
	MaxUpdateBytes = 64 << 20
	// MaxDelegations bounds the delegations loaded in one update.
	MaxDelegations = 1000
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

// Result is the verified trust data of one repository.
type Result struct {
	// Roles has every role the update considered, by name: the four
	// top-level roles (always verified) and the delegations, each with
	// its status. Lookups go through Lookup and LookupAll, which apply
	// the rules for disabled and failed roles.
	Roles map[string]*Role
	// Targets maps role -> target name -> target for the verified roles
	// that sign targets (targets and verified delegations).
	Targets map[string]map[string]Target
	// Expires is the earliest expiry of the verified metadata; past it,
	// the result must not be used.
	Expires time.Time
	// TimestampVersion is the verified timestamp's version.
	TimestampVersion int
	// Raw has the verified bytes of each verified role, with
	// Request.KeepRaw.
	Raw map[string][]byte
	// RootVersions has the bytes of the root versions walked past the
	// trusted one (not the current one, which is Raw["root"]), with
	// Request.KeepRaw.
	RootVersions map[int][]byte
	// SnapshotSHA256 is the sha256 of the verified snapshot (what an
	// archive rule pins).
	SnapshotSHA256 []byte
	// Expired lists the roles past expiry, with Request.IgnoreExpiry or
	// the waiver of ArchiveSnapshot.
	Expired []string
	// Archived is true when ArchiveSnapshot matched and waived expiry.
	Archived bool
}

// RoleStatus says what became of a role in an update.
type RoleStatus int

// Role statuses.
const (
	// RoleVerified: loaded, signed by a threshold of its keys, unexpired.
	RoleVerified RoleStatus = iota
	// RoleEmpty: delegated, but not in the snapshot: it has signed
	// nothing yet (notary publishes a delegation's file only once a
	// target is added to it). Lookups pass over it.
	RoleEmpty
	// RoleDisabled: delegated with no keys, as `docker trust signer
	// remove` leaves targets/releases. Nothing it holds is trusted, and
	// lookups pass over it, as docker and notary do.
	RoleDisabled
	// RoleFailed: it did not verify (signature, threshold, hash,
	// rollback, expiry, size, or a parent that failed). A lookup that
	// reaches it is denied (TUF §5.6.7).
	RoleFailed
)

func (s RoleStatus) String() string {
	switch s {
	case RoleVerified:
		return "verified"
	case RoleEmpty:
		return "empty"
	case RoleDisabled:
		return "disabled (no keys)"
	case RoleFailed:
		return "failed"
	}
	return "unknown"
}

// Role is one role of a verified repository.
type Role struct {
	Name      string
	Status    RoleStatus
	KeyIDs    []string
	Threshold int
	// Paths the role may sign (restricted by its parents); targets: "".
	Paths []string
	// Version and Expires of its metadata, when verified.
	Version int
	Expires time.Time
	// Targets it signs, when verified (sha256 only, inside Paths).
	Targets map[string]Target
	// Err says why, for RoleFailed.
	Err *Error
}

func (r *Role) fail(err *Error) {
	r.Status, r.Err, r.Targets = RoleFailed, err, nil
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
	ReasonArchive   = "not the archived trust data"
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

// Request says which repository to verify and how.
type Request struct {
	// GUN is the repository (docker.io/library/alpine).
	GUN string
	// Prev is what was trusted before; nil trusts the root through Pin.
	Prev *State
	// Fetcher reads the metadata files.
	Fetcher Fetcher
	// Pin says how a root is trusted when Prev has none.
	Pin Pin
	// Now is the time expiries are checked against.
	Now time.Time
	// Roles are the delegations to load besides targets (for example
	// DockerPath's targets/releases, or a policy's named signers); their
	// parents are loaded first.
	Roles []string
	// AllDelegations loads every delegation the trust data has (for
	// inspection), up to MaxDelegations.
	AllDelegations bool
	// KeepRaw keeps the verified bytes of every role in Result.Raw (and
	// of the root versions walked in Result.RootVersions), so a client
	// can cache them or a mirror copy them.
	KeepRaw bool
	// IgnoreExpiry checks everything but expiry (signatures, thresholds,
	// hashes, versions) and lists what has expired in Result.Expired: a
	// mirror copies and reports old data that no client would accept.
	IgnoreExpiry bool
	// ArchiveSnapshot pins an archived repository (proxy archive mode):
	// the snapshot must hash to this sha256, and then, for that snapshot
	// only, the expiry of timestamp and snapshot is waived. Everything
	// else is checked as usual.
	ArchiveSnapshot []byte
}

// Update verifies the current trust data of req.GUN: root (walking
// rotations from the trusted one, TUF §5.3), timestamp (§5.4), snapshot
// (§5.5) and targets (§5.6), each by the hash and length its parent
// gives, with version floors and expiry. A failure of any of these is an
// *Error and nothing is returned. Delegations are then loaded one by one
// and each gets a status in Result.Roles (verified, empty, disabled or
// failed): a failed delegation does not fail the update, but a lookup
// that reaches it is denied (see Result.Lookup).
func Update(ctx context.Context, req Request) (*State, *Result, error) {
	gun := req.GUN
	g := data.GUN(gun)
	tp, err := req.Pin.config(g)
	prev := req.Prev
	if prev != nil && len(prev.Root) > 0 {
		// A root already trusted is not re-pinned: rotations were
		// verified against it.
		tp, err = trustpinning.TrustPinConfig{}, nil
	}
	if err != nil {
		return nil, nil, &Error{GUN: gun, Role: "root", Reason: ReasonRoot, Err: err}
	}
	f := &budget{f: req.Fetcher, left: MaxUpdateBytes}
	walked := map[int][]byte{}
	b, root, err := trustRoot(ctx, g, prev, f, tp, walked)
	if err != nil {
		return nil, nil, err
	}
	next := &State{Root: root, Versions: map[string]int{}}
	rootChanged := prev != nil && len(prev.Root) > 0 && string(prev.Root) != string(root)

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
	raw := map[string][]byte{"root": root}

	// Timestamp (TUF §5.4).
	ts, err := f.Fetch(ctx, data.CanonicalTimestampRole.String()+".json", MaxTimestampBytes)
	if err != nil {
		return nil, nil, fetchErr(g, data.CanonicalTimestampRole, err)
	}
	if err := b.Load(data.CanonicalTimestampRole, ts, floor(data.CanonicalTimestampRole), true); err != nil {
		return nil, nil, classify(g, data.CanonicalTimestampRole, err)
	}
	raw["timestamp"] = ts
	// Snapshot by the hash the timestamp gives (TUF §5.5), then targets
	// by the hash the snapshot gives (§5.6).
	for _, role := range []data.RoleName{data.CanonicalSnapshotRole, data.CanonicalTargetsRole} {
		body, err := loadByHash(ctx, g, b, f, role, floor(role))
		if err != nil {
			return nil, nil, err
		}
		raw[role.String()] = body
	}
	targets, err := parseTargets(raw["targets"], data.CanonicalTargetsRole)
	if err != nil {
		return nil, nil, classify(g, data.CanonicalTargetsRole, err)
	}
	roles, err := loadDelegations(ctx, g, b, f, req, targets, floor, raw)
	if err != nil {
		return nil, nil, err
	}
	repo, _, err := b.Finish()
	if err != nil {
		return nil, nil, classify(g, data.CanonicalTargetsRole, err)
	}
	snapSum := sha256.Sum256(raw["snapshot"])
	res := &Result{
		Roles:            roles,
		Targets:          map[string]map[string]Target{},
		TimestampVersion: repo.Timestamp.Signed.Version,
		SnapshotSHA256:   snapSum[:],
	}
	if req.ArchiveSnapshot != nil {
		if !hmac.Equal(req.ArchiveSnapshot, snapSum[:]) {
			return nil, nil, &Error{GUN: gun, Role: "snapshot", Reason: ReasonArchive,
				Err: fmt.Errorf("the server's snapshot is sha256:%x, the archive rule pins sha256:%x", snapSum, req.ArchiveSnapshot)}
		}
		res.Archived = true
	}
	// expired reports whether a role's expiry fails the read: past it,
	// unless expiry is ignored (a mirror) or waived (an archive pins this
	// snapshot: timestamp and snapshot only).
	expired := func(role data.RoleName, exp time.Time) bool {
		if req.Now.Before(exp) {
			return false
		}
		res.Expired = append(res.Expired, role.String())
		if req.IgnoreExpiry {
			return false
		}
		return !(res.Archived && (role == data.CanonicalTimestampRole || role == data.CanonicalSnapshotRole))
	}
	// Expiry of the top-level roles fails the whole update (TUF §5.4.4,
	// §5.5.6, §5.6.4); the root's too (§5.3.10).
	for _, c := range []struct {
		role data.RoleName
		base data.BaseRole
		sc   data.SignedCommon
	}{
		{data.CanonicalRootRole, mustBase(repo, data.CanonicalRootRole), repo.Root.Signed.SignedCommon},
		{data.CanonicalTimestampRole, mustBase(repo, data.CanonicalTimestampRole), repo.Timestamp.Signed.SignedCommon},
		{data.CanonicalSnapshotRole, mustBase(repo, data.CanonicalSnapshotRole), repo.Snapshot.Signed.SignedCommon},
		{data.CanonicalTargetsRole, mustBase(repo, data.CanonicalTargetsRole), targets.Signed.SignedCommon},
	} {
		if expired(c.role, c.sc.Expires) {
			return nil, nil, &Error{GUN: gun, Role: c.role.String(), Reason: ReasonExpired, Err: fmt.Errorf("expired at %s", c.sc.Expires.UTC().Format(time.RFC3339))}
		}
		// Key IDs as root.json lists them (certificate IDs for root).
		keyIDs, threshold := c.base.ListKeyIDs(), c.base.Threshold
		if rr, ok := repo.Root.Signed.Roles[c.role]; ok {
			keyIDs, threshold = append([]string(nil), rr.KeyIDs...), rr.Threshold
		}
		roles[c.role.String()] = &Role{Name: c.role.String(), Status: RoleVerified, KeyIDs: keyIDs,
			Threshold: threshold, Version: c.sc.Version, Expires: c.sc.Expires}
	}
	roles["targets"].Paths = []string{""}
	roles["targets"].Targets = targetFiles(targets, []string{""})
	// Delegations expire on their own: an expired one fails, the rest
	// stands (TUF §5.6.7 ends a lookup at it).
	for _, r := range roles {
		if r.Status == RoleVerified && data.IsDelegation(data.RoleName(r.Name)) && expired(data.RoleName(r.Name), r.Expires) {
			r.fail(&Error{GUN: gun, Role: r.Name, Reason: ReasonExpired, Err: fmt.Errorf("expired at %s", r.Expires.UTC().Format(time.RFC3339))})
		}
	}
	for name, r := range roles {
		if r.Status != RoleVerified {
			delete(raw, name)
			continue
		}
		next.Versions[name] = r.Version
		if (res.Expires.IsZero() || r.Expires.Before(res.Expires)) && !(res.Archived && (name == "timestamp" || name == "snapshot")) {
			res.Expires = r.Expires
		}
		if r.Targets != nil {
			res.Targets[name] = r.Targets
		}
	}
	if req.KeepRaw {
		res.Raw = raw
		res.RootVersions = walked
	}
	sort.Strings(res.Expired)
	return next, res, nil
}

func mustBase(repo *tuf.Repo, role data.RoleName) data.BaseRole {
	b, err := repo.GetBaseRole(role)
	if err != nil {
		return data.BaseRole{Name: role}
	}
	return b
}

// targetFiles returns the sha256 targets of t that lie inside paths. A
// delegation signs only inside its paths (restricted by its parents);
// anything else is ignored, as docker does.
func targetFiles(t *data.SignedTargets, paths []string) map[string]Target {
	files := map[string]Target{}
	for name, meta := range t.Signed.Targets {
		if !hasPrefix(name, paths) {
			continue
		}
		sum, ok := meta.Hashes["sha256"]
		if !ok || len(sum) != 32 || meta.Length <= 0 {
			continue
		}
		files[name] = Target{SHA256: sum, Length: meta.Length}
	}
	return files
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
	var me *MalformedError
	if errors.As(err, &me) {
		return &Error{GUN: g.String(), Role: role.String(), Reason: ReasonMalformed, Err: err}
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
	if e.Max <= 0 {
		return fmt.Sprintf("%s: one update may read at most %d bytes of metadata in all", e.Name, MaxUpdateBytes)
	}
	return fmt.Sprintf("%s is larger than %d bytes", e.Name, e.Max)
}

// loadByHash fetches role by the checksum and length that the already
// loaded metadata records for it, and loads it.
func loadByHash(ctx context.Context, g data.GUN, b tuf.RepoBuilder, f Fetcher, role data.RoleName, minVersion int) ([]byte, error) {
	ci := b.GetConsistentInfo(role)
	max := ci.Length()
	if max <= 0 || max > MaxMetadataBytes {
		max = MaxMetadataBytes
	}
	if !ci.ChecksumKnown() {
		return nil, &Error{GUN: g.String(), Role: role.String(), Reason: ReasonMissing, Err: errors.New("not listed in the snapshot")}
	}
	raw, err := f.Fetch(ctx, ci.ConsistentName()+".json", max)
	if err != nil {
		return nil, fetchErr(g, role, err)
	}
	if err := b.Load(role, raw, minVersion, true); err != nil {
		return nil, classify(g, role, err)
	}
	return raw, nil
}

// trustRoot returns a builder with the root loaded: the root already
// trusted, rotated forward version by version to the server's current
// one (TUF §5.3), or, with no trusted root, the server's root checked
// against the pin.
func trustRoot(ctx context.Context, g data.GUN, prev *State, f Fetcher, tp trustpinning.TrustPinConfig, walked map[int][]byte) (tuf.RepoBuilder, []byte, error) {
	current, err := f.Fetch(ctx, "root.json", MaxRootBytes)
	if err != nil {
		return nil, nil, fetchErr(g, data.CanonicalRootRole, err)
	}
	if prev == nil || len(prev.Root) == 0 {
		b := tuf.NewRepoBuilder(g, nil, tp)
		err := b.Load(data.CanonicalRootRole, current, 1, true)
		if err == nil {
			return b, current, nil
		}
		// The pin may name an older root: the repository rotated its
		// root since it was pinned. Find the oldest root version the pin
		// accepts and walk forward from it (each version signed by the
		// one before), as a client that had pinned it would have.
		if pinned, ok := pinnedRoot(ctx, f, g, tp, current); ok {
			return trustRoot(ctx, g, &State{Root: pinned}, f, trustpinning.TrustPinConfig{}, walked)
		}
		return nil, nil, &Error{GUN: g.String(), Role: "root", Reason: ReasonRoot, Err: err}
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
		walked[v] = raw
		if err := b.LoadRootForUpdate(raw, v, false); err != nil {
			return nil, nil, &Error{GUN: g.String(), Role: fmt.Sprintf("root v%d", v), Reason: ReasonSignature, Err: err}
		}
	}
	if err := b.LoadRootForUpdate(current, currentV, true); err != nil {
		return nil, nil, &Error{GUN: g.String(), Role: fmt.Sprintf("root v%d", currentV), Reason: ReasonSignature, Err: err}
	}
	return b, current, nil
}

// pinnedRoot returns the oldest root version, below the current one, that
// the pin (certificate IDs or a CA) accepts; ok is false when the pin is
// trust on first use or accepts none.
func pinnedRoot(ctx context.Context, f Fetcher, g data.GUN, tp trustpinning.TrustPinConfig, current []byte) ([]byte, bool) {
	if len(tp.Certs) == 0 && len(tp.CA) == 0 {
		return nil, false
	}
	currentV, err := rootVersion(current)
	if err != nil {
		return nil, false
	}
	for v := 1; v < currentV && v <= MaxRootRotations; v++ {
		raw, err := f.Fetch(ctx, fmt.Sprintf("%d.root.json", v), MaxRootBytes)
		if err != nil {
			continue
		}
		if tuf.NewRepoBuilder(g, nil, tp).Load(data.CanonicalRootRole, raw, 1, true) == nil {
			return raw, true
		}
	}
	return nil, false
}

func rootVersion(raw []byte) (int, error) {
	v, err := Version(raw, "Root")
	if err != nil {
		return 0, fmt.Errorf("parse root: %w", err)
	}
	return v, nil
}

// Version reads signed.version of metadata of type typ ("Root",
// "Timestamp", "Snapshot", "Targets") without verifying it.
func Version(raw []byte, typ string) (int, error) {
	var s struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int    `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("not JSON: %w", err)
	}
	if s.Signed.Type != typ || s.Signed.Version < 1 {
		return 0, fmt.Errorf("want %s metadata, got type %q version %d", typ, s.Signed.Type, s.Signed.Version)
	}
	return s.Signed.Version, nil
}

// HexSHA256 formats a target's digest.
func (t Target) HexSHA256() string { return hex.EncodeToString(t.SHA256) }
