package registry

import (
	"strings"
	"testing"
)

func TestGUN(t *testing.T) {
	tests := []struct{ in, gun, tag string }{
		{"alpine", "docker.io/library/alpine", "latest"},
		{"alpine:3.20", "docker.io/library/alpine", "3.20"},
		{"docker.io/library/alpine:3", "docker.io/library/alpine", "3"},
		{"index.docker.io/library/alpine:3", "docker.io/library/alpine", "3"},
		{"team/app:1", "docker.io/team/app", "1"},
		{"registry.example.com:5000/team/app:v1", "registry.example.com:5000/team/app", "v1"},
		{"127.0.0.1:5000/app", "127.0.0.1:5000/app", "latest"},
	}
	for _, tc := range tests {
		tag, err := ParseTag(tc.in)
		if err != nil {
			t.Fatalf("ParseTag(%q): %v", tc.in, err)
		}
		if got := GUN(tag.Context()); got != tc.gun || tag.TagStr() != tc.tag {
			t.Errorf("%q: GUN %q tag %q, want %q %q", tc.in, got, tag.TagStr(), tc.gun, tc.tag)
		}
	}
}

func TestParseTagRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"app@sha256:0000000000000000000000000000000000000000000000000000000000000000": "digest reference",
		"UPPER/case:1": "parse image",
		"app:bad tag":  "parse image",
		"":             "parse image",
	} {
		if _, err := ParseTag(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTag(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
