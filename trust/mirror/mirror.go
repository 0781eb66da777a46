// Package mirror copies repositories' trust data (Notary v1 / Docker
// Content Trust TUF metadata) from a Notary v1 server, a docker or
// notary client's trust dir, or an offline archive, into a signet trust
// server or an offline archive: every root version the source has, the
// current targets and delegations, snapshot and timestamp, byte for
// byte, so existing signatures stay valid and clients' pinned roots keep
// working. Nothing is written that trust/verify did not verify first.
//
// A run, top to bottom (Run, then mirrorOne for each repository):
//
//  1. the repositories: those named, or every one the source lists;
//  2. per repository, a few at a time: the root to verify against (the
//     destination's, so the source must extend it; else the root a trust
//     dir holds; else the source's 1.root.json, trusted on first use
//     unless pins are given), walked forward version by version to the
//     current root by the engine;
//  3. the engine's verified update (every check but expiry; what has
//     expired is reported), every delegation included; a failed
//     delegation fails the repository;
//  4. one write to the sink of what the engine verified, and of nothing
//     else; the sink keeps what it already holds;
//  5. a Result: copied, unchanged or failed (and why), the snapshot's
//     sha256, what expired, and the proxy archive rule when the
//     timestamp has expired or soon will.
package mirror

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust/verify"
)

// Sink is where trust data is copied to: a signet trust server
// (ServerSink) or an offline archive (ArchiveSink).
type Sink interface {
	// State returns what the destination holds for gun: its current root
	// (which the source must extend) and, where it knows them, version
	// floors. nil when it holds nothing.
	State(ctx context.Context, gun string) (*verify.State, error)
	// RootVersion returns the destination's copy of gun's root version
	// v, nil when it holds none.
	RootVersion(ctx context.Context, gun string, v int) ([]byte, error)
	// Write stores one repository's verified files, keeping those it
	// holds already and skipping those it holds newer.
	Write(ctx context.Context, gun string, files Files) (Written, error)
	// String names the destination in messages.
	String() string
}

// Files are one repository's verified metadata, as bytes.
type Files struct {
	// Roots are the root versions older than the current one, by version.
	Roots map[int][]byte
	// Roles are the current root, timestamp, snapshot, targets and
	// delegations, by role name.
	Roles map[string][]byte
	// Versions gives the version of each of Roles.
	Versions map[string]int
}

// File names one metadata file: a role and version.
type File struct {
	Role    string `json:"role"`
	Version int    `json:"version"`
}

func (f File) String() string { return fmt.Sprintf("%s v%d", f.Role, f.Version) }

// Written is what a sink did with Files.
type Written struct {
	// Stored are the files written; Unchanged those it held already.
	Stored, Unchanged []File
	// Skipped are the files it did not take (it holds newer versions).
	Skipped []File
}

// Outcome of one repository.
type Outcome int

// Outcomes.
const (
	Copied Outcome = iota
	Unchanged
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Copied:
		return "copied"
	case Unchanged:
		return "unchanged"
	}
	return "failed"
}

// Result is what became of one repository.
type Result struct {
	GUN     string
	Outcome Outcome
	// Err says why, when Failed.
	Err error
	Written
	// Files is how many files were given to the sink.
	Files int
	// RootVersion is the current root's version, and RootVersions the
	// root versions the destination was given (older ones and current).
	RootVersion  int
	RootVersions []int
	// Anchor says what the root was verified against.
	Anchor string
	// SnapshotSHA256 is the hex sha256 of the snapshot copied (what a
	// proxy archive rule pins).
	SnapshotSHA256 string
	// Expires gives each verified role's expiry; Expired the roles past it.
	Expires map[string]time.Time
	Expired []string
	// ArchiveRule is the proxy rule to paste when the timestamp or
	// snapshot has expired or expires within Options.ExpiryWarning.
	ArchiveRule string
	// Notes: freshness of the source's copy, what expired, what the
	// destination skipped.
	Notes []string
}

// Options configure a run.
type Options struct {
	// Source and Sink are required.
	Source Source
	Sink   Sink
	// Repositories to copy (docker.io/library/alpine, alpine,
	// registry:5000/team/app); empty copies every repository the source
	// lists (trust dirs and archives can list theirs).
	Repositories []string
	// Pin, when it has certificate IDs or a CA, must accept the current
	// root of every repository, on top of the chain checks.
	Pin verify.Pin
	// Parallel is how many repositories are copied at once (default 4).
	Parallel int
	// ExpiryWarning: a timestamp expiring within it gets an archive rule
	// (default 7 days).
	ExpiryWarning time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives debug logs; nil discards.
	Logger *slog.Logger
	// Progress, if set, is called after each repository, one call at a
	// time.
	Progress func(done, total int, r Result)
}

// Report is a run's outcome.
type Report struct {
	Results []Result
	// Requests is how many HTTP requests the source was sent (0 for
	// folders).
	Requests int64
	Elapsed  time.Duration
}

// Count returns how many results have outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == o {
			n++
		}
	}
	return n
}

// Run copies every repository and returns a result for each, in the
// order given (or listed). A repository that fails does not stop the
// others; Run's error is for a run that cannot start (bad options, a
// source that cannot list its repositories).
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	m, err := newRun(opts)
	if err != nil {
		return nil, err
	}
	guns, err := m.repositories(ctx, opts.Repositories)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(guns))
	var (
		mu      sync.Mutex
		done    int
		stopErr error // a refusal that holds for every repository
		wg      sync.WaitGroup
		slots   = make(chan struct{}, m.parallel)
	)
	for i, gun := range guns {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			mu.Lock()
			stop := stopErr
			mu.Unlock()
			var r Result
			switch {
			case stop != nil:
				r = Result{GUN: gun, Outcome: Failed, Err: fmt.Errorf("not attempted: %w", stop)}
			case ctx.Err() != nil:
				r = Result{GUN: gun, Outcome: Failed, Err: fmt.Errorf("not attempted: %w", ctx.Err())}
			default:
				r = m.mirrorOne(ctx, gun)
			}
			var f interface{ Fatal() bool }
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil && errors.As(r.Err, &f) && f.Fatal() && stopErr == nil {
				stopErr = r.Err
			}
			results[i] = r
			done++
			if opts.Progress != nil {
				opts.Progress(done, len(guns), r)
			}
		}()
	}
	wg.Wait()
	rep := &Report{Results: results, Elapsed: time.Since(start)}
	if c, ok := opts.Source.(interface{ Requests() int64 }); ok {
		rep.Requests = c.Requests()
	}
	return rep, nil
}

// run is one Run's settings.
type run struct {
	src      Source
	sink     Sink
	pin      verify.Pin
	pinned   bool
	parallel int
	warn     time.Duration
	now      func() time.Time
	log      *slog.Logger
}

func newRun(opts Options) (*run, error) {
	if opts.Source == nil || opts.Sink == nil {
		return nil, errors.New("mirror: a source and a destination are needed")
	}
	if opts.Pin.TOFU {
		return nil, errors.New("mirror: a pin with TOFU pins nothing: give certificate IDs or a CA, or no pin")
	}
	m := &run{src: opts.Source, sink: opts.Sink, pin: opts.Pin, pinned: len(opts.Pin.CertIDs) > 0 || opts.Pin.CAFile != "",
		parallel: opts.Parallel, warn: opts.ExpiryWarning, now: opts.Now, log: opts.Logger}
	if m.parallel < 0 {
		return nil, fmt.Errorf("--parallel %d: give a positive number", m.parallel)
	}
	if m.parallel == 0 {
		m.parallel = 4
	}
	if m.warn <= 0 {
		m.warn = 7 * 24 * time.Hour
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// repositories normalises the names given as docker does (GUNs), or
// lists the source's.
func (m *run) repositories(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return m.src.Repositories(ctx)
	}
	seen := map[string]bool{}
	var guns []string
	for _, n := range names {
		gun, err := GUN(n)
		if err != nil {
			return nil, err
		}
		if !seen[gun] {
			seen[gun] = true
			guns = append(guns, gun)
		}
	}
	return guns, nil
}

// GUN returns the repository name image stands for, normalised as
// docker does (alpine -> docker.io/library/alpine). A tag or digest is
// refused: a mirror copies a repository's whole trust data.
func GUN(image string) (string, error) {
	if strings.Contains(image, "@") {
		return "", fmt.Errorf("%q is a digest reference: name the repository (IMAGE without @sha256:...)", image)
	}
	repo, err := name.NewRepository(image)
	if err != nil {
		if t, terr := name.NewTag(image); terr == nil {
			return "", fmt.Errorf("%q names a tag: name the repository (%s); a mirror copies all of its trust data", image, registry.GUN(t.Context()))
		}
		return "", fmt.Errorf("repository %q: %w", image, err)
	}
	return registry.GUN(repo), nil
}

// mirrorOne copies one repository.
func (m *run) mirrorOne(ctx context.Context, gun string) Result {
	res := Result{GUN: gun}
	fail := func(err error) Result {
		res.Outcome, res.Err = Failed, err
		m.log.Debug("mirror failed", "gun", gun, "err", err)
		return res
	}
	repo, err := m.src.Open(ctx, gun)
	if err != nil {
		return fail(err)
	}
	res.Notes = append(res.Notes, repo.Notes...)
	dst, err := m.sink.State(ctx, gun)
	if err != nil {
		return fail(err)
	}
	rec := &recorder{f: repo.Fetcher, got: map[string][]byte{}}

	// The root to verify against, and the root versions seen on the way.
	a, err := m.anchor(ctx, gun, dst, repo, rec)
	if err != nil {
		return fail(err)
	}
	res.Anchor = a.desc
	now := m.now()
	update := func(a anchor) (*verify.Result, error) {
		_, vr, err := verify.Update(ctx, verify.Request{GUN: gun, Prev: a.state, Fetcher: rec, Pin: a.pin, Now: now,
			AllDelegations: true, KeepRaw: true, IgnoreExpiry: true})
		return vr, err
	}
	vr, err := update(a)
	if err != nil && a.destination {
		// The destination may have moved on past the source (taken over).
		var ahead bool
		if a, ahead, err = m.ahead(ctx, gun, a, err, rec); ahead {
			res.Anchor = a.desc
			vr, err = update(a)
		}
	}
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) && ve.Role == "root" && ve.Reason == verify.ReasonMissing {
			return fail(fmt.Errorf("%s has no trust data for %s", m.src, gun))
		}
		return fail(rootContext(err, a.desc))
	}
	if m.pinned && a.state != nil {
		// The chain verified; the current root must also be pinned.
		if _, _, err := verify.Update(ctx, verify.Request{GUN: gun, Fetcher: replay(rec.files()), Pin: m.pin, Now: now, IgnoreExpiry: true}); err != nil {
			return fail(fmt.Errorf("the current root is not pinned by --root-cert-id/--root-ca: %w", err))
		}
	}
	for _, name := range sortedRoles(vr.Roles) {
		if r := vr.Roles[name]; r.Status == verify.RoleFailed {
			return fail(r.Err)
		}
	}
	if a.note != "" {
		res.Notes = append(res.Notes, a.note)
	}
	files := m.collect(vr, a.history)
	res.RootVersion = files.Versions["root"]
	res.RootVersions = append(sortedVersions(files.Roots), res.RootVersion)
	res.Files = len(files.Roots) + len(files.Roles)
	res.SnapshotSHA256 = hex.EncodeToString(vr.SnapshotSHA256)
	m.expiry(&res, vr, now)

	w, err := m.sink.Write(ctx, gun, files)
	if err != nil {
		return fail(err)
	}
	res.Written = w
	res.Outcome = Unchanged
	if len(w.Stored) > 0 {
		res.Outcome = Copied
	}
	if len(w.Skipped) > 0 {
		res.Notes = append(res.Notes, "the destination kept its newer "+joinFiles(w.Skipped))
	}
	m.log.Debug("mirrored", "gun", gun, "outcome", res.Outcome, "stored", len(w.Stored), "unchanged", len(w.Unchanged),
		"skipped", len(w.Skipped), "anchor", a.desc, "snapshot_sha256", res.SnapshotSHA256)
	return res
}

// anchor is the root a repository is verified against.
type anchor struct {
	state       *verify.State  // Prev for the engine; nil: the current root, by pin
	pin         verify.Pin     // used when state is nil
	history     map[int][]byte // root versions fetched to anchor (1.root.json)
	destination bool           // state is the destination's
	desc        string
	note        string
}

// anchor picks the root: the destination's (continuity: the source must
// extend what the destination serves), else the one a trust dir was
// pinned to, else the source's first root, from which the engine walks
// every rotation (trust on first use of the source; pins, when given,
// are checked on the current root). A source without root history is
// trusted at its current root.
func (m *run) anchor(ctx context.Context, gun string, dst *verify.State, repo *Repo, f verify.Fetcher) (anchor, error) {
	if dst != nil && len(dst.Root) > 0 {
		return anchor{state: dst, pin: verify.Pin{TOFU: true}, destination: true, desc: "the destination's root" + versionOf(dst.Root)}, nil
	}
	if len(repo.Root) > 0 {
		return anchor{state: &verify.State{Root: repo.Root}, pin: verify.Pin{TOFU: true}, desc: "the trust dir's root" + versionOf(repo.Root)}, nil
	}
	first, err := f.Fetch(ctx, "1.root.json", verify.MaxRootBytes)
	switch {
	case err == nil:
		desc := "the source's root v1 (trust on first use)"
		if m.pinned {
			desc = "the source's root v1, current root pinned"
		}
		return anchor{state: &verify.State{Root: first}, pin: verify.Pin{TOFU: true}, history: map[int][]byte{1: first}, desc: desc}, nil
	case errors.Is(err, verify.ErrNotFound):
		note := "the source serves no root history (1.root.json): only the current root is copied"
		if m.pinned {
			return anchor{pin: m.pin, desc: "the current root, pinned", note: note}, nil
		}
		return anchor{pin: verify.Pin{TOFU: true}, desc: "the source's current root (trust on first use)", note: note}, nil
	}
	return anchor{}, fmt.Errorf("fetch the first root of %s: %w", gun, err)
}

// ahead handles a destination whose root is newer than the source's (it
// took the repository over, or a newer import ran): the source's current
// root must then be one the destination holds, byte for byte, and the
// source is verified from it; the sink skips what it holds newer. Any
// other failure is returned as it was.
func (m *run) ahead(ctx context.Context, gun string, a anchor, failure error, rec *recorder) (anchor, bool, error) {
	var ve *verify.Error
	if !errors.As(failure, &ve) || ve.Role != "root" || ve.Reason != verify.ReasonRollback {
		return a, false, failure
	}
	current := rec.files()["root.json"]
	v, err := verify.Version(current, "Root")
	if err != nil {
		return a, false, failure
	}
	held, err := m.sink.RootVersion(ctx, gun, v)
	if err != nil {
		return a, false, err
	}
	if !bytes.Equal(held, current) {
		return a, false, failure
	}
	return anchor{state: &verify.State{Root: current}, pin: verify.Pin{TOFU: true},
		desc: fmt.Sprintf("the destination's root v%d (the destination has moved on to%s)", v, versionOf(a.state.Root))}, true, nil
}

func versionOf(root []byte) string {
	if v, err := verify.Version(root, "Root"); err == nil {
		return fmt.Sprintf(" v%d", v)
	}
	return ""
}

// rootContext says what a root failure was checked against.
func rootContext(err error, desc string) error {
	var ve *verify.Error
	if errors.As(err, &ve) && strings.HasPrefix(ve.Role, "root") {
		return fmt.Errorf("the source's root does not extend %s: %w", desc, err)
	}
	return err
}

// collect gathers the files to copy: the engine's verified bytes and
// the root versions walked. Nothing else is copied: a delegation without
// keys (which no reader trusts) or a file no role delegates to is left
// out, as the import API requires.
func (m *run) collect(vr *verify.Result, history map[int][]byte) Files {
	files := Files{Roots: map[int][]byte{}, Roles: map[string][]byte{}, Versions: map[string]int{}}
	for role, b := range vr.Raw {
		files.Roles[role] = b
		files.Versions[role] = vr.Roles[role].Version
	}
	current := files.Versions["root"]
	for _, h := range []map[int][]byte{history, vr.RootVersions} {
		for v, b := range h {
			if v < current {
				files.Roots[v] = b
			}
		}
	}
	return files
}

// expiry fills in what has expired or soon will, and the archive rule.
func (m *run) expiry(res *Result, vr *verify.Result, now time.Time) {
	res.Expires = map[string]time.Time{}
	for name, r := range vr.Roles {
		if r.Status == verify.RoleVerified {
			res.Expires[name] = r.Expires
		}
	}
	res.Expired = vr.Expired
	for _, role := range vr.Expired {
		res.Notes = append(res.Notes, fmt.Sprintf("%s expired %s", role, until(now, res.Expires[role])))
	}
	ts, snap := res.Expires["timestamp"], res.Expires["snapshot"]
	soon := now.Add(m.warn)
	if ts.After(now) && ts.Before(soon) {
		res.Notes = append(res.Notes, "timestamp expires "+until(now, ts))
	}
	if ts.Before(soon) || snap.Before(soon) {
		res.ArchiveRule = "archive: {snapshot_sha256: " + res.SnapshotSHA256 + "}"
	}
}

func sortedRoles(roles map[string]*verify.Role) []string {
	var names []string
	for n := range roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func joinFiles(files []File) string {
	var s []string
	for _, f := range files {
		s = append(s, f.String())
	}
	return strings.Join(s, ", ")
}

// recorder keeps what a fetcher returned, for the pin check to read
// again without asking the source twice.
type recorder struct {
	f   verify.Fetcher
	mu  sync.Mutex
	got map[string][]byte
}

func (r *recorder) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	b, err := r.f.Fetch(ctx, name, max)
	if err == nil {
		r.mu.Lock()
		r.got[name] = b
		r.mu.Unlock()
	}
	return b, err
}

func (r *recorder) files() map[string][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]byte, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// replay serves recorded files.
type replay map[string][]byte

func (r replay) Fetch(_ context.Context, name string, max int64) ([]byte, error) {
	b, ok := r[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, verify.ErrNotFound)
	}
	if int64(len(b)) > max {
		return nil, &verify.TooLargeError{Name: name, Max: max}
	}
	return b, nil
}
