package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"

	"github.com/signet-project/signet/registry"
	"github.com/signet-project/signet/trust"
)

// maxPublicKeyBytes caps a public key or certificate file.
const maxPublicKeyBytes = 64 << 10

// Outcome is what a change did to one repository.
type Outcome struct {
	Image string
	trust.EditResult
	Err error
}

// SignerAdd adds signer name with keys (PEM files of public keys or
// certificates, or IDs of keys in the trust dir) to each image's
// repository, as `docker trust signer add` does. Like docker, it goes on
// with the next repository after a failure; err says which failed.
func SignerAdd(ctx context.Context, c Config, name string, keyRefs, images []string) ([]Outcome, error) {
	if _, err := trust.SignerRole(name); err != nil {
		return nil, err
	}
	if len(keyRefs) == 0 {
		return nil, fmt.Errorf("add signer %s: pass its public key (--key)", name)
	}
	return eachRepo(ctx, c, "add signer "+name+" to", images, func(t *trust.Repo) (trust.EditResult, error) {
		keys, err := publicKeys(t, keyRefs)
		if err != nil {
			return trust.EditResult{}, err
		}
		return t.AddSigner(ctx, name, keys)
	})
}

// SignerRemove removes signer name from each image's repository, as
// `docker trust signer remove` does; removing the last key of a
// targets/releases that signs tags needs yes.
func SignerRemove(ctx context.Context, c Config, name string, images []string, yes bool) ([]Outcome, error) {
	if _, err := trust.SignerRole(name); err != nil {
		return nil, err
	}
	return eachRepo(ctx, c, "remove signer "+name+" from", images, func(t *trust.Repo) (trust.EditResult, error) {
		return t.RemoveSigner(ctx, name, yes)
	})
}

// SignerRotate replaces the keys of signer name in image's repository,
// keeping its signed tags valid (see trust.Repo.RotateSigner).
func SignerRotate(ctx context.Context, c Config, name string, keyRefs []string, image string) (trust.EditResult, error) {
	if _, err := trust.SignerRole(name); err != nil {
		return trust.EditResult{}, err
	}
	if len(keyRefs) == 0 {
		return trust.EditResult{}, fmt.Errorf("rotate signer %s: pass its new public key (--key)", name)
	}
	t, err := c.openUntagged(ctx, image)
	if err != nil {
		return trust.EditResult{}, err
	}
	keys, err := publicKeys(t, keyRefs)
	if err != nil {
		return trust.EditResult{}, err
	}
	return t.RotateSigner(ctx, name, keys)
}

// DelegationAdd adds keys and paths to a delegation of image's
// repository, creating it if needed, and sets its threshold if > 0.
func DelegationAdd(ctx context.Context, c Config, image, role string, keyRefs []string, threshold int, paths []string) (trust.EditResult, error) {
	if err := trust.CheckDelegationRole(role); err != nil {
		return trust.EditResult{}, err
	}
	t, err := c.openUntagged(ctx, image)
	if err != nil {
		return trust.EditResult{}, err
	}
	keys, err := publicKeys(t, keyRefs)
	if err != nil {
		return trust.EditResult{}, err
	}
	return t.AddDelegation(ctx, role, keys, threshold, paths)
}

// DelegationRemove removes keys (PEM files, key IDs or ID prefixes) and
// paths from a delegation, or the whole delegation when neither is given.
func DelegationRemove(ctx context.Context, c Config, image, role string, keyRefs, paths []string, yes bool) (trust.EditResult, error) {
	if err := trust.CheckDelegationRole(role); err != nil {
		return trust.EditResult{}, err
	}
	t, err := c.openUntagged(ctx, image)
	if err != nil {
		return trust.EditResult{}, err
	}
	ids := make([]string, 0, len(keyRefs))
	for _, ref := range keyRefs {
		k, err := pemKey(ref)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ids = append(ids, ref)
		case err != nil:
			return trust.EditResult{}, err
		default:
			ids = append(ids, k.ID())
		}
	}
	return t.RemoveDelegation(ctx, role, ids, paths, yes)
}

// DelegationList lists the delegations of image's repository, from trust
// data the engine verified.
func DelegationList(ctx context.Context, c Config, image string) (gun string, _ []trust.Delegation, _ error) {
	repo, err := untaggedRepo(image)
	if err != nil {
		return "", nil, err
	}
	res, gun, err := c.read(ctx, repo, true)
	if err != nil {
		return gun, nil, err
	}
	return gun, trust.Delegations(res), nil
}

// RotateTargets replaces the repository (targets) keys of image's
// repository with a new key in the trust dir, or keyIDs (k of them must
// sign; 0 for 1), and signs the current targets again with them (see
// trust.Repo.RotateTargets).
func RotateTargets(ctx context.Context, c Config, image string, keyIDs []string, k int) (gun string, res trust.TargetsRotation, err error) {
	t, err := c.openUntagged(ctx, image)
	if err != nil {
		return "", res, err
	}
	res, err = t.RotateTargets(ctx, keyIDs, k)
	return t.GUN(), res, err
}

// eachRepo runs change on each image's repository and goes on after a
// failure, as docker's signer commands do.
func eachRepo(ctx context.Context, c Config, doing string, images []string, change func(*trust.Repo) (trust.EditResult, error)) ([]Outcome, error) {
	var out []Outcome
	var failed []string
	for _, image := range images {
		o := Outcome{Image: image}
		t, err := c.openUntagged(ctx, image)
		if err == nil {
			o.EditResult, err = change(t)
		}
		if err != nil {
			o.Err = err
			failed = append(failed, image+": "+err.Error())
		}
		out = append(out, o)
	}
	switch {
	case len(failed) == 0:
		return out, nil
	case len(images) == 1:
		return out, out[0].Err
	}
	return out, fmt.Errorf("%s %d of %d repositories failed: %s", doing, len(failed), len(images), strings.Join(failed, "; "))
}

// untaggedRepo parses IMAGE, which must not name a tag or digest.
func untaggedRepo(image string) (name.Repository, error) {
	repoName, tagName := splitTag(image)
	if tagName != "" {
		return name.Repository{}, fmt.Errorf("%s: name a repository without a tag", image)
	}
	return registry.ParseRepository(repoName)
}

// openUntagged opens image's repository for changes.
func (c Config) openUntagged(ctx context.Context, image string) (*trust.Repo, error) {
	repo, err := untaggedRepo(image)
	if err != nil {
		return nil, err
	}
	return c.open(ctx, repo, "push", "pull")
}

// keyIDPattern is a key ID as signet and notary print them.
var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// publicKeys reads each ref as a PEM file (a public key, as `docker
// trust key generate` writes NAME.pub, or a certificate), or else as the
// ID of a key the trust dir holds.
func publicKeys(t *trust.Repo, refs []string) ([]data.PublicKey, error) {
	var out []data.PublicKey
	for _, ref := range refs {
		k, err := pemKey(ref)
		switch {
		case errors.Is(err, fs.ErrNotExist) && keyIDPattern.MatchString(ref):
			if k, err = t.PublicKey(ref); err != nil {
				return nil, err
			}
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("public key %s: no such file: pass a PEM file of the public key (or certificate), or the ID of a key in the trust dir", ref)
		case err != nil:
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// pemKey reads a PEM public key or certificate file; a missing file is
// fs.ErrNotExist.
func pemKey(path string) (data.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read public key %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPublicKeyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", path, err)
	}
	if len(b) > maxPublicKeyBytes {
		return nil, fmt.Errorf("read public key %s: larger than %d bytes: pass a PEM public key or certificate", path, maxPublicKeyBytes)
	}
	k, err := utils.ParsePEMPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %v: pass a PEM public key or certificate (docker trust key generate writes NAME.pub)", path, err)
	}
	return k, nil
}
