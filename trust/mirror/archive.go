package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/signet-project/signet/internal/atomicfile"
	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/verify"
)

// An archive is a folder of plain files: the marker file, and for each
// repository the files a trust server serves, under the server's own
// path: <dir>/<gun>/_trust/tuf/{1.root.json, 2.root.json, root.json,
// timestamp.json, snapshot.json, targets.json, targets/releases.json}.
// "_trust" cannot be a segment of a repository name, so repositories
// nested in one another (team, team/app) never share a folder.
const (
	archiveMarker   = "signet-mirror.json"
	archiveFormat   = "signet-mirror-archive"
	archiveVersion  = 1
	archiveTrustDir = "_trust"
)

type marker struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

// archiveRepoDir is where an archive keeps gun's files.
func archiveRepoDir(dir, gun string) string {
	return filepath.Join(dir, filepath.FromSlash(gun), archiveTrustDir, "tuf")
}

// isArchive reports whether dir holds an archive's marker, and refuses
// a marker of another format or version.
func isArchive(dir string) (bool, error) {
	b, err := verify.ReadFile(filepath.Join(dir, archiveMarker), 4<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.Format != archiveFormat {
		return false, fmt.Errorf("%s is not a signet mirror archive marker: remove it, or name another folder", filepath.Join(dir, archiveMarker))
	}
	if m.Version != archiveVersion {
		return false, fmt.Errorf("%s is archive format version %d; this signet reads version %d: use a newer signet", filepath.Join(dir, archiveMarker), m.Version, archiveVersion)
	}
	return true, nil
}

// ArchiveSink writes an offline archive. Each file is replaced
// atomically (temp file, then rename) and only when its bytes change;
// timestamp.json is written last, so a repository in an interrupted
// archive is whole again after the next run.
type ArchiveSink struct {
	Dir string

	once    sync.Once
	initErr error
}

// NewArchiveSink checks that dir can be an archive: an existing archive,
// an empty folder or none (made at the first write); anything else is
// refused.
func NewArchiveSink(dir string) (*ArchiveSink, error) {
	ok, err := isArchive(dir)
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", dir, err)
	}
	if ok {
		return &ArchiveSink{Dir: dir}, nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("--to %s: %w", dir, err)
	case len(entries) > 0:
		return nil, fmt.Errorf("--to %s: the folder is not empty and holds no signet mirror archive (%s): name a new or empty folder", dir, archiveMarker)
	}
	return &ArchiveSink{Dir: dir}, nil
}

// create makes the folder and its marker, once.
func (s *ArchiveSink) create() error {
	s.once.Do(func() {
		if ok, err := isArchive(s.Dir); ok || err != nil {
			s.initErr = err
			return
		}
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			s.initErr = fmt.Errorf("make the archive %s: %w", s.Dir, err)
			return
		}
		b, _ := json.Marshal(marker{Format: archiveFormat, Version: archiveVersion})
		if err := atomicfile.Write(filepath.Join(s.Dir, archiveMarker), append(b, '\n'), 0o644); err != nil {
			s.initErr = fmt.Errorf("make the archive %s: %w", s.Dir, err)
		}
	})
	return s.initErr
}

func (s *ArchiveSink) String() string { return s.Dir }

// State implements Sink: the archived root and the versions of the
// archived roles, as a client's cache gives them.
func (s *ArchiveSink) State(_ context.Context, gun string) (*verify.State, error) {
	st, err := trust.LoadState(archiveRepoDir(s.Dir, gun))
	if err != nil {
		return nil, fmt.Errorf("read archived %s: %w", gun, err)
	}
	return st, nil
}

// RootVersion implements Sink.
func (s *ArchiveSink) RootVersion(_ context.Context, gun string, v int) ([]byte, error) {
	b, err := verify.ReadFile(filepath.Join(archiveRepoDir(s.Dir, gun), strconv.Itoa(v)+".root.json"), verify.MaxRootBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Write implements Sink.
func (s *ArchiveSink) Write(_ context.Context, gun string, files Files) (Written, error) {
	if err := s.create(); err != nil {
		return Written{}, err
	}
	dir := archiveRepoDir(s.Dir, gun)
	var out Written
	// put writes b as name unless the file already holds b.
	put := func(name string, b []byte) (bool, error) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := verify.ReadFile(p, int64(len(b))); err == nil && bytes.Equal(old, b) {
			return false, nil
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, fmt.Errorf("archive %s of %s: %w", name, gun, err)
		}
		if err := atomicfile.Write(p, b, 0o644); err != nil {
			return false, fmt.Errorf("archive %s of %s: %w", name, gun, err)
		}
		return true, nil
	}
	record := func(f File, changed bool) {
		if changed {
			out.Stored = append(out.Stored, f)
		} else {
			out.Unchanged = append(out.Unchanged, f)
		}
	}
	// Root history first, then the roles from the leaves up, timestamp
	// last: until it is replaced, the old timestamp names the old
	// snapshot, and a reader finds a mismatch, never a mix that verifies.
	for _, v := range sortedVersions(files.Roots) {
		changed, err := put(strconv.Itoa(v)+".root.json", files.Roots[v])
		if err != nil {
			return out, err
		}
		record(File{Role: "root", Version: v}, changed)
	}
	for _, role := range writeOrder(files.Roles) {
		if err := validRole(role); err != nil {
			return out, fmt.Errorf("archive %s: %w", gun, err)
		}
		f := File{Role: role, Version: files.Versions[role]}
		if held := archivedVersion(filepath.Join(dir, filepath.FromSlash(role)+".json"), role); held > f.Version {
			out.Skipped = append(out.Skipped, f)
			continue
		}
		names := []string{role + ".json"}
		if role == "root" {
			// Also under its version, as the server serves it.
			names = append([]string{strconv.Itoa(f.Version) + ".root.json"}, names...)
		}
		changed := false
		for _, name := range names {
			c, err := put(name, files.Roles[role])
			if err != nil {
				return out, err
			}
			changed = changed || c
		}
		record(f, changed)
	}
	return out, nil
}

// archivedVersion is the version of the role's archived file, 0 if none.
func archivedVersion(path, role string) int {
	b, err := verify.ReadFile(path, verify.MaxMetadataBytes)
	if err != nil {
		return 0
	}
	typ := "Targets"
	switch role {
	case "root", "timestamp", "snapshot":
		typ = strings.ToUpper(role[:1]) + role[1:]
	}
	v, _ := verify.Version(b, typ)
	return v
}

// writeOrder lists roles children first, then targets, snapshot, root,
// and timestamp last.
func writeOrder(roles map[string][]byte) []string {
	rank := map[string]int{"targets": 1, "snapshot": 2, "root": 3, "timestamp": 4}
	var names []string
	for r := range roles {
		names = append(names, r)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank[names[i]], rank[names[j]]
		if ri != rj {
			return ri < rj
		}
		// Deeper delegations first.
		if di, dj := depth(names[i]), depth(names[j]); di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	return names
}

func depth(role string) int {
	n := 0
	for _, c := range role {
		if c == '/' {
			n++
		}
	}
	return n
}

func sortedVersions(m map[int][]byte) []int {
	var vs []int
	for v := range m {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	return vs
}
