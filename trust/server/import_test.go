package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/internal/tokenserver"
	"github.com/signet-project/signet/trust/server/auth"
)

const migratedGUN = "registry.example.com/team/app"

var releasesRole = data.RoleName("targets/releases")

// oldRepo is a repository on the trust server being left: the test
// holds all its keys, snapshot and timestamp ones included (what the old
// server held). It has a tag in targets and in targets/releases, and a
// root rotated once, so an import carries root history.
func oldRepo(t *testing.T) *testtuf.Server {
	t.Helper()
	o := testtuf.New(t, migratedGUN)
	o.AddTarget(data.CanonicalTargetsRole, "v1", "manifest one")
	o.Delegate(releasesRole)
	o.AddTarget(releasesRole, "v1", "manifest one")
	o.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole, releasesRole)
	rotateRoot(t, o)
	return o
}

// rotateRoot publishes a new root version under a new root key, signed
// by the old root key and the new one.
func rotateRoot(t *testing.T, o *testtuf.Server) {
	t.Helper()
	if err := o.Repo.ReplaceBaseKeys(data.CanonicalRootRole, o.CertKey()); err != nil {
		t.Fatal(err)
	}
	o.Publish(data.CanonicalRootRole)
}

var consistentName = regexp.MustCompile(`\.[0-9a-f]{64}\.json$`)

// exported returns the files a mirror uploads for o's current data:
// <role>.json for each role and <N>.root.json for each root version.
func exported(o *testtuf.Server) []file {
	var files []file
	for _, name := range o.Files() {
		if !consistentName.MatchString(name) {
			files = append(files, file{name, o.File(name)})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files
}

// without returns files less the named ones.
func without(files []file, names ...string) []file {
	return slices.DeleteFunc(slices.Clone(files), func(f file) bool { return slices.Contains(names, f.name) })
}

// fileRV returns the role and version a file holds.
func fileRV(t testing.TB, f file) roleVersion {
	t.Helper()
	var meta data.SignedMeta
	if err := json.Unmarshal(f.body, &meta); err != nil {
		t.Fatalf("%s: %v", f.name, err)
	}
	role := strings.TrimSuffix(f.name, ".json")
	if m := rootHistoryRe.FindStringSubmatch(role); m != nil {
		role = "root"
	}
	return roleVersion{Role: role, Version: meta.Signed.Version}
}

// fileSet is the distinct (role, version) of files, sorted as the server
// reports them.
func fileSet(t testing.TB, files []file) []roleVersion {
	t.Helper()
	seen := map[roleVersion]bool{}
	var out []roleVersion
	for _, f := range files {
		rv := fileRV(t, f)
		if !seen[rv] {
			seen[rv] = true
			out = append(out, rv)
		}
	}
	sortRV(out)
	return out
}

func sortRV(l []roleVersion) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].Role != l[j].Role {
			return l[i].Role < l[j].Role
		}
		return l[i].Version < l[j].Version
	})
}

// importAnswer is the server's answer to an import.
type importAnswer struct {
	importResponse
	code         int
	errCode, msg string
	authenticate string
	body         string
}

// postImport sends files as an import, with the Authorization header
// authz if it is not empty.
func postImport(t testing.TB, url, gun, authz string, files ...file) importAnswer {
	t.Helper()
	body, contentType := encodeUpdate(t, files...)
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v2/%s/_trust/import", url, gun), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := importAnswer{code: resp.StatusCode, authenticate: resp.Header.Get("WWW-Authenticate"), body: string(raw)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &a.importResponse); err != nil {
			t.Fatalf("import answer %s: %v", raw, err)
		}
		return a
	}
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || len(e.Errors) != 1 {
		t.Fatalf("import: status %d with a body that is not one notary error: %s", resp.StatusCode, raw)
	}
	a.errCode, a.msg = e.Errors[0].Code, e.Errors[0].Message
	if strings.Contains(a.msg, "\n") {
		t.Fatalf("import error is not one line: %q", a.msg)
	}
	return a
}

// mustImport imports files and fails unless the server answers 200.
func mustImport(t testing.TB, url string, files ...file) importAnswer {
	t.Helper()
	a := postImport(t, url, migratedGUN, "", files...)
	if a.code != http.StatusOK {
		t.Fatalf("import: %d %s %s", a.code, a.errCode, a.msg)
	}
	return a
}

// wantReport compares an import's report with what a test expects.
func wantReport(t testing.TB, a importAnswer, stored, unchanged, skipped []roleVersion) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want []roleVersion
	}{{"stored", a.Stored, stored}, {"unchanged", a.Unchanged, unchanged}, {"skipped", a.Skipped, skipped}} {
		if c.want == nil {
			c.want = []roleVersion{}
		}
		if c.got == nil || !slices.Equal(c.got, c.want) {
			t.Fatalf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// wantStoredBytes checks that the server stores each file byte for byte.
func wantStoredBytes(t testing.TB, st *Store, files []file) {
	t.Helper()
	for _, f := range files {
		rv := fileRV(t, f)
		_, got, err := st.GetVersion(data.GUN(migratedGUN), data.RoleName(rv.Role), rv.Version)
		if err != nil {
			t.Fatalf("read stored %s version %d: %v", rv.Role, rv.Version, err)
		}
		if !bytes.Equal(got, f.body) {
			t.Fatalf("stored %s version %d differs from the uploaded %s", rv.Role, rv.Version, f.name)
		}
	}
}

// getRaw GETs path from the server and returns the status and body.
func getRaw(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func metaURL(url, name string) string {
	return url + "/v2/" + migratedGUN + "/_trust/tuf/" + name
}

// TestImport imports a repository with a delegation and root history:
// every file is stored byte for byte, served as it is, readable by the
// notary client library, and a second import of the same data stores
// nothing.
func TestImport(t *testing.T) {
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := oldRepo(t)
			files := exported(o)
			hs, srv := startServer(t, dsn(t), Options{AllowImport: true})

			a := mustImport(t, hs.URL, files...)
			want := fileSet(t, files)
			wantReport(t, a, want, nil, nil)
			if len(a.Expired) != 0 {
				t.Fatalf("expired = %v, want none", a.Expired)
			}
			if a.SnapshotSHA256 != sha256Hex(o.File("snapshot.json")) {
				t.Fatalf("snapshot_sha256 = %s, want %s", a.SnapshotSHA256, sha256Hex(o.File("snapshot.json")))
			}
			wantStoredBytes(t, srv.store, files)
			for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json", "targets/releases.json", "1.root.json"} {
				if code, got := getRaw(t, metaURL(hs.URL, f)); code != http.StatusOK || !bytes.Equal(got, o.File(f)) {
					t.Fatalf("GET %s: %d, same bytes as imported: %v", f, code, bytes.Equal(got, o.File(f)))
				}
			}
			reader := newRepo(t, t.TempDir(), hs.URL, migratedGUN)
			if _, err := reader.GetTargetByName("v1", releasesRole); err != nil {
				t.Fatalf("notary client reading the imported data: %v", err)
			}

			again := mustImport(t, hs.URL, files...)
			wantReport(t, again, nil, want, nil)
			var feed changefeedResponse
			getJSON(t, hs.URL+"/v2/"+migratedGUN+"/_trust/changefeed", &feed)
			if feed.Count != 1 || feed.Records[0].Version != fileRV(t, file{"timestamp.json", o.File("timestamp.json")}).Version {
				t.Fatalf("changefeed after two imports of the same data: %+v, want one entry for the imported timestamp", feed)
			}
		})
	}
}

// TestImportRefused sends imports that fail verification (or do not fit
// the server's data): each is refused with a one-line error naming the
// file or role and the reason, and nothing is stored.
func TestImportRefused(t *testing.T) {
	tests := []struct {
		name string
		// prepare changes the old repository before the export, or the
		// exported files, or the server (before the import).
		files        func(t *testing.T, o *testtuf.Server) []file
		before       func(t *testing.T, url string)
		code         int
		errCode      string
		wantInMsg    []string
		storedBefore bool // the server held a root before the import
	}{
		{name: "tampered targets", files: func(t *testing.T, o *testtuf.Server) []file {
			files := exported(o)
			for i, f := range files {
				if f.name == "targets.json" {
					edited := bytes.Replace(f.body, []byte(`"length":12`), []byte(`"length":13`), 1)
					if bytes.Equal(edited, f.body) {
						t.Fatalf("targets.json has no length 12:\n%s", f.body)
					}
					files[i].body = edited
				}
			}
			return files
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"targets:", "does not match its hash"}},
		{name: "targets signed by a key root does not list", files: func(t *testing.T, o *testtuf.Server) []file {
			rogue, err := o.CS.Create(data.CanonicalTargetsRole, data.GUN(o.GUN), data.ECDSAKey)
			if err != nil {
				t.Fatal(err)
			}
			o.ServeRaw(data.CanonicalTargetsRole, o.SignWith(data.CanonicalTargetsRole, rogue))
			return exported(o)
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"targets:", "bad signature or threshold"}},
		{name: "delegation left out", files: func(t *testing.T, o *testtuf.Server) []file {
			return without(exported(o), "targets/releases.json")
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"targets/releases", "targets/releases.json is not in the import"}},
		{name: "file nothing delegates to", files: func(t *testing.T, o *testtuf.Server) []file {
			return append(exported(o), file{"targets/other.json", o.File("targets/releases.json")})
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"targets/other.json", "delegates to targets/other"}},
		{name: "no timestamp", files: func(t *testing.T, o *testtuf.Server) []file {
			return without(exported(o), "timestamp.json")
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"no timestamp.json"}},
		{name: "gap in the root history", files: func(t *testing.T, o *testtuf.Server) []file {
			rotateRoot(t, o) // root 3: the import starts at 1 and lacks 2
			return without(exported(o), "2.root.json")
		}, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"root", "2.root.json is not in the import"}},
		{name: "root version file of another version", files: func(t *testing.T, o *testtuf.Server) []file {
			files := without(exported(o), "2.root.json")
			return append(files, file{"2.root.json", o.File("1.root.json")})
		}, code: 400, errCode: "MALFORMED_JSON", wantInMsg: []string{"2.root.json has version 1"}},
		{name: "root that does not extend the stored one", files: func(t *testing.T, o *testtuf.Server) []file {
			return exported(o)
		}, before: func(t *testing.T, url string) {
			other := testtuf.New(t, migratedGUN) // same name, other keys
			other.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
			mustImport(t, url, exported(other)...)
		}, storedBefore: true, code: 400, errCode: "INVALID_UPDATE", wantInMsg: []string{"root", "signature"}},
	}
	for name, dsn := range backends(t) {
		t.Run(name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					hs, srv := startServer(t, dsn(t), Options{AllowImport: true})
					if tt.before != nil {
						tt.before(t, hs.URL)
					}
					_, rootBefore, _ := srv.store.GetCurrent(data.GUN(migratedGUN), data.CanonicalRootRole)
					a := postImport(t, hs.URL, migratedGUN, "", tt.files(t, oldRepo(t))...)
					if a.code != tt.code || a.errCode != tt.errCode {
						t.Fatalf("import: %d %s %q, want %d %s", a.code, a.errCode, a.msg, tt.code, tt.errCode)
					}
					for _, w := range tt.wantInMsg {
						if !strings.Contains(a.msg, w) {
							t.Fatalf("import error %q lacks %q", a.msg, w)
						}
					}
					_, rootAfter, err := srv.store.GetCurrent(data.GUN(migratedGUN), data.CanonicalRootRole)
					switch {
					case !tt.storedBefore && !isNotFound(err):
						t.Fatalf("refused import stored a root (err %v)", err)
					case tt.storedBefore && !bytes.Equal(rootAfter, rootBefore):
						t.Fatalf("refused import changed the stored root")
					}
				})
			}
		})
	}
}

// TestImportRoute: without --allow-import the route answers 404 naming
// the flag; it takes only POST; its body is parsed with the import's own
// limit on files.
func TestImportRoute(t *testing.T) {
	files := exported(oldRepo(t))
	tests := []struct {
		name      string
		opts      Options
		method    string
		files     []file
		code      int
		errCode   string
		wantInMsg string
	}{
		{"off by default", Options{}, http.MethodPost, files, 404, "SIGNET_IMPORT_DISABLED", "start it with --allow-import"},
		{"GET", Options{AllowImport: true}, http.MethodGet, nil, 405, "SIGNET_METHOD_NOT_ALLOWED", "GET is not allowed"},
		{"more files than --max-import-parts", Options{AllowImport: true, Limits: Limits{MaxImportParts: 3}}, http.MethodPost, files, 400, "MALFORMED_UPLOAD", "more than 3 files: send fewer or raise --max-import-parts"},
		{"publish limit does not apply", Options{AllowImport: true, Limits: Limits{MaxParts: 3}}, http.MethodPost, files, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, _ := startServer(t, t.TempDir()+"/server.db", tt.opts)
			var a importAnswer
			if tt.method == http.MethodPost {
				a = postImport(t, hs.URL, migratedGUN, "", tt.files...)
			} else {
				code, body := getRaw(t, hs.URL+"/v2/"+migratedGUN+"/_trust/import")
				var e struct {
					Errors []struct{ Code, Message string } `json:"errors"`
				}
				if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
					t.Fatalf("GET: %d %s", code, body)
				}
				a = importAnswer{code: code, errCode: e.Errors[0].Code, msg: e.Errors[0].Message}
			}
			if a.code != tt.code || a.errCode != tt.errCode || !strings.Contains(a.msg, tt.wantInMsg) {
				t.Fatalf("%s import: %d %s %q, want %d %s with %q", tt.method, a.code, a.errCode, a.msg, tt.code, tt.errCode, tt.wantInMsg)
			}
		})
	}
}

// TestImportNeedsPush: under token auth an import needs push and pull on
// the repository, like a publish: anonymous and pull-only callers are
// challenged and nothing is stored.
func TestImportNeedsPush(t *testing.T) {
	const (
		service = "signet-trust"
		issuer  = "signet-test-token-issuer"
	)
	users := map[string]string{"ci": "ci-s3cret", "viewer": "viewer-s3cret"}
	issuerSrv, err := tokenserver.New(tokenserver.Options{
		Issuer: issuer, Service: service, Users: users,
		Grant: func(user, _ string, requested []string) []string {
			if user == "ci" {
				return requested
			}
			return []string{auth.ActionPull}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tokenSrv := httptest.NewServer(issuerSrv)
	t.Cleanup(tokenSrv.Close)
	bundle := filepath.Join(t.TempDir(), "token-roots.pem")
	if err := issuerSrv.WriteRootBundle(bundle); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewToken(auth.TokenOptions{Realm: tokenSrv.URL + tokenserver.Path, Service: service, Issuer: issuer, RootCertBundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	token := func(user string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, tokenSrv.URL+tokenserver.Path+"?service="+service+"&scope=repository:"+migratedGUN+":push,pull", nil)
		req.SetBasicAuth(user, users[user])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Token == "" {
			t.Fatalf("token for %s: %d %v", user, resp.StatusCode, err)
		}
		return "Bearer " + answer.Token
	}

	files := exported(oldRepo(t))
	hs, srv := startServer(t, filepath.Join(t.TempDir(), "server.db"), Options{AllowImport: true, Auth: auth.ReadOpen(tok)})
	tests := []struct {
		who, authz string
		code       int
		challenge  string
	}{
		{"anonymous", "", http.StatusUnauthorized, `scope="repository:` + migratedGUN + `:push,pull"`},
		{"pull-only viewer", token("viewer"), http.StatusUnauthorized, `error="insufficient_scope"`},
		{"ci with push", token("ci"), http.StatusOK, ""},
	}
	for _, tt := range tests {
		a := postImport(t, hs.URL, migratedGUN, tt.authz, files...)
		if a.code != tt.code || !strings.Contains(a.authenticate, tt.challenge) {
			t.Fatalf("%s import: %d %q %s, want %d with a challenge containing %q", tt.who, a.code, a.authenticate, a.msg, tt.code, tt.challenge)
		}
		if _, _, err := srv.store.GetCurrent(data.GUN(migratedGUN), data.CanonicalRootRole); tt.code != http.StatusOK && !isNotFound(err) {
			t.Fatalf("%s import was refused but stored a root (err %v)", tt.who, err)
		}
	}
	wantStoredBytes(t, srv.store, files)
}
