package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fetch sends method to the proxy and returns the response, its body read.
func fetch(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// tagsList reads one page of a tags list: its tags and its Link header.
func tagsList(t *testing.T, url string) ([]string, string, *http.Response) {
	t.Helper()
	resp, body := fetch(t, http.MethodGet, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(body), &tl); err != nil || tl.Tags == nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return tl.Tags, resp.Header.Get("Link"), resp
}

// TestTagsListPages: n and last page the list a rule lists, in every
// mode, with a Link to the next page.
func TestTagsListPages(t *testing.T) {
	for _, mode := range []string{ModeEnforce, ModeWarn, ModeAllow} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Policy.Rules[0].Mode = mode })
			for _, tag := range []string{"d", "a", "c", "b", "e"} {
				e.push("team/app:" + tag)
				e.sign("team/app:" + tag)
			}
			base := "http://" + e.proxy + "/v2/team/app/tags/list"
			for _, tc := range []struct {
				query string
				tags  []string
				link  string
			}{
				{"", []string{"a", "b", "c", "d", "e"}, ""},
				{"?n=2", []string{"a", "b"}, `</v2/team/app/tags/list?n=2&last=b>; rel="next"`},
				{"?n=2&last=b", []string{"c", "d"}, `</v2/team/app/tags/list?n=2&last=d>; rel="next"`},
				{"?n=2&last=d", []string{"e"}, ""},
				{"?n=5", []string{"a", "b", "c", "d", "e"}, ""},
				{"?last=bb", []string{"c", "d", "e"}, ""},
				{"?last=e", []string{}, ""},
				{"?n=0", []string{}, ""},
			} {
				tags, link, _ := tagsList(t, base+tc.query)
				if !slices.Equal(tags, tc.tags) || link != tc.link {
					t.Errorf("tags/list%s: %q, Link %q; want %q, Link %q", tc.query, tags, link, tc.tags, tc.link)
				}
			}
			// A client following the links gets every tag once.
			var all []string
			next := "/v2/team/app/tags/list?n=2"
			for next != "" {
				tags, link, _ := tagsList(t, "http://"+e.proxy+next)
				all = append(all, tags...)
				next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			}
			if !slices.Equal(all, []string{"a", "b", "c", "d", "e"}) {
				t.Errorf("following the links: %q", all)
			}
		})
	}
}

// TestUpstreamTagsPages: the proxy reads an upstream's paged tags list
// whole, and follows its links only on the repository's tags path.
func TestUpstreamTagsPages(t *testing.T) {
	var offPath bool
	page := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/tags/list") {
				h.ServeHTTP(w, r)
				return
			}
			// Two tags a page, as some registries do without n.
			pages := map[string]struct {
				tags []string
				next string
			}{
				"":  {[]string{"a", "b"}, r.URL.Path + "?last=b&n=2"},
				"b": {[]string{"c", "d"}, r.URL.Path + "?last=d&n=2"},
				"d": {[]string{"e"}, ""},
			}
			p := pages[r.URL.Query().Get("last")]
			if offPath && p.next != "" {
				p.next = "/v2/team/other/tags/list?last=b"
			}
			if p.next != "" {
				w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, p.next))
			}
			json.NewEncoder(w).Encode(map[string]any{"name": "team/app", "tags": p.tags})
		})
	}
	e := newEnvWrapped(t, page, func(o *Options) { o.Policy.Rules[0].Mode = ModeAllow })
	tags, _, _ := tagsList(t, "http://"+e.proxy+"/v2/team/app/tags/list")
	if !slices.Equal(tags, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("upstream pages read as %q", tags)
	}
	offPath = true
	resp, body := fetch(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/tags/list")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "refused") {
		t.Fatalf("upstream linking to another repository: %d %s", resp.StatusCode, body)
	}
}

// TestWarnModeListsWhatItServes: in warn mode the tags list is the
// upstream's tags, signed or not, as manifests and blobs are served; a
// Warning says when some are not signed.
func TestWarnModeListsWhatItServes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Policy.Rules[0].Mode = ModeWarn })
	e.push("team/app:a")
	e.push("team/app:b")
	url := "http://" + e.proxy + "/v2/team/app/tags/list"
	tags, _, resp := tagsList(t, url)
	if !slices.Equal(tags, []string{"a", "b"}) || !strings.Contains(resp.Header.Get("Warning"), "no trust data") {
		t.Fatalf("no trust data: %q, Warning %q", tags, resp.Header.Get("Warning"))
	}
	e.sign("team/app:a")
	e.now = e.now.Add(time.Minute) // the next refresh is due
	tags, _, resp = tagsList(t, url)
	if !slices.Equal(tags, []string{"a", "b"}) || !strings.Contains(resp.Header.Get("Warning"), "1 of the 2 tags listed are not signed") {
		t.Fatalf("one tag signed: %q, Warning %q", tags, resp.Header.Get("Warning"))
	}
	e.sign("team/app:b")
	e.now = e.now.Add(time.Minute)
	tags, _, resp = tagsList(t, url)
	if !slices.Equal(tags, []string{"a", "b"}) || resp.Header.Get("Warning") != "" {
		t.Fatalf("all signed: %q, Warning %q", tags, resp.Header.Get("Warning"))
	}
}

// TestProtocolHeaders: Allow on 405, ETag on the blobs the proxy serves
// verified, the API version on every answer, passed through or not.
func TestProtocolHeaders(t *testing.T) {
	for _, mode := range []string{ModeEnforce, ModeWarn, ModeAllow} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Policy.Rules[0].Mode = mode })
			img := e.push("team/app:v1")
			e.sign("team/app:v1")
			e.push("team/app:unsigned")
			layers, _ := img.Layers()
			layer, _ := layers[0].Digest()
			base := "http://" + e.proxy + "/v2/team/app/"
			for _, path := range []string{"manifests/v1", "manifests/" + digestOf(t, img), "blobs/" + layer.String(), "tags/list", "manifests/unsigned"} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp, body := fetch(t, method, base+path)
					want := http.StatusOK
					if mode == ModeEnforce && path == "manifests/unsigned" {
						want = http.StatusForbidden
					}
					if resp.StatusCode != want {
						t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, body)
					}
					if v := resp.Header.Get("Docker-Distribution-Api-Version"); v != "registry/2.0" {
						t.Errorf("%s %s: Docker-Distribution-Api-Version %q", method, path, v)
					}
				}
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				if mode == ModeAllow {
					break // passed through with the upstream's headers
				}
				resp, _ := fetch(t, method, base+"blobs/"+layer.String())
				if et := resp.Header.Get("ETag"); et != `"`+layer.String()+`"` {
					t.Errorf("%s blob: ETag %q", method, et)
				}
			}
			for _, method := range []string{http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch} {
				resp, body := fetch(t, method, base+"manifests/v1")
				if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" || !strings.Contains(body, "UNSUPPORTED") {
					t.Errorf("%s: %d, Allow %q, %s", method, resp.StatusCode, resp.Header.Get("Allow"), body)
				}
			}
		})
	}
}

// TestOnlySHA256IsVerified: a well-formed digest of another algorithm is
// never signed: denied by enforce rules, passed through by allow rules.
func TestOnlySHA256IsVerified(t *testing.T) {
	d := "sha512:" + strings.Repeat("ab", 64)
	for mode, want := range map[string]int{ModeEnforce: http.StatusForbidden, ModeWarn: http.StatusNotFound, ModeAllow: http.StatusNotFound} {
		e := newEnv(t, func(o *Options) { o.Policy.Rules[0].Mode = mode })
		e.push("team/app:v1")
		e.sign("team/app:v1")
		for _, kind := range []string{"manifests", "blobs"} {
			resp, body := fetch(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/"+kind+"/"+d)
			if resp.StatusCode != want || want == http.StatusForbidden && !strings.Contains(body, "only sha256 content is verified") {
				t.Errorf("%s, %s by sha512: %d %s, want %d", mode, kind, resp.StatusCode, body, want)
			}
		}
	}
}

// TestReferrers: enforce lists the referrers the trust data reaches (a
// signed artifact), warn lists all with a Warning, allow lists all; an
// upstream's 404 (no referrers API, or no such repository) is passed on.
func TestReferrers(t *testing.T) {
	for _, mode := range []string{ModeEnforce, ModeWarn, ModeAllow} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Policy.Rules[0].Mode = mode })
			img := e.push("team/app:v1")
			e.sign("team/app:v1")
			subject := descriptorOf(t, img)
			digests := map[string]string{}
			for _, tag := range []string{"sbom", "sig"} {
				base, err := random.Image(256, 1)
				if err != nil {
					t.Fatal(err)
				}
				art := mutate.Subject(mutate.ConfigMediaType(base, types.MediaType("application/vnd.example."+tag)), subject).(v1.Image)
				if err := remote.Write(mustTag(t, e.upstream+"/team/app:"+tag), art); err != nil {
					t.Fatal(err)
				}
				digests[tag] = digestOf(t, art)
			}
			e.sign("team/app:sbom") // the signature artifact stays unsigned

			resp, body := fetch(t, http.MethodGet, "http://"+e.proxy+"/v2/team/app/referrers/"+subject.Digest.String())
			var idx v1.IndexManifest
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ociIndex || json.Unmarshal([]byte(body), &idx) != nil || idx.SchemaVersion != 2 || idx.MediaType != ociIndex {
				t.Fatalf("referrers: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var got []string
			for _, m := range idx.Manifests {
				got = append(got, m.Digest.String())
				if m.ArtifactType == "" {
					t.Errorf("descriptor lost its artifactType: %s", body)
				}
			}
			slices.Sort(got)
			want := []string{digests["sbom"]}
			if mode != ModeEnforce {
				want = append(want, digests["sig"])
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("referrers %q, want %q", got, want)
			}
			warning := resp.Header.Get("Warning")
			if (mode == ModeWarn) != strings.Contains(warning, "1 of the 2 referrers listed are not signed") {
				t.Errorf("Warning %q", warning)
			}

			resp, body = fetch(t, http.MethodGet, "http://"+e.proxy+"/v2/team/none/referrers/"+subject.Digest.String())
			want404 := map[string]int{ModeEnforce: http.StatusForbidden, ModeWarn: http.StatusNotFound, ModeAllow: http.StatusNotFound}[mode]
			if resp.StatusCode != want404 {
				t.Errorf("referrers in a repository the upstream lacks: %d %s, want %d", resp.StatusCode, body, want404)
			}
		})
	}
}

func descriptorOf(t *testing.T, img v1.Image) v1.Descriptor {
	t.Helper()
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: d}
}
