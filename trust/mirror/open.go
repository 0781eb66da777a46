package mirror

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signet-project/signet/trust"
)

// SourceOptions configure a server source; folders need none.
type SourceOptions struct {
	// Auth reaches the server (credentials, CA bundle).
	Auth trust.TransportOptions
	// Keychain supplies credentials when Auth has none (see ServerSource).
	Keychain authn.Keychain
	// MaxRequests caps the requests in flight to the server (default 8).
	MaxRequests int
}

// OpenSource opens what --from names: an http(s):// URL is a Notary v1
// server; a folder holding signet-mirror.json is an archive; a folder
// holding tuf/ is a docker or notary trust dir.
func OpenSource(from string, opts SourceOptions) (Source, error) {
	if from == "" {
		return nil, errors.New("--from is required: a Notary server URL, a trust dir (~/.docker/trust) or an archive folder")
	}
	if isURL(from) {
		return NewServerSource(from, opts.Auth, opts.Keychain, opts.MaxRequests)
	}
	fi, err := os.Stat(from)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("--from %s: %v: give a Notary server URL (https://...), a trust dir or an archive folder", from, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("--from %s: not a folder: give a Notary server URL (https://...), a trust dir or an archive folder", from)
	}
	archive, err := isArchive(from)
	if err != nil {
		return nil, fmt.Errorf("--from %s: %w", from, err)
	}
	if archive {
		return &ArchiveSource{Dir: from}, nil
	}
	if fi, err := os.Stat(filepath.Join(from, "tuf")); err == nil && fi.IsDir() {
		return &TrustDirSource{Dir: from}, nil
	}
	return nil, fmt.Errorf("--from %s: holds neither an archive (%s) nor a trust dir's cache (tuf/): name a trust dir such as ~/.docker/trust or ~/.notary, or a folder `signet mirror --to` wrote", from, archiveMarker)
}

// OpenSink opens what --to names: an http(s):// URL is a signet trust
// server (its import API); anything else is an archive folder.
func OpenSink(to string, auth trust.TransportOptions) (Sink, error) {
	if to == "" {
		return nil, errors.New("--to is required (or SIGNET_TRUST_SERVER): a signet trust server URL, or a folder for an offline archive")
	}
	if isURL(to) {
		return NewServerSink(to, auth)
	}
	return NewArchiveSink(to)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.Contains(s, "://")
}
