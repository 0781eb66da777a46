package mirror

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFileFor: the names the engine asks a folder source for come from
// untrusted metadata (delegation names); whatever is accepted must stay
// a .json file inside the repository's folder.
func FuzzFileFor(f *testing.F) {
	for _, s := range []string{"root.json", "2.root.json", "targets/releases.json", "snapshot." + strings.Repeat("0", 64) + ".json",
		"../x.json", "targets/../../x.json", "targets//a.json", "targets/a/./b.json", "/abs.json", "targets\\..\\x.json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file, err := fileFor(name)
		if err != nil {
			return
		}
		if !strings.HasSuffix(file, ".json") || !filepath.IsLocal(filepath.FromSlash(file)) || strings.Contains(file, "..") || strings.Contains(file, "\\") {
			t.Fatalf("fileFor(%q) = %q: not a plain file name below the folder", name, file)
		}
	})
}
