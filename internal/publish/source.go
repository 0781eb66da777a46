package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// checkSource refuses a push source that is meant as a local file or
// folder but does not exist, instead of letting it be read as an image
// reference (where /no/such/path becomes a Docker Hub lookup failing on
// DNS). A source that exists, or looks like a reference, passes.
func checkSource(src string) error {
	_, err := os.Stat(src)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		if looksLikePath(src) {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("push: source %q: %v", src, err)
		}
		return nil
	}
	if !looksLikePath(src) {
		return nil
	}
	hint := ""
	if _, err := name.ParseReference(src); err == nil && !strings.HasPrefix(src, ".") && !filepath.IsAbs(src) {
		hint = " (for an image in Docker Hub, write docker.io/" + src + ")"
	}
	return fmt.Errorf("push: source %q: no such file or folder: give an OCI image layout folder, a docker save tarball or an image reference%s", src, hint)
}

// looksLikePath reports whether src is written as a local path rather
// than an image reference: it starts with / ./ ../ or ~, holds a
// backslash (never in a reference), ends in .tar (.tar.gz, .tgz) with no
// tag or digest, or its first folder exists here.
func looksLikePath(src string) bool {
	switch {
	case src == "." || src == "..",
		strings.HasPrefix(src, "/"), strings.HasPrefix(src, "./"), strings.HasPrefix(src, "../"), strings.HasPrefix(src, "~"),
		filepath.IsAbs(src), strings.ContainsRune(src, '\\'):
		return true
	}
	if !strings.ContainsAny(src, ":@") {
		for _, ext := range []string{".tar", ".tar.gz", ".tgz"} {
			if strings.HasSuffix(src, ext) {
				return true
			}
		}
	}
	if first, _, ok := strings.Cut(src, "/"); ok && first != "" {
		if fi, err := os.Stat(first); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}
