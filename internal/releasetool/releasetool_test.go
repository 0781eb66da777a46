package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestArchive writes the same files twice into each format: the bytes are
// the same, and the entries have the prefix, the time and the modes.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "signet")
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(bin, []byte("binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readme, []byte("# signet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1767323045, 0).UTC()
	for _, ext := range []string{".tar.gz", ".zip"} {
		t.Run(ext, func(t *testing.T) {
			a, b := filepath.Join(dir, "a"+ext), filepath.Join(dir, "b"+ext)
			for _, out := range []string{a, b} {
				if err := run([]string{"archive", "-o", out, "-prefix", "signet_1.0.0", "-mtime", "1767323045", bin, readme}); err != nil {
					t.Fatal(err)
				}
				// A later file time must not matter.
				os.Chtimes(bin, time.Now(), time.Now())
			}
			ab, _ := os.ReadFile(a)
			bb, _ := os.ReadFile(b)
			if !bytes.Equal(ab, bb) {
				t.Errorf("two archives of the same files differ")
			}
			got := entries(t, a)
			want := []string{"signet_1.0.0/ drwxr-xr-x", "signet_1.0.0/signet -rwxr-xr-x binary", "signet_1.0.0/README.md -rw-r--r-- # signet\n"}
			if strings.Join(got.names, "|") != strings.Join(want, "|") {
				t.Errorf("entries:\n got %q\nwant %q", got.names, want)
			}
			for _, m := range got.times {
				if !m.Equal(mtime) {
					t.Errorf("entry time %v, want %v", m, mtime)
				}
			}
		})
	}
	if err := run([]string{"archive", "-o", filepath.Join(dir, "x.rar"), "-prefix", "p", "-mtime", "0", bin}); err == nil {
		t.Error("archive x.rar: no error")
	}
}

type listing struct {
	names []string
	times []time.Time
}

func entries(t *testing.T, file string) listing {
	t.Helper()
	var l listing
	if strings.HasSuffix(file, ".zip") {
		zr, err := zip.OpenReader(file)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			s := f.Name + " " + f.Mode().String()
			if !f.Mode().IsDir() {
				r, _ := f.Open()
				b, _ := io.ReadAll(r)
				s += " " + string(b)
			}
			l.names = append(l.names, s)
			l.times = append(l.times, f.Modified)
		}
		return l
	}
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d", h.Name, h.Uid, h.Gid)
		}
		s := h.Name + " " + h.FileInfo().Mode().String()
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			s += " " + string(b)
		}
		l.names = append(l.names, s)
		l.times = append(l.times, h.ModTime)
	}
	return l
}

func TestNewBOM(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Path:      "github.com/signet-project/signet/cmd/signet",
		Main:      debug.Module{Path: "github.com/signet-project/signet", Version: "v1.2.0"},
		Deps: []*debug.Module{
			{Path: "github.com/spf13/cobra", Version: "v1.9.1", Sum: "h1:abc="},
			{Path: "github.com/Old/mod", Version: "v0.1.0+incompatible", Replace: &debug.Module{Path: "example.com/fork", Version: "v0.2.0", Sum: "h1:def="}},
		},
		Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}, {Key: "GOARCH", Value: "arm64"}, {Key: "GOOS", Value: "linux"}},
	}
	b := newBOM(info, "signet", strings.Repeat("ab", 32), time.Unix(0, 0))
	if b.BOMFormat != "CycloneDX" || b.SpecVersion != "1.5" {
		t.Errorf("format %s %s", b.BOMFormat, b.SpecVersion)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(b.SerialNumber) {
		t.Errorf("serial number %q", b.SerialNumber)
	}
	if got, want := b.Metadata.Component.PURL, "pkg:golang/github.com/signet-project/signet@v1.2.0?goarch=arm64&goos=linux"; got != want {
		t.Errorf("main purl %q, want %q", got, want)
	}
	var purls []string
	for _, c := range b.Components {
		purls = append(purls, c.PURL)
	}
	want := []string{"pkg:golang/stdlib@1.26.1", "pkg:golang/github.com/spf13/cobra@v1.9.1", "pkg:golang/example.com/fork@v0.2.0"}
	if strings.Join(purls, " ") != strings.Join(want, " ") {
		t.Errorf("components %q, want %q", purls, want)
	}
	if len(b.Dependencies) != 1 || len(b.Dependencies[0].DependsOn) != 3 {
		t.Errorf("dependencies %+v", b.Dependencies)
	}
	if got := golangPURL("github.com/x/y", "v1.0.0+incompatible"); got != "pkg:golang/github.com/x/y@v1.0.0%2Bincompatible" {
		t.Errorf("purl with +: %q", got)
	}
}

// TestSBOMOfItself writes the SBOM of the test binary, which the go
// command gave build information too.
func TestSBOMOfItself(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sbom.json")
	if err := run([]string{"sbom", "-o", out, "-mtime", "1767323045", "-version", "v9.8.7", exe}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var b bom
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	if b.Metadata.Timestamp != "2026-01-02T03:04:05Z" || b.Metadata.Component.Version != "v9.8.7" || len(b.Components) == 0 || b.Components[0].Name != "stdlib" {
		t.Errorf("SBOM: %s", data)
	}
}
