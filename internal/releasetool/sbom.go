package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

// CycloneDX 1.5 JSON, the parts signet's SBOM uses
// (https://cyclonedx.org/docs/1.5/json/).
type bom struct {
	BOMFormat    string       `json:"bomFormat"`
	SpecVersion  string       `json:"specVersion"`
	SerialNumber string       `json:"serialNumber"`
	Version      int          `json:"version"`
	Metadata     bomMetadata  `json:"metadata"`
	Components   []component  `json:"components"`
	Dependencies []dependency `json:"dependencies"`
}

type bomMetadata struct {
	Timestamp string     `json:"timestamp"`
	Tools     bomTools   `json:"tools"`
	Component component  `json:"component"`
	Props     []property `json:"properties,omitempty"`
}

type bomTools struct {
	Components []component `json:"components"`
}

type component struct {
	BOMRef     string     `json:"bom-ref,omitempty"`
	Type       string     `json:"type"`
	Name       string     `json:"name"`
	Version    string     `json:"version,omitempty"`
	PURL       string     `json:"purl,omitempty"`
	Hashes     []hash     `json:"hashes,omitempty"`
	Properties []property `json:"properties,omitempty"`
}

type hash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type dependency struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// writeSBOM writes the SBOM of the Go binary bin, of release version
// (if not empty), to out.
func writeSBOM(out, bin, version string, at time.Time) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("read build information of %q: %w", bin, err)
	}
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return fmt.Errorf("hash %q: %w", bin, err)
	}
	if version != "" {
		info.Main.Version = version
	}
	b := newBOM(info, filepath.Base(bin), hex.EncodeToString(h.Sum(nil)), at)
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(data, '\n'), 0o644)
}

// newBOM describes the binary named file, of SHA-256 sum, built as info
// says. at is the SBOM's timestamp.
func newBOM(info *debug.BuildInfo, file, sum string, at time.Time) bom {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	qualifiers := ""
	if settings["GOOS"] != "" && settings["GOARCH"] != "" {
		qualifiers = "?goarch=" + settings["GOARCH"] + "&goos=" + settings["GOOS"]
	}
	version := info.Main.Version
	if version == "" || version == "(devel)" {
		version = settings["vcs.revision"]
	}
	main := component{
		Type: "application", Name: info.Main.Path, Version: version,
		PURL:   golangPURL(info.Main.Path, version) + qualifiers,
		Hashes: []hash{{Alg: "SHA-256", Content: sum}},
		Properties: []property{
			{Name: "signet:file", Value: file},
			{Name: "signet:go", Value: info.GoVersion},
		},
	}
	main.BOMRef = main.PURL
	// The build settings, in the order the go command records them.
	for _, s := range info.Settings {
		main.Properties = append(main.Properties, property{Name: "signet:build:" + s.Key, Value: s.Value})
	}

	stdlib := component{Type: "library", Name: "stdlib", Version: info.GoVersion,
		PURL: golangPURL("stdlib", strings.TrimPrefix(info.GoVersion, "go"))}
	stdlib.BOMRef = stdlib.PURL
	comps := []component{stdlib}
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		c := component{Type: "library", Name: m.Path, Version: m.Version, PURL: golangPURL(m.Path, m.Version)}
		if m.Sum != "" {
			c.Properties = append(c.Properties, property{Name: "signet:go.sum", Value: m.Sum})
		}
		if d.Replace != nil {
			c.Properties = append(c.Properties, property{Name: "signet:replaces", Value: d.Path + "@" + d.Version})
		}
		c.BOMRef = c.PURL
		comps = append(comps, c)
	}
	refs := make([]string, len(comps))
	for i, c := range comps {
		refs[i] = c.BOMRef
	}
	return bom{
		BOMFormat: "CycloneDX", SpecVersion: "1.5",
		SerialNumber: serialNumber(sum), Version: 1,
		Metadata: bomMetadata{
			Timestamp: at.UTC().Format(time.RFC3339),
			Tools: bomTools{Components: []component{{Type: "application", Name: "signet internal/releasetool",
				Properties: []property{{Name: "signet:source", Value: "the build information of the binary, as go version -m prints it"}}}}},
			Component: main,
		},
		Components:   comps,
		Dependencies: []dependency{{Ref: main.BOMRef, DependsOn: refs}},
	}
}

// golangPURL is the package URL of a Go module
// (https://github.com/package-url/purl-spec, type golang).
func golangPURL(path, version string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = purlEscape(s)
	}
	p := "pkg:golang/" + strings.Join(segs, "/")
	if version != "" {
		p += "@" + purlEscape(version)
	}
	return p
}

// purlEscape percent-encodes all but unreserved characters.
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// serialNumber is a UUID (RFC 9562 version 8, name-based on SHA-256) of
// the binary's hash, so the same binary always gets the same SBOM.
func serialNumber(sum string) string {
	u := sha256.Sum256([]byte("signet sbom " + sum))
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
