package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
)

// maxCachedRootBytes caps the read of a cached root.json.
const maxCachedRootBytes = 10 << 20

// cacheDir is where notary caches a repository's metadata in a trust dir.
func cacheDir(trustDir, gun string) string {
	return filepath.Join(trustDir, "tuf", filepath.FromSlash(gun), "metadata")
}

// checkCachedRoot loads the cached root.json of gun the way notary's
// client does before anything else (it is the pinned root, trusted over
// whatever the server sends), so that a damaged file is an error naming
// it instead of an opaque failure of every command. No file is no error.
func checkCachedRoot(gun data.GUN, dir string) error {
	path := filepath.Join(dir, data.CanonicalRootRole.String()+".json")
	raw, err := readCapped(path, maxCachedRootBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		// As notary's bootstrap: no trust pinning for the cached root
		// (it is the pin), expired allowed (a newer root may follow).
		b := tuf.NewRepoBuilder(gun, cryptoservice.EmptyService, trustpinning.TrustPinConfig{})
		err = b.Load(data.CanonicalRootRole, raw, 1, true)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("read cached root of %s %s: %v: it pins the repository's root keys, so restore it from a backup; remove it only if you know why it changed", gun, path, err)
	}
	return nil
}

// forgetUnpublished removes the metadata notary's Initialize cached for a
// repository whose first publish was refused because another publisher
// created it first: that root was never the server's, and keeping it
// would pin the wrong root.
func forgetUnpublished(dir string) error {
	for _, role := range []data.RoleName{data.CanonicalRootRole, data.CanonicalTargetsRole, data.CanonicalSnapshotRole} {
		p := filepath.Join(dir, role.String()+".json")
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove unpublished %s: %w", p, err)
		}
	}
	return nil
}
