package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
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

// publisher builds TUF metadata by hand with notary's tuf package, so
// tests can send the server exactly the (bad) updates an attacker would.
type publisher struct {
	t      testing.TB
	client *http.Client
	url    string
	gun    data.GUN
	cs     *cryptoservice.CryptoService
	repo   *tuf.Repo
	root   data.PublicKey
}

func newCryptoService() *cryptoservice.CryptoService {
	return cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever(testPassphrase)))
}

// rootCertKey makes a root key and its self-signed certificate key, as
// root.json lists root keys.
func rootCertKey(t testing.TB, cs *cryptoservice.CryptoService, gun data.GUN) data.PublicKey {
	t.Helper()
	pub, err := cs.Create(data.CanonicalRootRole, gun, data.ECDSAKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := cs.GetPrivateKey(pub.ID())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := cryptoservice.GenerateCertificate(priv, gun, time.Now().Add(-time.Hour), time.Now().AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return data.NewECDSAx509PublicKey(utils.CertToPEM(cert))
}

// get fetches path from the server and fails unless the answer is 200.
func (p *publisher) get(path string) []byte {
	p.t.Helper()
	resp, err := p.client.Get(p.url + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

func (p *publisher) serverKey(role string) data.PublicKey {
	p.t.Helper()
	k, err := data.UnmarshalPublicKey(p.get(fmt.Sprintf("/v2/%s/_trust/tuf/%s.key", p.gun, role)))
	if err != nil {
		p.t.Fatalf("parse %s key: %v", role, err)
	}
	return k
}

// newPublisher prepares root and targets for gun with the server holding
// snapshot and timestamp keys, as docker initialises repositories.
func newPublisher(t testing.TB, url, gun string) *publisher {
	t.Helper()
	return newPublisherClient(t, http.DefaultClient, url, gun)
}

// newPublisherClient is newPublisher talking to the server with client.
func newPublisherClient(t testing.TB, client *http.Client, url, gun string) *publisher {
	t.Helper()
	p := &publisher{t: t, client: client, url: url, gun: data.GUN(gun), cs: newCryptoService()}
	p.root = rootCertKey(t, p.cs, p.gun)
	targets, err := p.cs.Create(data.CanonicalTargetsRole, p.gun, data.ECDSAKey)
	if err != nil {
		t.Fatal(err)
	}
	p.repo = tuf.NewRepo(p.cs)
	err = p.repo.InitRoot(
		data.NewBaseRole(data.CanonicalRootRole, 1, p.root),
		data.NewBaseRole(data.CanonicalTimestampRole, 1, p.serverKey("timestamp")),
		data.NewBaseRole(data.CanonicalSnapshotRole, 1, p.serverKey("snapshot")),
		data.NewBaseRole(data.CanonicalTargetsRole, 1, targets), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.repo.InitTargets(data.CanonicalTargetsRole); err != nil {
		t.Fatal(err)
	}
	return p
}

func marshal(t testing.TB, s *data.Signed) []byte {
	t.Helper()
	b, err := canonicaljson.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *publisher) signRoot() []byte {
	p.t.Helper()
	s, err := p.repo.SignRoot(data.DefaultExpires(data.CanonicalRootRole), nil)
	if err != nil {
		p.t.Fatalf("sign root: %v", err)
	}
	return marshal(p.t, s)
}

func (p *publisher) signTargets(role data.RoleName) []byte {
	p.t.Helper()
	s, err := p.repo.SignTargets(role, data.DefaultExpires(data.CanonicalTargetsRole))
	if err != nil {
		p.t.Fatalf("sign %s: %v", role, err)
	}
	return marshal(p.t, s)
}

func (p *publisher) addTarget(role data.RoleName, name string) {
	p.t.Helper()
	meta, err := data.NewFileMeta(strings.NewReader(name), data.NotaryDefaultHashes...)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.repo.AddTargets(role, data.Files{name: meta}); err != nil {
		p.t.Fatalf("add target %s to %s: %v", name, role, err)
	}
}

// file is one part of an update.
type file struct {
	name string
	body []byte
}

// encodeUpdate builds the multipart body of an update: one part per role,
// filename <role>.json, as the notary client sends it.
func encodeUpdate(t testing.TB, files ...file) (body []byte, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		w, err := mw.CreateFormFile("files", f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.body) //nolint:errcheck // bytes.Buffer writes never fail
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// post sends an update and returns the status and the error JSON's code
// and message.
func post(t testing.TB, url, gun string, files ...file) (int, string, string) {
	t.Helper()
	body, contentType := encodeUpdate(t, files...)
	return postEncoded(t, http.DefaultClient, url, gun, body, contentType)
}

// postEncoded is post of an update encodeUpdate built, sent with client.
func postEncoded(t testing.TB, client *http.Client, url, gun string, body []byte, contentType string) (int, string, string) {
	t.Helper()
	resp, err := client.Post(fmt.Sprintf("%s/v2/%s/_trust/tuf/", url, gun), contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(msg, &e); err != nil || len(e.Errors) != 1 {
			t.Fatalf("status %d with a body that is not one notary error: %s", resp.StatusCode, msg)
		}
		return resp.StatusCode, e.Errors[0].Code, e.Errors[0].Message
	}
	return resp.StatusCode, "", ""
}

func mustPost(t testing.TB, url, gun string, files ...file) {
	t.Helper()
	body, contentType := encodeUpdate(t, files...)
	mustPostEncoded(t, http.DefaultClient, url, gun, body, contentType)
}

// mustPostEncoded is mustPost of an update encodeUpdate built, sent with
// client.
func mustPostEncoded(t testing.TB, client *http.Client, url, gun string, body []byte, contentType string) {
	t.Helper()
	if code, c, msg := postEncoded(t, client, url, gun, body, contentType); code != http.StatusOK {
		t.Fatalf("publish: %d %s %s", code, c, msg)
	}
}

// TestAttacksRefused sends updates an attacker (or a broken client) would
// and checks that each is refused with the right error, after a control
// update of the same shape is accepted.
func TestAttacksRefused(t *testing.T) {
	const gun = "registry.example.com/team/app"
	releases := data.RoleName("targets/releases")
	tests := []struct {
		name       string
		opts       Options
		attack     func(t *testing.T, p *publisher) []file
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{
			name: "targets signed by a key not in root",
			attack: func(t *testing.T, p *publisher) []file {
				rogue := newCryptoService()
				key, _ := rogue.Create(data.CanonicalTargetsRole, p.gun, data.ECDSAKey)
				p.addTarget(data.CanonicalTargetsRole, "evil")
				s, _ := p.repo.Targets[data.CanonicalTargetsRole].ToSigned()
				s.Signed = mustRaw(t, bumpVersion(t, p.repo.Targets[data.CanonicalTargetsRole], 2))
				if err := signed.Sign(rogue, s, []data.PublicKey{key}, 1, nil); err != nil {
					t.Fatal(err)
				}
				return []file{{"targets.json", marshal(t, s)}}
			},
			wantStatus: 400, wantCode: "INVALID_UPDATE", wantMsg: "signature",
		},
		{
			name: "targets rolled back to the published version",
			attack: func(t *testing.T, p *publisher) []file {
				p.addTarget(data.CanonicalTargetsRole, "v2")
				v2 := p.signTargets(data.CanonicalTargetsRole)
				mustPost(t, p.url, gun, file{"targets.json", v2})
				// Replay version 2's content with the same version, then
				// an older version signed anew.
				if code, c, _ := post(t, p.url, gun, file{"targets.json", v2}); code != 400 || c != "VERSION" {
					t.Fatalf("replay of version 2: %d %s, want 400 VERSION", code, c)
				}
				p.repo.Targets[data.CanonicalTargetsRole].Signed.Version = 0
				return []file{{"targets.json", p.signTargets(data.CanonicalTargetsRole)}}
			},
			wantStatus: 400, wantCode: "VERSION", wantMsg: "out of date",
		},
		{
			name: "delegation claims paths its parent did not give it",
			attack: func(t *testing.T, p *publisher) []file {
				relKey, _ := p.cs.Create(releases, "", data.ECDSAKey)
				if err := p.repo.UpdateDelegationKeys(releases, data.KeyList{relKey}, nil, 1); err != nil {
					t.Fatal(err)
				}
				if err := p.repo.UpdateDelegationPaths(releases, []string{"app/"}, nil, false); err != nil {
					t.Fatal(err)
				}
				mustPost(t, p.url, gun, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
				// targets/releases (given "app/") delegates everything to ci.
				if _, err := p.repo.InitTargets(releases); err != nil {
					t.Fatal(err)
				}
				ci := data.RoleName("targets/releases/ci")
				ciKey, _ := p.cs.Create(ci, "", data.ECDSAKey)
				if err := p.repo.UpdateDelegationKeys(ci, data.KeyList{ciKey}, nil, 1); err != nil {
					t.Fatal(err)
				}
				rel := p.repo.Targets[releases]
				rel.Signed.Delegations.Roles[0].Paths = []string{""}
				return []file{{"targets/releases.json", p.signTargets(releases)}}
			},
			wantStatus: 400, wantCode: "INVALID_UPDATE", wantMsg: "was only given",
		},
		{
			name: "delegated target outside the role's paths",
			attack: func(t *testing.T, p *publisher) []file {
				relKey, _ := p.cs.Create(releases, "", data.ECDSAKey)
				p.repo.UpdateDelegationKeys(releases, data.KeyList{relKey}, nil, 1)
				p.repo.UpdateDelegationPaths(releases, []string{"app/"}, nil, false)
				mustPost(t, p.url, gun, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
				if _, err := p.repo.InitTargets(releases); err != nil {
					t.Fatal(err)
				}
				p.repo.Targets[releases].Signed.Targets["other"] = data.FileMeta{Length: 1, Hashes: data.Hashes{"sha256": make([]byte, 32)}}
				return []file{{"targets/releases.json", p.signTargets(releases)}}
			},
			wantStatus: 400, wantCode: "INVALID_UPDATE", wantMsg: "outside its delegated paths",
		},
		{
			name: "metadata over the size cap",
			opts: Options{Limits: Limits{MaxMetadataBytes: 8 << 10}},
			attack: func(t *testing.T, p *publisher) []file {
				for i := 0; i < 100; i++ {
					p.addTarget(data.CanonicalTargetsRole, fmt.Sprintf("tag-%03d", i))
				}
				return []file{{"targets.json", p.signTargets(data.CanonicalTargetsRole)}}
			},
			wantStatus: 413, wantCode: "SIGNET_TOO_LARGE", wantMsg: "metadata limit",
		},
		{
			name: "malformed JSON",
			attack: func(t *testing.T, p *publisher) []file {
				return []file{{"targets.json", []byte(`{"signed": {"_type": "Targets", "version": 2`)}}
			},
			wantStatus: 400, wantCode: "MALFORMED_JSON", wantMsg: "not valid TUF JSON",
		},
		{
			name: "root rotation not signed by the old root",
			attack: func(t *testing.T, p *publisher) []file {
				newRoot := rootCertKey(t, p.cs, p.gun)
				if err := p.repo.ReplaceBaseKeys(data.CanonicalRootRole, newRoot); err != nil {
					t.Fatal(err)
				}
				p.repo.Root.Signed.Version = 2
				s, err := p.repo.Root.ToSigned()
				if err != nil {
					t.Fatal(err)
				}
				s.Signatures = nil
				if err := signed.Sign(p.cs, s, []data.PublicKey{newRoot}, 1, nil); err != nil {
					t.Fatal(err)
				}
				return []file{{"root.json", marshal(t, s)}}
			},
			wantStatus: 400, wantCode: "INVALID_UPDATE", wantMsg: "root",
		},
		{
			name: "timestamp uploaded by a client",
			attack: func(t *testing.T, p *publisher) []file {
				return []file{{"timestamp.json", []byte(`{"signed":{"_type":"Timestamp","version":5},"signatures":[]}`)}}
			},
			wantStatus: 400, wantCode: "INVALID_UPDATE", wantMsg: "signed by the server",
		},
		{
			name: "role name with a path traversal",
			attack: func(t *testing.T, p *publisher) []file {
				return []file{{"targets/../root.json", p.signTargets(data.CanonicalTargetsRole)}}
			},
			wantStatus: 400, wantCode: "INVALID_ROLE", wantMsg: "is not root, targets",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := startServer(t, t.TempDir()+"/server.db", tc.opts)
			p := newPublisher(t, ts.URL, gun)
			// Control: the honest first publish is accepted.
			mustPost(t, ts.URL, gun, file{"root.json", p.signRoot()}, file{"targets.json", p.signTargets(data.CanonicalTargetsRole)})
			files := tc.attack(t, p)
			before := currentTargets(t, ts.URL, gun)
			code, c, msg := post(t, ts.URL, gun, files...)
			if code != tc.wantStatus || c != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", code, c, msg, tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error message spans lines: %q", msg)
			}
			// The refused update changed nothing the attack targeted.
			if after := currentTargets(t, ts.URL, gun); !bytes.Equal(before, after) {
				t.Errorf("targets changed after a refused update")
			}
		})
	}
}

func currentTargets(t *testing.T, url, gun string) []byte {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v2/%s/_trust/tuf/targets.json", url, gun))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// bumpVersion returns the targets' signed part with a new version.
func bumpVersion(t *testing.T, st *data.SignedTargets, v int) data.Targets {
	t.Helper()
	out := st.Signed
	out.Version = v
	return out
}

func mustRaw(t *testing.T, v any) *canonicaljson.RawMessage {
	t.Helper()
	b, err := canonicaljson.MarshalCanonical(v)
	if err != nil {
		t.Fatal(err)
	}
	raw := canonicaljson.RawMessage(b)
	return &raw
}
