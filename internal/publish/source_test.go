package publish

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestCheckSource: a push source written as a path that does not exist
// is an error saying so; references and existing paths pass.
func TestCheckSource(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("build", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("image.tar", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		src  string
		want string // "" passes
	}{
		{"/no/such/path", "no such file or folder"},
		{"./missing", "no such file or folder"},
		{"../missing/oci", "no such file or folder"},
		{"missing.tar", "no such file or folder"},
		{"missing.tar.gz", "no such file or folder"},
		{"build/missing", "(for an image in Docker Hub, write docker.io/build/missing)"},
		{`build\oci`, "no such file or folder"},
		{"build", ""},
		{"image.tar", ""},
		{"registry.example.com/team/app:1", ""},
		{"team/app:1", ""},
		{"alpine", ""},
		{"app:1.tar", ""},
		{"localhost:5000/app", ""},
	}
	for _, tc := range tests {
		err := checkSource(tc.src)
		if tc.want == "" {
			if err != nil {
				t.Errorf("checkSource(%q) = %v, want it to pass", tc.src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), strconv.Quote(tc.src)) {
			t.Errorf("checkSource(%q) = %v, want it named with %q", tc.src, err, tc.want)
		}
	}
}
