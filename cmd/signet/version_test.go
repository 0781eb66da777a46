package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/signet-project/signet/keys/yubikey"
)

func TestReadBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/signet-project/signet", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "1111111111111111111111111111111111111111"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{
		GoVersion: "go1.26.2",
		Main:      debug.Module{Path: "github.com/signet-project/signet", Version: "v1.4.0"},
	}
	for _, tc := range []struct {
		name                string
		ldV, ldC, ldD       string
		info                *debug.BuildInfo
		version, commit, at string
		modified            bool
		goVersion           string
	}{
		{name: "nothing recorded", version: "dev", commit: "unknown", at: "unknown", goVersion: runtime.Version()},
		{name: "git checkout", info: vcs, version: "dev", commit: "1111111111111111111111111111111111111111",
			at: "2026-01-02T03:04:05Z", modified: true, goVersion: "go1.26.1"},
		{name: "go install @version", info: installed, version: "v1.4.0", commit: "unknown", at: "unknown", goVersion: "go1.26.2"},
		{name: "release build", ldV: "v1.5.0", ldC: "1111111111111111111111111111111111111111", ldD: "2026-02-03T04:05:06Z", info: vcs,
			version: "v1.5.0", commit: "1111111111111111111111111111111111111111", at: "2026-02-03T04:05:06Z", modified: true, goVersion: "go1.26.1"},
		{name: "-X commit differs from vcs", ldV: "v1.5.0", ldC: "2222222222222222222222222222222222222222", info: vcs,
			version: "v1.5.0", commit: "2222222222222222222222222222222222222222", at: "2026-01-02T03:04:05Z", goVersion: "go1.26.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := readBuildInfo(tc.ldV, tc.ldC, tc.ldD, tc.info)
			want := buildInfo{Version: tc.version, Commit: tc.commit, Modified: tc.modified, Date: tc.at, Go: tc.goVersion,
				Platform: runtime.GOOS + "/" + runtime.GOARCH, YubiKey: yubikey.Supported}
			if b != want {
				t.Errorf("readBuildInfo:\n got %+v\nwant %+v", b, want)
			}
		})
	}
}

func TestBuildInfoWrite(t *testing.T) {
	var sb strings.Builder
	buildInfo{Version: "v1.5.0", Commit: "abc", Modified: true, Date: "2026-02-03T04:05:06Z", Go: "go1.26.1", Platform: "linux/arm64"}.write(&sb)
	want := `signet v1.5.0
commit:    abc (with uncommitted changes)
built:     2026-02-03T04:05:06Z
go:        go1.26.1
platform:  linux/arm64
yubikey:   no (built without PC/SC)
`
	if sb.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", sb.String(), want)
	}
}
