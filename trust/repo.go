// Package trust is signet's TUF view of one repository (GUN): initialise
// it, sign and revoke tags, list and look up what is signed, inspect keys
// and expiries. It wraps notary's client and keeps the Docker Content
// Trust conventions: targets are tags, hashed over the exact manifest
// bytes; publishers sign into every direct delegation they hold a key for
// (or "targets" when there are none); readers prefer targets/releases,
// then targets.
package trust

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/client/changelist"
	"github.com/theupdateframework/notary/cryptoservice"
	store "github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/keys"
	"github.com/signet-project/signet/trust/verify"
)

// ReleasesRole is the delegation Docker reads first.
const ReleasesRole = data.RoleName("targets/releases")

// Options configure access to one repository's trust data.
type Options struct {
	// TrustDir holds keys (private/) and cached metadata (tuf/), in the
	// layout of ~/.docker/trust and ~/.notary. Required.
	TrustDir string
	// Server is the trust server URL. Required.
	Server string
	// Transport reaches the trust server (see NewTransport); nil uses
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Passphrases unlocks and protects keys. Required for signing.
	Passphrases *keys.Retriever
	// TrustPinning pins roots; the zero value trusts a root on first use,
	// as docker does.
	TrustPinning trustpinning.TrustPinConfig
	// ExtraKeys are held in memory beside the trust dir's key files (a
	// pipeline's signer key from the environment).
	ExtraKeys []*keys.EnvKey
	// HardwareKeys are key stores on devices (a YubiKey's root key); they
	// come first, so a root key on a card is used before one on disk.
	HardwareKeys []trustmanager.KeyStore
	// Logger receives progress logs (retries after a conflict); nil
	// discards them.
	Logger *slog.Logger
}

// Repo is one repository's trust data.
type Repo struct {
	gun  data.GUN
	opts Options
	nr   client.Repository
	cs   *cryptoservice.CryptoService
	// keyErr is why the trust dir's key files cannot be used (a file
	// that cannot be read), or nil.
	keyErr error
	// answers remembers the trust server's last error answer.
	answers *answers
	// cacheDir holds the cached metadata (tuf/<gun>/metadata).
	cacheDir string
	// newClient makes a notary client with no state in memory (for a
	// retry after a conflict).
	newClient func() (client.Repository, error)
	retry     retryPolicy
	log       *slog.Logger
	// remote is the trust server's metadata API (keys, uploads).
	remote store.RemoteStore
}

// Open prepares access to gun's trust data; it does no network I/O.
// Changes are staged in memory, so a failed Sign or Revoke leaves nothing
// behind to be published by a later command.
func Open(gun string, opts Options) (*Repo, error) {
	if opts.TrustDir == "" {
		return nil, errors.New("open trust data: no trust dir")
	}
	if _, err := CheckServerURL(opts.Server); err != nil {
		return nil, err
	}
	if opts.Passphrases == nil {
		opts.Passphrases = &keys.Retriever{}
	}
	rt := opts.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	g := data.GUN(gun)
	dir := cacheDir(opts.TrustDir, gun)
	if err := checkCachedRoot(g, dir); err != nil {
		return nil, err
	}
	cache, err := store.NewFileStore(dir, "json")
	if err != nil {
		return nil, fmt.Errorf("open metadata cache for %q: %w", gun, err)
	}
	stores := append([]trustmanager.KeyStore{}, opts.HardwareKeys...)
	// A key file that cannot be read stops every use of keys (see
	// keyFiles); reading trust data goes on without the key files.
	keyErr := keys.CheckFiles(opts.TrustDir)
	if keyErr == nil {
		ks, err := trustmanager.NewKeyFileStore(opts.TrustDir, opts.Passphrases.PassRetriever())
		if err != nil {
			return nil, fmt.Errorf("open key store in %q: %w", opts.TrustDir, err)
		}
		stores = append(stores, ks)
	}
	if len(opts.ExtraKeys) > 0 {
		mem := memKeys{}
		for _, k := range opts.ExtraKeys {
			mem[k.Key.ID()] = k
		}
		stores = append([]trustmanager.KeyStore{mem}, stores...)
	}
	cs := cryptoservice.NewCryptoService(stores...)
	ans := &answers{server: opts.Server, next: rt}
	remote, err := store.NewHTTPStore(strings.TrimSuffix(opts.Server, "/")+"/v2/"+gun+"/_trust/tuf/", "", "json", "key", ans)
	if err != nil {
		return nil, fmt.Errorf("trust server %q: %w", opts.Server, err)
	}
	newClient := func() (client.Repository, error) {
		return client.NewRepository(g, opts.Server, remote, cache, opts.TrustPinning, cs, changelist.NewMemChangelist())
	}
	nr, err := newClient()
	if err != nil {
		return nil, fmt.Errorf("open trust data for %q: %w", gun, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Repo{gun: g, opts: opts, nr: nr, cs: cs, keyErr: keyErr, answers: ans, cacheDir: dir, newClient: newClient, retry: defaultRetry, log: logger, remote: remote}, nil
}

// GUN returns the repository's name.
func (r *Repo) GUN() string { return r.gun.String() }

// Target is a tag to sign: the sha256 and length of its manifest bytes.
type Target struct {
	Tag    string
	SHA256 []byte
	Size   int64
}

// SignedTarget is a tag as the trust data has it, and the role that
// signed it.
type SignedTarget struct {
	Tag    string
	SHA256 []byte
	Size   int64
	Role   string
}

// Digest returns "sha256:<hex>".
func (t SignedTarget) Digest() string { return "sha256:" + hex.EncodeToString(t.SHA256) }

// wrap turns notary errors into ones that say what to do.
func (r *Repo) wrap(doing string, err error) error {
	if err == nil {
		return nil
	}
	var (
		pw trustmanager.ErrPasswordInvalid
		ae trustmanager.ErrAttemptsExceeded
		is signed.ErrInsufficientSignatures
		nk signed.ErrNoKeys
	)
	// notary reports a key it could not unlock as a missing key; the
	// passphrase retriever knows why.
	if errors.As(err, &pw) || errors.As(err, &ae) || errors.As(err, &is) || errors.As(err, &nk) {
		if perr := r.opts.Passphrases.Err(); perr != nil {
			return fmt.Errorf("%s %s: %w", doing, r.gun, perr)
		}
	}
	if errors.As(err, &is) {
		return fmt.Errorf("%s %s: %w: it needs %d signatures and %s (with any inserted YubiKey) holds %d of the keys: run this where enough of them are, or import them (signet key import)",
			doing, r.gun, err, is.NeededKeys, r.opts.TrustDir, is.FoundKeys)
	}
	// notary keeps only the status of an error answer; the transport
	// kept the server's code and message.
	if fromServer(err) {
		if last := r.answers.take(); last != nil {
			last.Err = err
			return fmt.Errorf("%s %s: %w", doing, r.gun, last)
		}
	}
	var offline store.ErrOffline
	if errors.As(err, &offline) {
		return fmt.Errorf("%s %s: trust server %s is unreachable", doing, r.gun, r.opts.Server)
	}
	var unavailable store.ErrServerUnavailable
	if errors.As(err, &unavailable) {
		return fmt.Errorf("%s %s: trust server %s: %w", doing, r.gun, r.opts.Server, err)
	}
	return fmt.Errorf("%s %s: %w", doing, r.gun, err)
}

// exists reports whether the server has trust data for the repository.
func (r *Repo) exists() (bool, error) {
	_, err := r.nr.ListRoles()
	var notExist client.ErrRepositoryNotExist
	if errors.As(err, &notExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Init creates the repository's trust data: it uses the first root key in
// the trust dir (or makes one), makes a repository (targets) key, and
// lets the server hold the snapshot key, as docker does. It publishes
// nothing by itself: the next Sign or Publish does. created is false if
// the repository already exists.
func (r *Repo) Init(ctx context.Context) (created bool, err error) {
	if err := r.keyFiles(); err != nil {
		return false, err
	}
	ok, err := r.exists()
	if err != nil {
		return false, r.wrap("read trust data of", err)
	}
	if ok {
		return false, nil
	}
	rootID, err := r.rootKey()
	if err != nil {
		return false, r.wrap("initialise", err)
	}
	if err := r.nr.Initialize([]string{rootID}, data.CanonicalSnapshotRole); err != nil {
		return false, r.wrap("initialise", err)
	}
	return true, nil
}

// keyFiles returns why the trust dir's key files cannot be used: a key
// file that cannot be read (a *keys.FileError). notary's key store would
// skip it, and Init would then make a new root key beside a damaged one.
func (r *Repo) keyFiles() error {
	return r.keyErr
}

// rootKey returns the ID of a root key in the trust dir, creating one if
// there is none.
func (r *Repo) rootKey() (string, error) {
	if ids := r.cs.ListKeys(data.CanonicalRootRole); len(ids) > 0 {
		return ids[0], nil
	}
	k, err := r.cs.Create(data.CanonicalRootRole, "", data.ECDSAKey)
	if err != nil {
		return "", fmt.Errorf("create root key: %w", err)
	}
	return k.ID(), nil
}

// Publish uploads the staged changes (after Init, or Sign/Revoke stage).
func (r *Repo) Publish(ctx context.Context) error {
	return r.wrap("publish trust data of", r.nr.Publish())
}

// signer picks the roles to sign a tag into, as docker does: every direct
// child of targets whose key the trust dir holds and whose paths admit
// the tag; "targets" when the repository has no delegations.
type signer struct {
	gun         data.GUN
	trustDir    string
	delegations []data.Role
	held        map[string]bool
}

// signer reads the delegations once (one trust server round trip).
func (r *Repo) signer() (*signer, error) {
	delegations, err := r.nr.GetDelegationRoles()
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for id := range r.cs.ListAllKeys() {
		held[path.Base(id)] = true
	}
	return &signer{gun: r.gun, trustDir: r.opts.TrustDir, delegations: delegations, held: held}, nil
}

func (s *signer) roles(tag string) ([]data.RoleName, error) {
	if len(s.delegations) == 0 {
		return []data.RoleName{data.CanonicalTargetsRole}, nil
	}
	var roles []data.RoleName
	for _, d := range s.delegations {
		if path.Dir(d.Name.String()) != data.CanonicalTargetsRole.String() || !d.CheckPaths(tag) {
			continue
		}
		for _, id := range d.KeyIDs {
			if s.held[id] {
				roles = append(roles, d.Name)
				break
			}
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("no signer key for %s in any delegation of %s in %s: import one (signet key import) or ask an administrator to add yours", tag, s.gun, s.trustDir)
	}
	return roles, nil
}

// SignResult says what Sign did.
type SignResult struct {
	// Initialized is true if Sign created the repository's trust data.
	Initialized bool
	// Roles are the roles the targets were signed into.
	Roles []string
	// Notes say what else was done, e.g. a delegation started again.
	Notes []string
}

// Sign signs targets into the roles docker would and publishes once. A
// repository without trust data is initialised first. If another
// publisher changes the repository meanwhile, Sign fetches the new trust
// data and signs again on top of it (a few times at most).
func (r *Repo) Sign(ctx context.Context, targets []Target) (SignResult, error) {
	var res SignResult
	if len(targets) == 0 {
		return res, errors.New("sign: no tags given")
	}
	for _, t := range targets {
		if err := checkTarget(t); err != nil {
			return res, err
		}
	}
	err := r.publishRetrying(ctx, "sign", func() (bool, error) {
		res = SignResult{}
		created, err := r.Init(ctx)
		if err != nil {
			return false, err
		}
		res.Initialized = created
		if !created {
			if res.Notes, err = r.restartStale(ctx, targets); err != nil {
				return false, err
			}
		}
		return created, r.stageAndPublish(ctx, targets, &res)
	})
	return res, err
}

// stageAndPublish stages targets into the roles docker would and
// publishes.
func (r *Repo) stageAndPublish(ctx context.Context, targets []Target, res *SignResult) error {
	s := &signer{}
	if !res.Initialized {
		var err error
		if s, err = r.signer(); err != nil {
			return r.wrap("read delegations of", err)
		}
	}
	for _, t := range targets {
		rs, err := s.roles(t.Tag)
		if err != nil {
			return r.wrap("sign", err)
		}
		target := &client.Target{Name: t.Tag, Hashes: data.Hashes{"sha256": t.SHA256}, Length: t.Size}
		if err := r.nr.AddTarget(target, rs...); err != nil {
			return r.wrap("stage "+t.Tag+" of", err)
		}
		for _, role := range rs {
			if !contains(res.Roles, role.String()) {
				res.Roles = append(res.Roles, role.String())
			}
		}
	}
	return r.Publish(ctx)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func checkTarget(t Target) error {
	if t.Tag == "" {
		return errors.New("sign: empty tag")
	}
	if len(t.SHA256) != 32 {
		return fmt.Errorf("sign %s: the digest must be a sha256 (32 bytes), got %d bytes", t.Tag, len(t.SHA256))
	}
	if t.Size <= 0 {
		return fmt.Errorf("sign %s: the manifest size must be positive, got %d", t.Tag, t.Size)
	}
	return nil
}

// Revoke removes the signatures of tags from every role the trust dir can
// sign, and publishes once. With no tags it revokes every signed tag. If
// another publisher changes the repository meanwhile, Revoke fetches the
// new trust data and revokes again on top of it (a few times at most).
func (r *Repo) Revoke(ctx context.Context, tags []string) ([]string, error) {
	if err := r.keyFiles(); err != nil {
		return nil, err
	}
	var revoked []string
	err := r.publishRetrying(ctx, "revoke", func() (bool, error) {
		var err error
		revoked, err = r.revokeOnce(ctx, tags)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

func (r *Repo) revokeOnce(ctx context.Context, tags []string) ([]string, error) {
	ok, err := r.exists()
	if err != nil {
		return nil, r.wrap("read trust data of", err)
	}
	if !ok {
		return nil, &DenyError{Image: r.gun.String(), Reason: ReasonNoTrustData}
	}
	if len(tags) == 0 {
		all, err := r.nr.ListTargets()
		if err != nil {
			return nil, r.wrap("list signed tags of", err)
		}
		seen := map[string]bool{}
		for _, t := range all {
			if !seen[t.Name] {
				seen[t.Name] = true
				tags = append(tags, t.Name)
			}
		}
		if len(tags) == 0 {
			return nil, fmt.Errorf("revoke %s: no signed tags", r.gun)
		}
	}
	s, err := r.signer()
	if err != nil {
		return nil, r.wrap("read delegations of", err)
	}
	for _, tag := range tags {
		roles, err := s.roles(tag)
		if err != nil {
			return nil, r.wrap("revoke", err)
		}
		if err := r.nr.RemoveTarget(tag, roles...); err != nil {
			return nil, r.wrap("stage revocation of "+tag+" in", err)
		}
	}
	if err := r.Publish(ctx); err != nil {
		return nil, err
	}
	return tags, nil
}

// Preflight checks, before anything is pushed, that tag could be signed:
// the trust server answers and the keys needed can be unlocked (the root
// and repository keys for a new repository, the signer keys otherwise).
func (r *Repo) Preflight(ctx context.Context, tag string) error {
	if err := r.keyFiles(); err != nil {
		return err
	}
	ok, err := r.exists()
	if err != nil {
		return r.wrap("read trust data of", err)
	}
	retrieve := r.opts.Passphrases.PassRetriever()
	if !ok {
		if ids := r.cs.ListKeys(data.CanonicalRootRole); len(ids) > 0 {
			if _, _, err := r.cs.GetPrivateKey(ids[0]); err != nil {
				return r.wrap("unlock the root key for", err)
			}
		} else if _, _, err := retrieve("", data.CanonicalRootRole.String(), true, 0); err != nil {
			return fmt.Errorf("initialise %s: %w", r.gun, err)
		}
		if _, _, err := retrieve("", data.CanonicalTargetsRole.String(), true, 0); err != nil {
			return fmt.Errorf("initialise %s: %w", r.gun, err)
		}
		return nil
	}
	s, err := r.signer()
	if err != nil {
		return r.wrap("read delegations of", err)
	}
	roles, err := s.roles(tag)
	if err != nil {
		return r.wrap("sign", err)
	}
	for _, role := range roles {
		if err := r.unlockFor(role); err != nil {
			return err
		}
	}
	return nil
}

// unlockFor unlocks one key the trust dir holds for role.
func (r *Repo) unlockFor(role data.RoleName) error {
	var ids []string
	if role == data.CanonicalTargetsRole {
		roles, err := r.nr.ListRoles()
		if err != nil {
			return r.wrap("read roles of", err)
		}
		for _, rr := range roles {
			if rr.Name == role {
				ids = rr.KeyIDs
			}
		}
	} else {
		delegations, err := r.nr.GetDelegationRoles()
		if err != nil {
			return r.wrap("read delegations of", err)
		}
		for _, d := range delegations {
			if d.Name == role {
				ids = d.KeyIDs
			}
		}
	}
	var lastErr error
	for _, id := range ids {
		_, _, err := r.cs.GetPrivateKey(id)
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no key for %s in %s", role, r.opts.TrustDir)
	}
	return r.wrap("unlock the "+role.String()+" key of", lastErr)
}

// restartStale starts again each delegation the tags would be signed
// into whose metadata on the server is signed only by keys it no longer
// lists (a signer removed by a tool that did not sign it again: docker
// trust signer remove, the notary CLI), when this trust dir holds enough
// of the keys it does list: empty, above the old version, signed by
// them, in a publish of its own. notary's client would otherwise rebuild
// it from version 1, which the server refuses as a version conflict.
// Nothing of the old file is kept: it was not valid under the role's
// keys, and readers already deny what it lists. The returned notes say
// what was restarted. A read that fails is left to the signing that
// follows, which reads and verifies again.
func (r *Repo) restartStale(ctx context.Context, targets []Target) ([]string, error) {
	res, err := Read(ctx, r.gun.String(), ReadOptions{TrustDir: r.opts.TrustDir, Server: r.opts.Server,
		Transport: r.opts.Transport, AllDelegations: true, IgnoreExpiry: true})
	if err != nil {
		return nil, nil
	}
	var stale []data.RoleName
	for _, d := range Delegations(res) {
		ro := res.Roles[d.Role]
		if d.Status != verify.RoleFailed || ro == nil || ro.Err == nil || ro.Err.Reason != verify.ReasonSignature ||
			path.Dir(d.Role) != data.CanonicalTargetsRole.String() || !signsAny(d.Paths, targets) {
			continue
		}
		stale = append(stale, data.RoleName(d.Role))
	}
	if len(stale) == 0 {
		return nil, nil
	}
	var out EditResult
	err = r.edit(ctx, "start again", &out, func(e *editor) error {
		for _, role := range stale {
			if dr, ok := e.delegation(role); ok && e.holds(dr.BaseRole) >= dr.Threshold {
				e.touched[role] = true
			}
		}
		return nil
	}, func(role data.RoleName) string { return "sign where enough of " + role.String() + "'s keys are" })
	return out.Notes, err
}

// signsAny reports whether a delegation with paths may sign one of the
// targets ("" is every tag).
func signsAny(paths []string, targets []Target) bool {
	for _, t := range targets {
		for _, p := range paths {
			if strings.HasPrefix(t.Tag, p) {
				return true
			}
		}
	}
	return false
}
