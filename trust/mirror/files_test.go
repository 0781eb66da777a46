package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/trust"
)

func TestFileFor(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, file, err string }{
		{"root.json", "root.json", ""},
		{"3.root.json", "3.root.json", ""},
		{"timestamp.json", "timestamp.json", ""},
		{"snapshot." + hex64 + ".json", "snapshot.json", ""},
		{"targets/releases." + hex64 + ".json", "targets/releases.json", ""},
		{"targets/a/b.json", "targets/a/b.json", ""},
		{"0.root.json", "", "is not root"},
		{"01.root.json", "", "is not root"},
		{"3.targets.json", "", "is not root"},
		{"../etc.json", "", "is not root"},
		{"targets/../../etc.json", "", "is not root"},
		{"targets//x.json", "", "is not root"},
		{"/etc/passwd.json", "", "is not root"},
		{"root", "", "does not end in .json"},
	} {
		got, err := fileFor(tc.name)
		if tc.err == "" && (err != nil || got != tc.file) {
			t.Errorf("fileFor(%q) = %q, %v; want %q", tc.name, got, err, tc.file)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("fileFor(%q) = %q, %v; want an error with %q", tc.name, got, err, tc.err)
		}
	}
}

func TestGUN(t *testing.T) {
	for _, tc := range []struct{ in, gun, err string }{
		{"alpine", "docker.io/library/alpine", ""},
		{"docker.io/library/alpine", "docker.io/library/alpine", ""},
		{"index.docker.io/team/app", "docker.io/team/app", ""},
		{"registry.example.com:5000/team/app", "registry.example.com:5000/team/app", ""},
		{"localhost:5000/app", "localhost:5000/app", ""},
		{"alpine:3.20", "", `"alpine:3.20" names a tag: name the repository (docker.io/library/alpine)`},
		{"registry.example.com/app@sha256:" + strings.Repeat("0", 64), "", "is a digest reference"},
		{"Team/App", "", `repository "Team/App"`},
	} {
		got, err := GUN(tc.in)
		if tc.err == "" && (err != nil || got != tc.gun) {
			t.Errorf("GUN(%q) = %q, %v; want %q", tc.in, got, err, tc.gun)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("GUN(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

// TestOpen: what --from and --to name decides the source and sink, and
// folders that are neither are refused with the fix.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "other", "file"), "x")
	write(filepath.Join(dir, "badmarker", archiveMarker), `{"format":"something-else"}`)
	write(filepath.Join(dir, "future", archiveMarker), `{"format":"signet-mirror-archive","version":9}`)
	write(filepath.Join(dir, "trust", "tuf", "docker.io", "library", "alpine", "metadata", "root.json"), "{}")
	write(filepath.Join(dir, "trust", "tuf", "Not A Repo", "metadata", "root.json"), "{}")
	write(filepath.Join(dir, "emptytrust", "tuf", "x"), "")

	for _, tc := range []struct{ from, want string }{
		{"", "--from is required"},
		{"ftp://example.com", `trust server "ftp://example.com": give an https:// URL`},
		{"http://notary.example.com", "plain http is allowed only for loopback addresses"},
		{filepath.Join(dir, "missing"), "no such file or directory: give a Notary server URL"},
		{filepath.Join(dir, "other", "file"), "not a folder"},
		{filepath.Join(dir, "other"), "holds neither an archive (signet-mirror.json) nor a trust dir's cache (tuf/)"},
		{filepath.Join(dir, "badmarker"), "is not a signet mirror archive marker"},
		{filepath.Join(dir, "future"), "is archive format version 9; this signet reads version 1"},
	} {
		_, err := OpenSource(tc.from, SourceOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenSource(%q): %v, want %q", tc.from, err, tc.want)
		}
	}
	src, err := OpenSource(filepath.Join(dir, "trust"), SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	guns, err := src.Repositories(t.Context())
	if err != nil || len(guns) != 1 || guns[0] != "docker.io/library/alpine" {
		t.Fatalf("repositories %v, %v", guns, err)
	}
	src, _ = OpenSource(filepath.Join(dir, "emptytrust"), SourceOptions{})
	if _, err := src.Repositories(t.Context()); !errors.Is(err, errNoRepositories) {
		t.Fatalf("empty trust dir: %v", err)
	}
	srv, _ := OpenSource("https://notary.example.com/", SourceOptions{})
	if _, err := srv.Repositories(t.Context()); err == nil || !strings.Contains(err.Error(), "name them (IMAGE... or --file)") {
		t.Fatalf("server listing: %v", err)
	}

	for _, tc := range []struct{ to, want string }{
		{"", "--to is required"},
		{"http://trust.example.com", "plain http is allowed only for loopback addresses"},
		{filepath.Join(dir, "other"), "the folder is not empty and holds no signet mirror archive"},
		{filepath.Join(dir, "badmarker"), "is not a signet mirror archive marker"},
	} {
		_, err := OpenSink(tc.to, trust.TransportOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenSink(%q): %v, want %q", tc.to, err, tc.want)
		}
	}
	// A new folder becomes an archive at the first write, and opens
	// again as one.
	sink, err := OpenSink(filepath.Join(dir, "new", "archive"), trust.TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the archive was made before anything was written: %v", err)
	}
	if err := sink.(*ArchiveSink).create(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSink(filepath.Join(dir, "new", "archive"), trust.TransportOptions{}); err != nil {
		t.Fatal(err)
	}
	if src, err := OpenSource(filepath.Join(dir, "new", "archive"), SourceOptions{}); err != nil {
		t.Fatal(err)
	} else if _, err := src.Repositories(t.Context()); !errors.Is(err, errNoRepositories) {
		t.Fatalf("empty archive: %v", err)
	}
}

func TestImportError(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
		fatal  bool
	}{
		{404, `404 page not found`, "takes no imports (404 ): it must be a signet trust server started with --allow-import", true},
		{404, `{"errors":[{"code":"SIGNET_IMPORT_DISABLED","message":"import of x refused: this server does not take imports; start it with --allow-import"}]}`, "takes no imports (404 SIGNET_IMPORT_DISABLED)", true},
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, "refused the import (401 Unauthorized UNAUTHORIZED): authentication required", true},
		{403, `{"errors":[{"code":"SIGNET_GUN_NOT_ALLOWED","message":"repository not served here"}]}`, "SIGNET_GUN_NOT_ALLOWED", false},
		{409, `{"errors":[{"code":"SIGNET_IMPORT_CONFLICT","message":"import of x refused: targets version 3\ndiffers"}]}`, "holds different data (409 SIGNET_IMPORT_CONFLICT): import of x refused: targets version 3 differs", false},
		{400, `{"errors":[{"code":"INVALID_UPDATE","message":"import of x refused: targets: bad signature"}]}`, "refused the import (400 Bad Request INVALID_UPDATE): import of x refused: targets: bad signature", false},
		{502, `<html>`, "refused the import: 502 Bad Gateway", false},
	} {
		err := importError("https://trust.example.com", &http.Response{StatusCode: tc.status, Status: statusText(tc.status)}, []byte(tc.body))
		var ie *ImportError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) || ie.Fatal() != tc.fatal {
			t.Errorf("%d %s: %v (fatal %v), want %q (fatal %v)", tc.status, tc.body, err, ie != nil && ie.Fatal(), tc.want, tc.fatal)
		}
	}
}

func statusText(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

func TestUntil(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-3*24*time.Hour - time.Hour, "3 days ago"},
		{-30 * time.Second, "under a minute ago"},
		{90 * time.Second, "in 1 minute"},
		{5 * time.Hour, "in 5 hours"},
		{47 * time.Hour, "in 47 hours"},
		{13*24*time.Hour + 23*time.Hour, "in 13 days"},
	} {
		if got := until(now, now.Add(tc.d)); got != tc.want {
			t.Errorf("until(now%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := ago(now, now.Add(-2*time.Hour)); got != "2 hours ago" {
		t.Errorf("ago = %q", got)
	}
}
