package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/utils"
)

// MinKeyPassphraseLen is the shortest passphrase accepted for encrypting
// server-managed keys at rest.
const MinKeyPassphraseLen = 12

// keyStore keeps the server-managed (timestamp, snapshot) private keys in
// the database, each as an encrypted PKCS#8 PEM (PBES2), the format of
// Docker trust key files. It implements notary's trustmanager.KeyStore so
// notary's cryptoservice signs with it. Keys live in the database rather
// than on one replica's disk, so every replica sharing a PostgreSQL
// database signs with the same keys.
type keyStore struct {
	store      *Store
	db         *sql.DB
	passphrase string
	now        func() (t sql.NullTime)

	mu    sync.Mutex
	cache map[string]cachedKey // decrypted keys, by ID
}

type cachedKey struct {
	key  data.PrivateKey
	info trustmanager.KeyInfo
}

var _ trustmanager.KeyStore = (*keyStore)(nil)

func newKeyStore(ctx context.Context, s *Store, passphrase string) (*keyStore, error) {
	if len(passphrase) < MinKeyPassphraseLen {
		return nil, fmt.Errorf("server key passphrase is %d characters: use at least %d", len(passphrase), MinKeyPassphraseLen)
	}
	ks := &keyStore{store: s, db: s.db, passphrase: passphrase, cache: map[string]cachedKey{}}
	ks.now = func() sql.NullTime { return sql.NullTime{Time: s.now().UTC(), Valid: true} }
	// Fail at start, not at the first publish, if the passphrase cannot
	// decrypt the keys already stored.
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT key_id FROM signet_server_keys LIMIT 1`).Scan(&id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read server keys: %w", err)
	default:
		if _, _, err := ks.GetKey(id); err != nil {
			return nil, fmt.Errorf("decrypt server key %s: wrong passphrase? set SIGNET_SERVER_KEY_PASSPHRASE to the one the keys were created with: %w", id, err)
		}
	}
	return ks, nil
}

// Name names the store in notary's messages.
func (ks *keyStore) Name() string { return "signet server database" }

// AddKey encrypts and stores a key; adding an existing key succeeds.
func (ks *keyStore) AddKey(info trustmanager.KeyInfo, key data.PrivateKey) error {
	pemBytes, err := utils.ConvertPrivateKeyToPKCS8(key, info.Role, info.Gun, ks.passphrase)
	if err != nil {
		return fmt.Errorf("encrypt %s key for %q: %w", info.Role, info.Gun, err)
	}
	_, err = ks.db.Exec(`INSERT INTO signet_server_keys (key_id, gun, role, encrypted_pem, created_at) VALUES ($1, $2, $3, $4, $5)`,
		key.ID(), info.Gun.String(), info.Role.String(), pemBytes, ks.now())
	if err != nil && !isUniqueViolation(err) {
		return fmt.Errorf("store %s key for %q: %w", info.Role, info.Gun, err)
	}
	ks.mu.Lock()
	ks.cache[key.ID()] = cachedKey{key: key, info: info}
	ks.mu.Unlock()
	return nil
}

// GetKey returns a decrypted key and its role.
func (ks *keyStore) GetKey(keyID string) (data.PrivateKey, data.RoleName, error) {
	ks.mu.Lock()
	c, ok := ks.cache[keyID]
	ks.mu.Unlock()
	if ok {
		return c.key, c.info.Role, nil
	}
	var (
		gun, role string
		pemBytes  []byte
	)
	err := ks.db.QueryRow(`SELECT gun, role, encrypted_pem FROM signet_server_keys WHERE key_id = $1`, keyID).Scan(&gun, &role, &pemBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", trustmanager.ErrKeyNotFound{KeyID: keyID}
	}
	if err != nil {
		return nil, "", fmt.Errorf("read server key %s: %w", keyID, err)
	}
	key, err := utils.ParsePEMPrivateKey(pemBytes, ks.passphrase)
	if err != nil {
		return nil, "", fmt.Errorf("decrypt server key %s: %w", keyID, err)
	}
	info := trustmanager.KeyInfo{Gun: data.GUN(gun), Role: data.RoleName(role)}
	ks.mu.Lock()
	ks.cache[keyID] = cachedKey{key: key, info: info}
	ks.mu.Unlock()
	return key, info.Role, nil
}

// GetKeyInfo returns the role and GUN of a key.
func (ks *keyStore) GetKeyInfo(keyID string) (trustmanager.KeyInfo, error) {
	var gun, role string
	err := ks.db.QueryRow(`SELECT gun, role FROM signet_server_keys WHERE key_id = $1`, keyID).Scan(&gun, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return trustmanager.KeyInfo{}, trustmanager.ErrKeyNotFound{KeyID: keyID}
	}
	if err != nil {
		return trustmanager.KeyInfo{}, fmt.Errorf("read server key %s: %w", keyID, err)
	}
	return trustmanager.KeyInfo{Gun: data.GUN(gun), Role: data.RoleName(role)}, nil
}

// ListKeys lists every stored key.
func (ks *keyStore) ListKeys() map[string]trustmanager.KeyInfo {
	out := map[string]trustmanager.KeyInfo{}
	rows, err := ks.db.Query(`SELECT key_id, gun, role FROM signet_server_keys`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var id, gun, role string
		if rows.Scan(&id, &gun, &role) == nil {
			out[id] = trustmanager.KeyInfo{Gun: data.GUN(gun), Role: data.RoleName(role)}
		}
	}
	return out
}

// newestKey returns the ID of the most recently created key for a role of
// a GUN, or "" if there is none.
func (ks *keyStore) newestKey(gun data.GUN, role data.RoleName) (string, error) {
	var id string
	err := ks.db.QueryRow(`SELECT key_id FROM signet_server_keys WHERE gun = $1 AND role = $2 ORDER BY created_at DESC LIMIT 1`,
		gun.String(), role.String()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s keys of %q: %w", role, gun, err)
	}
	return id, nil
}

// newestOrCreate returns the ID of the newest key for a role of a GUN,
// creating one (of algorithm algo) if there is none. Replicas that ask at
// the same moment get the same key: the check and the insert run in one
// transaction under a lock per GUN and role (a PostgreSQL advisory lock;
// on SQLite the write lock taken at BEGIN), so a loser finds the winner's
// key and drops the one it made.
func (ks *keyStore) newestOrCreate(ctx context.Context, gun data.GUN, role data.RoleName, algo string) (string, error) {
	if id, err := ks.newestKey(gun, role); err != nil || id != "" {
		return id, err
	}
	// Make and encrypt the key before taking the lock, to hold it briefly.
	key, err := utils.GenerateKey(algo)
	if err != nil {
		return "", fmt.Errorf("generate %s key for %q: %w", role, gun, err)
	}
	pemBytes, err := utils.ConvertPrivateKeyToPKCS8(key, role, gun, ks.passphrase)
	if err != nil {
		return "", fmt.Errorf("encrypt %s key for %q: %w", role, gun, err)
	}
	tx, err := ks.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("begin storing %s key for %q: %w", role, gun, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := ks.store.lock(ctx, tx, lockKey("signet_server_keys", gun.String(), role.String())); err != nil {
		return "", fmt.Errorf("store %s key for %q: %w", role, gun, err)
	}
	var id string
	err = tx.QueryRowContext(ctx, `SELECT key_id FROM signet_server_keys WHERE gun = $1 AND role = $2 ORDER BY created_at DESC LIMIT 1`,
		gun.String(), role.String()).Scan(&id)
	switch {
	case err == nil:
		return id, nil // another replica made it first
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("read %s keys of %q: %w", role, gun, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO signet_server_keys (key_id, gun, role, encrypted_pem, created_at) VALUES ($1, $2, $3, $4, $5)`,
		key.ID(), gun.String(), role.String(), pemBytes, ks.now())
	if err != nil {
		return "", fmt.Errorf("store %s key for %q: %w", role, gun, err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("store %s key for %q: %w", role, gun, err)
	}
	ks.mu.Lock()
	ks.cache[key.ID()] = cachedKey{key: key, info: trustmanager.KeyInfo{Gun: gun, Role: role}}
	ks.mu.Unlock()
	return key.ID(), nil
}

// RemoveKey deletes a key.
func (ks *keyStore) RemoveKey(keyID string) error {
	if _, err := ks.db.Exec(`DELETE FROM signet_server_keys WHERE key_id = $1`, keyID); err != nil {
		return fmt.Errorf("remove server key %s: %w", keyID, err)
	}
	ks.mu.Lock()
	delete(ks.cache, keyID)
	ks.mu.Unlock()
	return nil
}

// removeGUN deletes every server key of a GUN.
func (ks *keyStore) removeGUN(gun data.GUN) error {
	if _, err := ks.db.Exec(`DELETE FROM signet_server_keys WHERE gun = $1`, gun.String()); err != nil {
		return fmt.Errorf("remove server keys of %q: %w", gun, err)
	}
	ks.mu.Lock()
	for id, c := range ks.cache {
		if c.info.Gun == gun {
			delete(ks.cache, id)
		}
	}
	ks.mu.Unlock()
	return nil
}
