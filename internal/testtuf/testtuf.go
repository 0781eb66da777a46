// Package testtuf is a Notary v1 trust server for tests whose keys (all
// of them, snapshot and timestamp included) the test holds: it builds
// real TUF metadata with notary's tuf package and serves it from memory,
// so a test can publish honestly and then misbehave as a compromised
// trust server would (bad signatures, expired or rolled-back metadata,
// oversized files, keyless delegations).
package testtuf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"
	"github.com/theupdateframework/notary/tuf/utils"
)

// Server holds one repository's keys and metadata.
type Server struct {
	T    testing.TB
	GUN  string
	CS   *cryptoservice.CryptoService
	Repo *tuf.Repo
	Root data.PublicKey

	mu    sync.Mutex
	files map[string][]byte
	down  bool
	calls int
}

// New makes a repository with root, targets, snapshot and timestamp keys
// (threshold 1) and empty targets. Nothing is served until Publish.
func New(t testing.TB, gun string) *Server {
	t.Helper()
	cs := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("pass")))
	s := &Server{T: t, GUN: gun, CS: cs, files: map[string][]byte{}}
	s.Root = s.CertKey()
	keys := map[data.RoleName]data.PublicKey{}
	for _, r := range []data.RoleName{data.CanonicalTargetsRole, data.CanonicalSnapshotRole, data.CanonicalTimestampRole} {
		k, err := cs.Create(r, data.GUN(gun), data.ECDSAKey)
		if err != nil {
			t.Fatal(err)
		}
		keys[r] = k
	}
	s.Repo = tuf.NewRepo(cs)
	if err := s.Repo.InitRoot(data.NewBaseRole(data.CanonicalRootRole, 1, s.Root),
		data.NewBaseRole(data.CanonicalTimestampRole, 1, keys[data.CanonicalTimestampRole]),
		data.NewBaseRole(data.CanonicalSnapshotRole, 1, keys[data.CanonicalSnapshotRole]),
		data.NewBaseRole(data.CanonicalTargetsRole, 1, keys[data.CanonicalTargetsRole]), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Repo.InitTargets(data.CanonicalTargetsRole); err != nil {
		t.Fatal(err)
	}
	if err := s.Repo.InitSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Repo.InitTimestamp(); err != nil {
		t.Fatal(err)
	}
	return s
}

// CertKey makes a root key as notary does: a self-signed certificate
// with the GUN as common name.
func (s *Server) CertKey() data.PublicKey {
	pub, err := s.CS.Create(data.CanonicalRootRole, data.GUN(s.GUN), data.ECDSAKey)
	if err != nil {
		s.T.Fatal(err)
	}
	priv, _, _ := s.CS.GetPrivateKey(pub.ID())
	cert, err := cryptoservice.GenerateCertificate(priv, data.GUN(s.GUN), time.Now().Add(-time.Hour), time.Now().AddDate(10, 0, 0))
	if err != nil {
		s.T.Fatal(err)
	}
	return data.NewECDSAx509PublicKey(utils.CertToPEM(cert))
}

// RootCertID is the root certificate's key ID, as pins name it.
func (s *Server) RootCertID() string { return s.Root.ID() }

// Digest is the sha256 of content.
func Digest(content string) []byte { d := sha256.Sum256([]byte(content)); return d[:] }

// AddTarget signs content as tag into role (staged until Publish).
func (s *Server) AddTarget(role data.RoleName, tag, content string) {
	s.AddTargetHash(role, tag, Digest(content), int64(len(content)))
}

// AddTargetHash signs a digest and length as tag into role.
func (s *Server) AddTargetHash(role data.RoleName, tag string, sum []byte, length int64) {
	s.T.Helper()
	if _, err := s.Repo.AddTargets(role, data.Files{tag: {Length: length, Hashes: data.Hashes{"sha256": sum}}}); err != nil {
		s.T.Fatal(err)
	}
}

// Delegate delegates role (a direct child of targets) to a new key with
// threshold 1 and paths "", and returns the key.
func (s *Server) Delegate(role data.RoleName) data.PublicKey {
	s.T.Helper()
	k, err := s.CS.Create(role, data.GUN(s.GUN), data.ECDSAKey)
	if err != nil {
		s.T.Fatal(err)
	}
	if err := s.Repo.UpdateDelegationKeys(role, data.KeyList{k}, nil, 1); err != nil {
		s.T.Fatal(err)
	}
	if err := s.Repo.UpdateDelegationPaths(role, []string{""}, nil, false); err != nil {
		s.T.Fatal(err)
	}
	if _, err := s.Repo.InitTargets(role); err != nil {
		s.T.Fatal(err)
	}
	return k
}

// Marshal is canonical JSON, as notary writes metadata.
func Marshal(t testing.TB, v *data.Signed) []byte {
	b, err := canonicaljson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sum is the hex sha256 of b.
func Sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Publish signs roles (root or targets roles), then snapshot and
// timestamp, and serves them.
func (s *Server) Publish(roles ...data.RoleName) {
	s.T.Helper()
	exp := time.Now().AddDate(1, 0, 0)
	for _, r := range roles {
		var sg *data.Signed
		var err error
		if r == data.CanonicalRootRole {
			sg, err = s.Repo.SignRoot(data.DefaultExpires(r), nil)
		} else {
			sg, err = s.Repo.SignTargets(r, exp)
		}
		if err != nil {
			s.T.Fatalf("sign %s: %v", r, err)
		}
		s.Put(r.String(), Marshal(s.T, sg))
	}
	sn, err := s.Repo.SignSnapshot(exp)
	if err != nil {
		s.T.Fatal(err)
	}
	s.Put("snapshot", Marshal(s.T, sn))
	ts, err := s.Repo.SignTimestamp(time.Now().Add(14 * 24 * time.Hour))
	if err != nil {
		s.T.Fatal(err)
	}
	s.Put("timestamp", Marshal(s.T, ts))
}

// Put serves b as role's current file and under its consistent name.
func (s *Server) Put(role string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[role+".json"] = b
	s.files[role+"."+Sum(b)+".json"] = b
	if role == "root" {
		s.files[fmt.Sprintf("%d.root.json", s.Repo.Root.Signed.Version)] = b
	}
}

// SetFile serves b under name exactly (nil removes it).
func (s *Server) SetFile(name string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		delete(s.files, name)
		return
	}
	s.files[name] = b
}

// File returns what is served under name.
func (s *Server) File(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[name]
}

// Files returns the names served.
func (s *Server) Files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.files {
		out = append(out, n)
	}
	return out
}

// ReplaceFiles serves another server's files instead.
func (s *Server) ReplaceFiles(o *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = map[string][]byte{}
	for n, b := range o.files {
		s.files[n] = b
	}
}

// SetDown makes the server fail every request (an outage).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Get returns a file and counts the request; down or missing is false.
func (s *Server) Get(name string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down {
		return nil, false, fmt.Errorf("connection refused")
	}
	b, ok := s.files[name]
	return b, ok, nil
}

// Calls counts requests so far.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// ServeRaw serves b as role, with a snapshot and timestamp signed over
// it by the (compromised) server's own keys: what a trust server that
// holds the snapshot and timestamp keys can do.
func (s *Server) ServeRaw(role data.RoleName, b []byte) {
	t := s.T
	s.Put(role.String(), b)
	s.Repo.Snapshot.AddMeta(role, mustMeta(t, b))
	s.Repo.Snapshot.Signed.Version++
	s.Repo.Snapshot.Signed.Expires = time.Now().AddDate(1, 0, 0)
	sn, err := s.Repo.Snapshot.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	sn.Signatures = nil
	snapRole, _ := s.Repo.GetBaseRole(data.CanonicalSnapshotRole)
	if err := signed.Sign(s.CS, sn, snapRole.ListKeys(), 1, nil); err != nil {
		t.Fatal(err)
	}
	s.Repo.Snapshot.Signatures = sn.Signatures
	snBytes := Marshal(t, sn)
	s.Put("snapshot", snBytes)
	s.Repo.Timestamp.Signed.Meta["snapshot"] = mustMeta(t, snBytes)
	s.Repo.Timestamp.Signed.Version++
	ts, err := s.Repo.Timestamp.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	ts.Signatures = nil
	tsRole, _ := s.Repo.GetBaseRole(data.CanonicalTimestampRole)
	if err := signed.Sign(s.CS, ts, tsRole.ListKeys(), 1, nil); err != nil {
		t.Fatal(err)
	}
	s.Put("timestamp", Marshal(t, ts))
}

// SignWith re-signs role's current staged metadata, version bumped,
// with exactly the given keys (a rogue or too few) and returns the bytes.
func (s *Server) SignWith(role data.RoleName, keys ...data.PublicKey) []byte {
	t := s.T
	tg := s.Repo.Targets[role]
	tg.Signed.Version++
	sg, err := tg.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	sg.Signatures = nil
	if err := signed.Sign(s.CS, sg, keys, len(keys), nil); err != nil {
		t.Fatal(err)
	}
	return Marshal(t, sg)
}

func mustMeta(t testing.TB, b []byte) data.FileMeta {
	m, err := data.NewFileMeta(strings.NewReader(string(b)), data.NotaryDefaultHashes...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ServeHTTP serves the Notary v1 read API for the repository:
// GET /v2/<gun>/_trust/tuf/<name>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/v2/"+s.GUN+"/_trust/tuf/")
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	b, found, err := s.Get(name)
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case !found:
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}
