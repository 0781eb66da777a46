package trust

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/atomicfile"
	"github.com/signet-project/signet/trust/verify"
)

// ReadOptions configure a verified read of a repository's trust data.
type ReadOptions struct {
	// TrustDir holds the metadata cache (tuf/<gun>/metadata), shared
	// with docker and notary. Required.
	TrustDir string
	// Server is the trust server URL. Required.
	Server string
	// Transport reaches the trust server (see NewTransport); nil uses
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Rule is what the reader will ask; its delegations are loaded.
	Rule verify.Rule
	// AllDelegations loads every delegation (for inspection).
	AllDelegations bool
	// IgnoreExpiry checks everything but expiry (a take-over of data
	// whose old server stopped renewing its timestamp).
	IgnoreExpiry bool
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Read verifies gun's current trust data with the engine that decides
// trust everywhere in signet (trust/verify). The root is the one the
// trust dir has cached for gun, as docker and notary pinned it, or, for
// a repository never seen, the server's (trust on first use, as docker
// does). Version floors come from the cached metadata, so a server
// cannot roll a reader back; what verifies is written back to the cache.
//
// A repository without trust data is a *DenyError (ReasonNoTrustData);
// trust data that fails verification is a *DenyError (ReasonTrustData)
// wrapping the *verify.Error; other errors are I/O.
func Read(ctx context.Context, gun string, opts ReadOptions) (*verify.Result, error) {
	if opts.TrustDir == "" {
		return nil, errors.New("read trust data: no trust dir")
	}
	if _, err := CheckServerURL(opts.Server); err != nil {
		return nil, err
	}
	dir := cacheDir(opts.TrustDir, gun)
	if err := checkCachedRoot(data.GUN(gun), dir); err != nil {
		return nil, err
	}
	prev, err := LoadState(dir)
	if err != nil {
		return nil, err
	}
	pin := verify.Pin{}
	if prev == nil {
		pin.TOFU = true
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rt := opts.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	fetcher := verify.HTTPFetcher{Server: opts.Server, GUN: gun, Client: &http.Client{Transport: rt, Timeout: 2 * time.Minute}}
	_, res, err := verify.Update(ctx, verify.Request{GUN: gun, Prev: prev, Fetcher: fetcher, Pin: pin, Now: now(),
		Roles: opts.Rule.Roles(), AllDelegations: opts.AllDelegations, KeepRaw: true, IgnoreExpiry: opts.IgnoreExpiry})
	if err != nil {
		var ve *verify.Error
		if errors.As(err, &ve) {
			if ve.Role == "root" && ve.Reason == verify.ReasonMissing {
				return nil, &DenyError{Image: gun, Reason: ReasonNoTrustData}
			}
			return nil, &DenyError{Image: gun, Reason: ReasonTrustData, Err: ve}
		}
		return nil, fmt.Errorf("read trust data of %s from %s: %w", gun, opts.Server, err)
	}
	if err := saveVerified(dir, res.Raw); err != nil {
		return nil, err
	}
	return res, nil
}

// LoadState reads what a trust dir's metadata cache (tuf/<gun>/metadata)
// trusts for one repository: the cached root, and the version of every
// cached role as a floor. It returns nil, nil when no root is cached. A
// file it cannot read or parse is an error naming the file.
func LoadState(dir string) (*verify.State, error) {
	rootPath := filepath.Join(dir, "root.json")
	root, err := readCapped(rootPath, verify.MaxRootBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cached root %s: %w", rootPath, err)
	}
	if _, err := verify.Version(root, "Root"); err != nil {
		return nil, fmt.Errorf("cached root %s is corrupt (%v): it pins this repository's root keys, so remove it only if you know why it changed; the next read then trusts the server's root on first use", rootPath, err)
	}
	st := &verify.State{Root: root, Versions: map[string]int{}}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") || p == rootPath {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		role := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		typ := "Targets"
		switch role {
		case "timestamp":
			typ = "Timestamp"
		case "snapshot":
			typ = "Snapshot"
		default:
			if role != "targets" && !strings.HasPrefix(role, "targets/") {
				return nil
			}
		}
		raw, err := readCapped(p, verify.MaxMetadataBytes)
		if err != nil {
			return fmt.Errorf("read cached metadata %s: %w", p, err)
		}
		v, err := verify.Version(raw, typ)
		if err != nil {
			return fmt.Errorf("cached metadata %s is corrupt (%v): remove it; the next read fetches it again", p, err)
		}
		st.Versions[role] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// saveVerified writes verified metadata into the cache, each changed
// file replaced atomically (a crash leaves the old or the new file).
func saveVerified(dir string, raw map[string][]byte) error {
	for role, b := range raw {
		p := filepath.Join(dir, filepath.FromSlash(role)+".json")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("cache trust data: %w", err)
		}
		if old, err := readCapped(p, int64(len(b))); err == nil && bytes.Equal(old, b) {
			continue // cached already: no write, no fsync
		}
		if err := atomicfile.Write(p, b, 0o644); err != nil {
			return fmt.Errorf("cache %s in %s: %w", role, dir, err)
		}
	}
	return nil
}
