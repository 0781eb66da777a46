package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust/verify"
)

// TrustDirSource reads the metadata a docker or notary client cached in
// its trust dir (~/.docker/trust, ~/.notary): tuf/<gun>/metadata/*.json.
// A cache holds the root its client trusted and no root history.
type TrustDirSource struct {
	Dir string
	// Now is the clock for the freshness notes (default time.Now).
	Now func() time.Time
}

func (s *TrustDirSource) String() string { return s.Dir }

func (s *TrustDirSource) metadataDir(gun string) string {
	return filepath.Join(s.Dir, "tuf", filepath.FromSlash(gun), "metadata")
}

// Repositories implements Source: every tuf/<gun>/metadata holding a
// root.json.
func (s *TrustDirSource) Repositories(context.Context) ([]string, error) {
	return findRepositories(filepath.Join(s.Dir, "tuf"), "metadata", s.Dir)
}

// Open implements Source.
func (s *TrustDirSource) Open(_ context.Context, gun string) (*Repo, error) {
	dir := s.metadataDir(gun)
	root, err := verify.ReadFile(filepath.Join(dir, "root.json"), verify.MaxRootBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the trust dir %s has no cached root for %s (%s): it never read that repository", s.Dir, gun, filepath.Join(dir, "root.json"))
	}
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var notes []string
	if fi, err := os.Stat(filepath.Join(dir, "timestamp.json")); err == nil {
		notes = append(notes, "cached "+ago(now(), fi.ModTime()))
	}
	return &Repo{Fetcher: dirFetcher{dir: dir}, Root: root, Notes: notes}, nil
}

// ArchiveSource reads an archive that `signet mirror --to DIR` wrote.
type ArchiveSource struct {
	Dir string
}

func (s *ArchiveSource) String() string { return s.Dir }

// Repositories implements Source: every <gun>/_trust/tuf holding a
// root.json.
func (s *ArchiveSource) Repositories(context.Context) ([]string, error) {
	return findRepositories(s.Dir, archiveTrustDir+"/tuf", s.Dir)
}

// Open implements Source.
func (s *ArchiveSource) Open(_ context.Context, gun string) (*Repo, error) {
	dir := archiveRepoDir(s.Dir, gun)
	if _, err := os.Stat(filepath.Join(dir, "root.json")); err != nil {
		return nil, fmt.Errorf("the archive %s holds no %s (%s)", s.Dir, gun, filepath.Join(dir, "root.json"))
	}
	return &Repo{Fetcher: dirFetcher{dir: dir}}, nil
}

// findRepositories walks top for folders whose path ends in leaf
// ("metadata", "_trust/tuf") and that hold a root.json; the path between
// top and leaf is the GUN. Names that are not repository names are
// skipped.
func findRepositories(top, leaf, what string) ([]string, error) {
	var guns []string
	suffix := string(filepath.Separator) + filepath.FromSlash(leaf)
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || !strings.HasSuffix(p, suffix) {
			return nil
		}
		if _, err := os.Stat(filepath.Join(p, "root.json")); err != nil {
			return nil
		}
		rel, err := filepath.Rel(top, strings.TrimSuffix(p, suffix))
		if err != nil {
			return nil
		}
		if gun := filepath.ToSlash(rel); validGUN(gun) == nil {
			guns = append(guns, gun)
		}
		return fs.SkipDir
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories in %s: %w", what, err)
	}
	if len(guns) == 0 {
		return nil, fmt.Errorf("%s %w (no %s): name another folder", what, errNoRepositories, filepath.Join(top, "<repository>", filepath.FromSlash(leaf), "root.json"))
	}
	sort.Strings(guns)
	return guns, nil
}

// validGUN accepts a normalised repository name (as registry.GUN gives
// it), so that it is safe as a path below a folder.
func validGUN(gun string) error {
	repo, err := registry.ParseRepository(gun)
	if err != nil || registry.GUN(repo) != gun {
		return fmt.Errorf("%q is not a normalised repository name (registry/path, as docker.io/library/alpine)", gun)
	}
	return nil
}

// errNoRepositories is a folder source that holds none.
var errNoRepositories = errors.New("holds no repositories")

// dirFetcher serves a folder of metadata files named as a trust server
// serves them. A consistent name (<role>.<hash>.json) is read from
// <role>.json: the engine checks the hash.
type dirFetcher struct{ dir string }

var checksumSuffix = regexp.MustCompile(`\.([0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$`)

// fileFor maps a metadata name to the file that holds it, refusing
// names that are not metadata names.
func fileFor(name string) (string, error) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return "", fmt.Errorf("metadata name %q does not end in .json", name)
	}
	base = checksumSuffix.ReplaceAllString(base, "")
	if v, role, ok := strings.Cut(base, "."); ok && role == "root" && isVersion(v) {
		return base + ".json", nil
	}
	if err := validRole(base); err != nil {
		return "", err
	}
	return base + ".json", nil
}

func isVersion(v string) bool {
	if v == "" || len(v) > 9 || v[0] == '0' {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validRole accepts root, timestamp, snapshot, targets and delegation
// names notary accepts (clean paths of [-a-z0-9_] segments below
// targets/), so that a role name is safe as a relative path.
func validRole(role string) error {
	switch data.RoleName(role) {
	case data.CanonicalRootRole, data.CanonicalTimestampRole, data.CanonicalSnapshotRole, data.CanonicalTargetsRole:
		return nil
	}
	if !data.IsDelegation(data.RoleName(role)) || strings.Contains(role, "//") {
		return fmt.Errorf("role %q is not root, timestamp, snapshot, targets or targets/<name>", role)
	}
	return nil
}

func (f dirFetcher) Fetch(_ context.Context, name string, max int64) ([]byte, error) {
	file, err := fileFor(name)
	if err != nil {
		return nil, err
	}
	b, err := verify.ReadFile(filepath.Join(f.dir, filepath.FromSlash(file)), max)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not in %s: %w", file, f.dir, verify.ErrNotFound)
	}
	return b, err
}
