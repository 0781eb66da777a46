// Package migrate moves repositories off a Notary v1 server in one step
// (signet migrate): mirror their trust data into a signet trust server
// (trust/mirror), take over the keys the old server held (trust.Repo's
// TakeOver and Rotate, with the root keys of the trust dir), and say
// what clients need to change.
//
// A run, top to bottom: mirror every repository; for each one copied or
// unchanged, list what the old server still holds and rotate it to this
// server's keys in one root version; then the client advice.
package migrate

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-project/signet/internal/publish"
	"github.com/signet-project/signet/trust/mirror"
)

// Options configure a migration.
type Options struct {
	// Mirror copies the trust data; its Sink must be the signet trust
	// server at To.
	Mirror mirror.Options
	// To is the signet trust server's URL.
	To string
	// Publish reaches To with the trust dir holding the root keys.
	Publish publish.Config
}

// Result is one repository's migration.
type Result struct {
	Mirror mirror.Result
	// Rotated are the roles moved to the new server's keys, with the
	// root version naming them; TakenOver is true when nothing is left
	// on the old server (rotated now or before).
	Rotated     map[string]string
	RootVersion int
	TakenOver   bool
	// Err says why the take-over failed (the mirror's own error is in
	// Mirror.Err).
	Err error
	// Clients says what clients need to change.
	Clients string
}

// Run mirrors, takes over and advises, repository by repository. A
// failure of one repository does not stop the others.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	rep, err := mirror.Run(ctx, opts.Mirror)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(rep.Results))
	for _, mr := range rep.Results {
		res := Result{Mirror: mr, Clients: clientAdvice(mr.GUN, opts.To)}
		if mr.Outcome != mirror.Failed {
			res.Rotated, res.RootVersion, res.Err = takeOver(ctx, opts, mr.GUN)
			res.TakenOver = res.Err == nil
		}
		out = append(out, res)
	}
	return out, nil
}

// takeOver rotates what the old server still holds.
func takeOver(ctx context.Context, opts Options, gun string) (map[string]string, int, error) {
	repo, err := name.NewRepository(gun)
	if err != nil {
		return nil, 0, fmt.Errorf("take over %s: %w", gun, err)
	}
	c := opts.Publish
	c.Server = opts.To
	r, err := publish.OpenRepo(ctx, c, repo)
	if err != nil {
		return nil, 0, err
	}
	rots, err := r.TakeOver(ctx)
	if err != nil {
		return nil, 0, err
	}
	if len(rots) == 0 {
		return nil, 0, nil
	}
	res, err := r.Rotate(ctx, rots)
	if err != nil {
		return nil, 0, fmt.Errorf("take over %s: %w (the trust data is mirrored; a proxy can serve it in archive mode until then)", gun, err)
	}
	return res.Keys, res.RootVersion, nil
}

// clientAdvice says what docker and signet clients need to read gun's
// trust data from the new server.
func clientAdvice(gun, to string) string {
	u, err := url.Parse(to)
	if err != nil {
		return "point clients' trust server at " + to
	}
	host := strings.SplitN(gun, "/", 2)[0]
	// docker's default trust server: notary.docker.io for Docker Hub,
	// else https://<registry>.
	def := "https://" + host
	if host == "docker.io" {
		def = publish.DockerHubTrustServer
	}
	if strings.TrimSuffix(to, "/") == def || (u.Scheme == "https" && u.Host == host) {
		return "nothing: " + to + " is already docker's default trust server for " + gun + "; clients holding the old root follow the rotation"
	}
	return "set DOCKER_CONTENT_TRUST_SERVER=" + to + " (docker), SIGNET_TRUST_SERVER or --trust-server (signet), trust_server in the proxy's policy rule; clients holding the old root follow the rotation"
}
