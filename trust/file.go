package trust

import "github.com/signet-project/signet/trust/verify"

// readCapped reads at most max bytes of a file, refusing bigger ones.
func readCapped(path string, max int64) ([]byte, error) {
	return verify.ReadFile(path, max)
}
