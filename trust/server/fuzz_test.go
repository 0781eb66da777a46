package server

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"
)

// FuzzParseRoute checks that any path either parses to a route whose GUN
// and role are valid names, or is refused, and never panics.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_trust/changefeed", "/v2/docker.io/library/alpine/_trust/tuf/",
		"/v2/a/_trust/tuf/root.json", "/v2/a/_trust/tuf/3.targets/releases.json",
		"/v2/a/_trust/tuf/snapshot." + strings.Repeat("a", 64) + ".json",
		"/v2/a:5000/b/_trust/tuf/timestamp.key", "/v2/a/_trust/tuf/targets/../root.json",
		"/v2/a/_trust/changefeed", "/v2/A/_trust/tuf/root.json", "/v2/a/_trust/import",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			return
		}
		if rt.gun != "" {
			if err := validGUN(rt.gun); err != nil {
				t.Fatalf("parsed invalid GUN %q from %q: %v", rt.gun, path, err)
			}
			if strings.Contains(rt.gun, "..") || strings.Contains(rt.gun, "_trust") && rt.kind == routeMeta && strings.Contains(rt.role, "/_trust/") {
				t.Fatalf("suspicious GUN %q from %q", rt.gun, path)
			}
		}
		if rt.kind == routeMeta {
			if err := validRoleName(rt.role); err != nil {
				t.Fatalf("parsed invalid role %q from %q: %v", rt.role, path, err)
			}
		}
	})
}

// FuzzReadUpdate feeds arbitrary multipart bodies to the update parser:
// it must return updates with valid role names and versions >= 1 within
// the limits, or an error, and never panic.
func FuzzReadUpdate(f *testing.F) {
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets/releases\"\r\n\r\n{\"signed\":{\"version\":1}}\r\n--b--\r\n")
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"root.json\"\r\n\r\n{\"signed\":{\"version\":3},\"signatures\":[]}\r\n--b--\r\n")
	f.Add("x", "garbage")
	s := &Server{limits: Limits{MaxRequestBytes: 1 << 16, MaxMetadataBytes: 1 << 12, MaxParts: 4}.withDefaults()}
	f.Fuzz(func(t *testing.T, boundary, body string) {
		r := httptest.NewRequest("POST", "/v2/a/_trust/tuf/", bytes.NewReader([]byte(body)))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=\""+strings.ReplaceAll(boundary, "\"", "")+"\"")
		updates, err := s.readUpdate(r)
		if err != nil {
			return
		}
		if len(updates) > s.limits.MaxParts {
			t.Fatalf("%d updates", len(updates))
		}
		for _, u := range updates {
			if validRoleName(u.Role.String()) != nil || u.Version < 1 || int64(len(u.Data)) > s.limits.MaxMetadataBytes {
				t.Fatalf("bad update %s v%d (%d bytes)", u.Role, u.Version, len(u.Data))
			}
		}
	})
}

// FuzzReadImport feeds arbitrary multipart bodies to the import parser:
// it must return files named <role> (holding that role) or <N>.root
// (holding root version N), each at most once, within the limits, or an
// error, and never panic.
func FuzzReadImport(f *testing.F) {
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"2.root.json\"\r\n\r\n{\"signed\":{\"version\":2}}\r\n--b--\r\n")
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets/releases.json\"\r\n\r\n{\"signed\":{\"version\":1}}\r\n--b--\r\n")
	f.Add("b", "--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"0.root.json\"\r\n\r\n{\"signed\":{\"version\":1}}\r\n--b--\r\n")
	s := &Server{limits: Limits{MaxRequestBytes: 1 << 16, MaxMetadataBytes: 1 << 12, MaxImportParts: 4}.withDefaults()}
	f.Fuzz(func(t *testing.T, boundary, body string) {
		r := httptest.NewRequest("POST", "/v2/a/_trust/import", bytes.NewReader([]byte(body)))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=\""+strings.ReplaceAll(boundary, "\"", "")+"\"")
		parts, err := s.readParts(r, "import", s.limits.MaxImportParts, "--max-import-parts", importName)
		if err != nil {
			return
		}
		if len(parts) > s.limits.MaxImportParts {
			t.Fatalf("%d parts", len(parts))
		}
		seen := map[string]bool{}
		for _, p := range parts {
			if seen[p.name] || p.Version < 1 || int64(len(p.Data)) > s.limits.MaxMetadataBytes {
				t.Fatalf("bad part %s v%d (%d bytes)", p.name, p.Version, len(p.Data))
			}
			seen[p.name] = true
			if m := rootHistoryRe.FindStringSubmatch(p.name); m != nil {
				if p.Role != data.CanonicalRootRole || m[1] != strconv.Itoa(p.Version) {
					t.Fatalf("part %s holds %s version %d", p.name, p.Role, p.Version)
				}
				continue
			}
			if p.name != p.Role.String() || validRoleName(p.name) != nil {
				t.Fatalf("part %s holds role %s", p.name, p.Role)
			}
		}
	})
}
