package publish

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-project/signet/trust"
)

// TrustCredentials picks credentials for a trust server: the flags, else
// SIGNET_TRUST_USERNAME / SIGNET_TRUST_PASSWORD, else what the Docker
// config (or its credential helper) holds for the trust server's host.
func TrustCredentials(server, user, password string, getenv func(string) string, kc authn.Keychain) (trust.Credentials, error) {
	if user == "" {
		user, password = getenv("SIGNET_TRUST_USERNAME"), getenv("SIGNET_TRUST_PASSWORD")
	}
	if user != "" {
		if password == "" {
			return trust.Credentials{}, fmt.Errorf("trust server user %q has no password: set SIGNET_TRUST_PASSWORD or --trust-password-stdin", user)
		}
		return trust.Credentials{Username: user, Password: password}, nil
	}
	if kc == nil || server == "" {
		return trust.Credentials{}, nil
	}
	u, err := trust.CheckServerURL(server)
	if err != nil {
		return trust.Credentials{}, err
	}
	reg, err := name.NewRegistry(u.Host)
	if err != nil {
		return trust.Credentials{}, nil
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return trust.Credentials{}, fmt.Errorf("read docker credentials for %s: %w", u.Host, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		return trust.Credentials{}, fmt.Errorf("read docker credentials for %s: %w", u.Host, err)
	}
	return trust.Credentials{Username: cfg.Username, Password: cfg.Password}, nil
}
