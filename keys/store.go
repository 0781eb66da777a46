package keys

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"
)

// MaxKeyFileBytes caps a key file read for import.
const MaxKeyFileBytes = 64 << 10

// Store is the encrypted key files of a trust dir (<dir>/private/<id>.key),
// the layout of ~/.docker/trust and ~/.notary: PKCS#8 PEM encrypted with
// PBES2, headers role and (for repository keys) gun, files 0600 in 0700
// folders.
type Store struct {
	dir string
	r   *Retriever
	ks  *trustmanager.GenericKeyStore
	cs  *cryptoservice.CryptoService
}

// Open opens (and creates) the key store of a trust dir. A key file it
// cannot read is an error naming the file (see CheckFiles).
func Open(trustDir string, r *Retriever) (*Store, error) {
	if trustDir == "" {
		return nil, errors.New("open key store: no trust dir")
	}
	if r == nil {
		r = &Retriever{}
	}
	// notary's store skips (and logs) key files it cannot read; signet
	// refuses them.
	if err := CheckFiles(trustDir); err != nil {
		return nil, err
	}
	ks, err := trustmanager.NewKeyFileStore(trustDir, r.PassRetriever())
	if err != nil {
		return nil, fmt.Errorf("open key store in %q: %w", trustDir, err)
	}
	return &Store{dir: trustDir, r: r, ks: ks, cs: cryptoservice.NewCryptoService(ks)}, nil
}

// Info describes a stored key.
type Info struct {
	ID   string
	Role string
	GUN  string
	// Location is where the key lives: a file path.
	Location string
}

func (s *Store) path(id string) string {
	return filepath.Join(s.dir, "private", id+".key")
}

// List returns the keys, root first, then by role, GUN and ID.
func (s *Store) List() []Info {
	var out []Info
	for id, ki := range s.ks.ListKeys() {
		out = append(out, Info{ID: id, Role: ki.Role.String(), GUN: ki.Gun.String(), Location: s.path(id)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Role == "root") != (b.Role == "root") {
			return a.Role == "root"
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		if a.GUN != b.GUN {
			return a.GUN < b.GUN
		}
		return a.ID < b.ID
	})
	return out
}

// checkRoleGUN applies notary's rules: root and delegation keys have no
// GUN; targets and snapshot keys need one.
func checkRoleGUN(role, gun string) (string, error) {
	switch data.RoleName(role) {
	case data.CanonicalRootRole:
		return "", nil
	case data.CanonicalTargetsRole, data.CanonicalSnapshotRole:
		if gun == "" {
			return "", fmt.Errorf("a %s key belongs to one repository: pass --gun", role)
		}
		return gun, nil
	case data.CanonicalTimestampRole:
		return "", errors.New("timestamp keys are held by the trust server")
	}
	if role == "" {
		return "", errors.New("no role for the key: pass --role (root, targets, targets/<name>)")
	}
	return "", nil
}

// Generate makes a key for role (and gun) with algorithm "ecdsa" (the
// default) or "ed25519", encrypted with the passphrase for that role.
func (s *Store) Generate(role, gun, algorithm string) (Info, error) {
	gun, err := checkRoleGUN(role, gun)
	if err != nil {
		return Info{}, err
	}
	switch algorithm {
	case "":
		algorithm = data.ECDSAKey
	case data.ECDSAKey, data.ED25519Key:
	default:
		return Info{}, fmt.Errorf("key algorithm %q: use ecdsa or ed25519", algorithm)
	}
	pub, err := s.cs.Create(data.RoleName(role), data.GUN(gun), algorithm)
	if err != nil {
		return Info{}, s.wrap("generate "+role+" key", err)
	}
	return Info{ID: pub.ID(), Role: role, GUN: gun, Location: s.path(pub.ID())}, nil
}

// Import reads one private key in PEM (files written by notary, by
// `docker trust key generate`, or plain PKCS#8 / EC / RSA keys) and stores
// it encrypted. role and gun override the PEM's headers. An encrypted key
// is decrypted with the passphrase for its role.
func (s *Store) Import(pemBytes []byte, role, gun string) (Info, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return Info{}, errors.New("import key: no PEM block found")
	}
	if role == "" {
		role = block.Headers["role"]
	}
	if gun == "" {
		gun = block.Headers["gun"]
	}
	gun, err := checkRoleGUN(role, gun)
	if err != nil {
		return Info{}, fmt.Errorf("import key: %w", err)
	}
	var key data.PrivateKey
	if strings.Contains(block.Type, "ENCRYPTED") {
		key, _, err = trustmanager.GetPasswdDecryptBytes(s.r.PassRetriever(), pemBytes, "", role)
		if err != nil {
			if perr := s.r.Err(); perr != nil {
				err = perr
			}
			return Info{}, fmt.Errorf("import key: decrypt: %w", err)
		}
	} else if key, err = utils.ParsePEMPrivateKey(pemBytes, ""); err != nil {
		return Info{}, fmt.Errorf("import key: %w", err)
	}
	if err := s.ks.AddKey(trustmanager.KeyInfo{Role: data.RoleName(role), Gun: data.GUN(gun)}, key); err != nil {
		return Info{}, s.wrap("import key", err)
	}
	return Info{ID: key.ID(), Role: role, GUN: gun, Location: s.path(key.ID())}, nil
}

// Export returns a key's file: encrypted PEM with its role and gun headers
// and a path header, as `notary key import` expects.
func (s *Store) Export(id string) ([]byte, error) {
	if _, err := s.ks.GetKeyInfo(id); err != nil {
		return nil, fmt.Errorf("export key %s: no such key in %s", id, s.dir)
	}
	raw, err := os.ReadFile(s.path(id))
	if err != nil {
		return nil, fmt.Errorf("export key %s: %w", id, err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || !strings.Contains(block.Type, "ENCRYPTED") {
		return nil, fmt.Errorf("export key %s: the key file is not an encrypted PEM", id)
	}
	if block.Headers == nil {
		block.Headers = map[string]string{}
	}
	block.Headers["path"] = id
	return pem.EncodeToMemory(block), nil
}

// PublicPEM decrypts a key (the public half is not stored apart) and
// returns its public key as PEM ("PUBLIC KEY", with a role header), the
// form signer add, delegation add and ceremony prepare --targets-key
// read; the key ID stays the same.
func (s *Store) PublicPEM(id string) ([]byte, error) {
	info, err := s.ks.GetKeyInfo(id)
	if err != nil {
		return nil, fmt.Errorf("key %s: no such key in %s", id, s.dir)
	}
	priv, err := s.Private(id)
	if err != nil {
		return nil, err
	}
	pub := data.PublicKeyFromPrivate(priv)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"role": info.Role.String()}, Bytes: pub.Public()}), nil
}

// Private decrypts and returns a key (for copying it to a YubiKey).
func (s *Store) Private(id string) (data.PrivateKey, error) {
	if _, err := s.ks.GetKeyInfo(id); err != nil {
		return nil, fmt.Errorf("key %s: no such key in %s", id, s.dir)
	}
	k, _, err := s.ks.GetKey(id)
	if err != nil {
		return nil, s.wrap("unlock key "+id, err)
	}
	return k, nil
}

// Remove deletes a key.
func (s *Store) Remove(id string) error {
	if _, err := s.ks.GetKeyInfo(id); err != nil {
		return fmt.Errorf("remove key %s: no such key in %s", id, s.dir)
	}
	if err := s.ks.RemoveKey(id); err != nil {
		return fmt.Errorf("remove key %s: %w", id, err)
	}
	return nil
}

// Passwd re-encrypts a key with a new passphrase (at least
// MinPassphraseLen characters), after decrypting it with the current one.
func (s *Store) Passwd(id, newPassphrase string) error {
	if len(newPassphrase) < MinPassphraseLen {
		return fmt.Errorf("new passphrase is %d characters: use at least %d", len(newPassphrase), MinPassphraseLen)
	}
	ki, err := s.ks.GetKeyInfo(id)
	if err != nil {
		return fmt.Errorf("change passphrase of key %s: no such key in %s", id, s.dir)
	}
	key, _, err := s.ks.GetKey(id)
	if err != nil {
		return s.wrap("change passphrase of key "+id, err)
	}
	pemBytes, err := utils.ConvertPrivateKeyToPKCS8(key, ki.Role, ki.Gun, newPassphrase)
	if err != nil {
		return fmt.Errorf("change passphrase of key %s: %w", id, err)
	}
	tmp := s.path(id) + ".tmp"
	if err := os.WriteFile(tmp, pemBytes, 0o600); err != nil {
		return fmt.Errorf("change passphrase of key %s: %w", id, err)
	}
	if err := os.Rename(tmp, s.path(id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("change passphrase of key %s: %w", id, err)
	}
	return nil
}

func (s *Store) wrap(doing string, err error) error {
	var pw trustmanager.ErrPasswordInvalid
	var ae trustmanager.ErrAttemptsExceeded
	if (errors.As(err, &pw) || errors.As(err, &ae)) && s.r.Err() != nil {
		return fmt.Errorf("%s: %w", doing, s.r.Err())
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Signer-key variables for pipelines that keep no key files: the PEM
// (base64-encoded, or a path to it), decrypted with the passphrase for
// its role.
const (
	SignerKeyEnv     = "SIGNET_SIGNER_KEY"
	SignerKeyFileEnv = "SIGNET_SIGNER_KEY_FILE"
)

// EnvKey is a private key handed in through the environment.
type EnvKey struct {
	Key  data.PrivateKey
	Role string
	GUN  string
}

// FromEnv reads the signer key from SIGNET_SIGNER_KEY (base64 of the PEM)
// or SIGNET_SIGNER_KEY_FILE (a path). It returns nil when neither is set.
// role applies when the PEM has no role header (default targets/releases).
func FromEnv(getenv func(string) string, r *Retriever, role string) (*EnvKey, error) {
	var raw []byte
	switch {
	case getenv(SignerKeyEnv) != "":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(getenv(SignerKeyEnv)))
		if err != nil {
			return nil, fmt.Errorf("%s is not base64: encode the key file with base64 -w0", SignerKeyEnv)
		}
		raw = b
	case getenv(SignerKeyFileEnv) != "":
		path := getenv(SignerKeyFileEnv)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SignerKeyFileEnv, err)
		}
		if fi.Size() > MaxKeyFileBytes {
			return nil, fmt.Errorf("%s: %s is %d bytes, not a key file", SignerKeyFileEnv, path, fi.Size())
		}
		if raw, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("%s: %w", SignerKeyFileEnv, err)
		}
	default:
		return nil, nil
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("the signer key from %s/%s is not PEM", SignerKeyEnv, SignerKeyFileEnv)
	}
	if h := block.Headers["role"]; h != "" {
		role = h
	}
	if role == "" {
		role = "targets/releases"
	}
	if r == nil {
		r = &Retriever{Getenv: getenv}
	}
	var (
		key data.PrivateKey
		err error
	)
	if strings.Contains(block.Type, "ENCRYPTED") {
		key, _, err = trustmanager.GetPasswdDecryptBytes(r.PassRetriever(), raw, "", role)
		if err != nil {
			if perr := r.Err(); perr != nil {
				err = perr
			}
			return nil, fmt.Errorf("decrypt the signer key from the environment: %w", err)
		}
	} else if key, err = utils.ParsePEMPrivateKey(raw, ""); err != nil {
		return nil, fmt.Errorf("parse the signer key from the environment: %w", err)
	}
	return &EnvKey{Key: key, Role: role, GUN: block.Headers["gun"]}, nil
}
