// Package keys holds signet's key handling: passphrases for the encrypted
// key files of a Docker/Notary trust dir (<trust dir>/private/<id>.key).
package keys

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/theupdateframework/notary"
	"github.com/theupdateframework/notary/tuf/data"
)

// MinPassphraseLen is the shortest passphrase accepted for a new key
// (notary's and docker's minimum).
const MinPassphraseLen = 8

// Passphrase sources, by kind of key: signet's own variable first, then
// the names Docker Content Trust and the notary CLI users already set.
var (
	RootEnv       = []string{"SIGNET_ROOT_PASSPHRASE", "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "NOTARY_ROOT_PASSPHRASE"}
	RepositoryEnv = []string{"SIGNET_REPOSITORY_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "NOTARY_TARGETS_PASSPHRASE"}
	SnapshotEnv   = []string{"SIGNET_REPOSITORY_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "NOTARY_SNAPSHOT_PASSPHRASE"}
	DelegationEnv = []string{"SIGNET_DELEGATION_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "NOTARY_DELEGATION_PASSPHRASE"}
)

// EnvFor returns the environment variables consulted, in order, for the
// key of a role ("root", "targets", "snapshot", a delegation
// "targets/<name>", or docker's "delegation").
func EnvFor(role string) []string {
	switch {
	case role == data.CanonicalRootRole.String():
		return RootEnv
	case role == data.CanonicalSnapshotRole.String():
		return SnapshotEnv
	case role == "delegation" || data.IsDelegation(data.RoleName(role)):
		return DelegationEnv
	default:
		return RepositoryEnv
	}
}

// Prompt asks a person for a passphrase. confirm asks twice (for a new
// key). It returns an error if no one can be asked (no terminal).
type Prompt func(question string, confirm bool) (string, error)

// ErrNoPrompt is returned by a Prompt when there is no terminal.
var ErrNoPrompt = errors.New("no terminal to ask for a passphrase")

// Retriever produces passphrases for notary's key store: from the
// environment, else from the prompt. It gives up, with an error saying
// which variable to set or fix, instead of looping on a wrong passphrase.
type Retriever struct {
	// Getenv reads the environment (os.Getenv in the CLI).
	Getenv func(string) string
	// Prompt asks a person; nil means nobody can be asked.
	Prompt Prompt
	// MaxPromptAttempts bounds prompts for one key (default 3).
	MaxPromptAttempts int

	mu      sync.Mutex
	lastErr error
}

// Err returns why the retriever last gave up, or nil. notary replaces the
// retriever's error with its own ("password invalid"); callers use this
// to report the real reason.
func (r *Retriever) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Retriever) fail(err error) (string, bool, error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return "", true, err
}

// PassRetriever adapts r to notary's callback.
func (r *Retriever) PassRetriever() notary.PassRetriever {
	return r.retrieve
}

func (r *Retriever) retrieve(keyName, alias string, createNew bool, attempts int) (string, bool, error) {
	names := EnvFor(alias)
	keyDesc := describeKey(alias, keyName)
	for _, name := range names {
		v := ""
		if r.Getenv != nil {
			v = r.Getenv(name)
		}
		if v == "" {
			continue
		}
		if attempts > 0 {
			return r.fail(fmt.Errorf("the passphrase in %s does not decrypt the %s: set %s to that key's passphrase", name, keyDesc, name))
		}
		if createNew && len(v) < MinPassphraseLen {
			return r.fail(fmt.Errorf("the passphrase in %s is %d characters: a new key needs at least %d", name, len(v), MinPassphraseLen))
		}
		return v, false, nil
	}
	if r.Prompt == nil {
		return r.fail(fmt.Errorf("no passphrase for the %s and no terminal to ask: set %s", keyDesc, names[0]))
	}
	max := r.MaxPromptAttempts
	if max <= 0 {
		max = 3
	}
	if attempts >= max {
		return r.fail(fmt.Errorf("wrong passphrase for the %s %d times: giving up", keyDesc, attempts))
	}
	q := fmt.Sprintf("Enter passphrase for the %s: ", keyDesc)
	if createNew {
		q = fmt.Sprintf("Enter a passphrase for the new %s (at least %d characters): ", keyDesc, MinPassphraseLen)
	}
	if attempts > 0 {
		q = "Wrong passphrase. " + q
	}
	for {
		v, err := r.Prompt(q, createNew)
		if errors.Is(err, ErrNoPrompt) {
			return r.fail(fmt.Errorf("no passphrase for the %s and no terminal to ask: set %s", keyDesc, names[0]))
		}
		if err != nil {
			return r.fail(fmt.Errorf("read passphrase for the %s: %w", keyDesc, err))
		}
		if createNew && len(v) < MinPassphraseLen {
			q = fmt.Sprintf("Too short. Enter at least %d characters for the new %s: ", MinPassphraseLen, keyDesc)
			continue
		}
		return v, false, nil
	}
}

func describeKey(alias, keyName string) string {
	id := keyName
	if i := strings.LastIndex(id, "/"); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 7 {
		id = id[:7]
	}
	kind := alias + " key"
	switch {
	case alias == data.CanonicalTargetsRole.String():
		kind = "repository (targets) key"
	case alias == "" || alias == "delegation":
		kind = "signer key"
	case data.IsDelegation(data.RoleName(alias)):
		kind = "signer key for " + alias
	}
	if id != "" {
		return fmt.Sprintf("%s %s", kind, id)
	}
	return kind
}
