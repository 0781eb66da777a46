package trust

import (
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/keys"
)

// memKeys holds keys handed in through the environment, decrypted, for
// the life of one command; they are never written to disk.
type memKeys map[string]*keys.EnvKey

var _ trustmanager.KeyStore = memKeys(nil)

func (m memKeys) AddKey(trustmanager.KeyInfo, data.PrivateKey) error {
	return trustmanager.ErrKeyNotFound{} // read-only: new keys go to the trust dir
}

func (m memKeys) GetKey(id string) (data.PrivateKey, data.RoleName, error) {
	if k, ok := m[id]; ok {
		return k.Key, data.RoleName(k.Role), nil
	}
	return nil, "", trustmanager.ErrKeyNotFound{KeyID: id}
}

func (m memKeys) GetKeyInfo(id string) (trustmanager.KeyInfo, error) {
	if k, ok := m[id]; ok {
		return trustmanager.KeyInfo{Role: data.RoleName(k.Role), Gun: data.GUN(k.GUN)}, nil
	}
	return trustmanager.KeyInfo{}, trustmanager.ErrKeyNotFound{KeyID: id}
}

func (m memKeys) ListKeys() map[string]trustmanager.KeyInfo {
	out := map[string]trustmanager.KeyInfo{}
	for id, k := range m {
		out[id] = trustmanager.KeyInfo{Role: data.RoleName(k.Role), Gun: data.GUN(k.GUN)}
	}
	return out
}

func (m memKeys) RemoveKey(id string) error { delete(m, id); return nil }

func (m memKeys) Name() string { return "environment" }
