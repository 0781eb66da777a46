package proxy

import "strings"

// repoRef is a request resolved to an upstream, a policy rule and a GUN.
type repoRef struct {
	up   *upstream
	repo string // repository in the upstream
	gun  string
	rule Rule
}

func (p *Proxy) resolve(req request) (repoRef, error) {
	up, repo, gun, ok := p.ups.route(req.name)
	if !ok {
		return repoRef{}, &denial{image: req.name, reason: "no upstream serves this name"}
	}
	rule, ok := p.policy.match(gun)
	if !ok {
		return repoRef{}, &denial{image: gun, reason: "no policy rule matches this repository"}
	}
	return repoRef{up: up, repo: repo, gun: gun, rule: rule}, nil
}

// upstreams routes a client's repository name to an upstream.
type upstreams struct {
	list     []*upstream
	fallback *upstream
}

// route returns the upstream, the repository in it and the GUN.
func (us upstreams) route(nameInProxy string) (*upstream, string, string, bool) {
	for _, u := range us.list {
		if rest, ok := strings.CutPrefix(nameInProxy, u.Prefix+"/"); ok && rest != "" {
			return u, rest, u.gunHost + "/" + rest, true
		}
	}
	if us.fallback != nil {
		return us.fallback, nameInProxy, us.fallback.gunHost + "/" + nameInProxy, true
	}
	return nil, "", "", false
}
