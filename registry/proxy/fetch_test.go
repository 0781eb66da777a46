package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzNextPage: whatever Link header an upstream sends with a list, the
// page the proxy asks for next is on the path it asked for, on the
// upstream's host.
func FuzzNextPage(f *testing.F) {
	for _, s := range []string{
		`</v2/team/app/tags/list?n=2&last=b>; rel="next"`,
		`<http://up:5000/v2/team/app/tags/list?last=b>; rel=next`,
		`<http://other:5000/v2/team/app/tags/list?last=b>; rel="next"`,
		`</v2/team/other/tags/list?last=b>; rel="next"`,
		`<../../other/tags/list>; rel="next"`,
		`</v2/team/app/tags/list?last=b>; rel="prev", </v2/team/app/tags/list%2F..?last=c>; rel="next"`,
		`<>; rel="next"`,
	} {
		f.Add(s)
	}
	base, _ := url.Parse("http://up:5000")
	const path = "/v2/team/app/tags/list"
	f.Fuzz(func(t *testing.T, link string) {
		req, err := http.NewRequest(http.MethodGet, "http://up:5000"+path+"?n=2", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp := &http.Response{Header: http.Header{"Link": {link}}, Request: req}
		q, ok, err := nextPage(resp, base, path)
		if ok && err != nil {
			t.Fatalf("%q: a next page and an error", link)
		}
		if !ok {
			return
		}
		// The link itself must name that path on that host.
		for _, l := range strings.Split(link, ",") {
			target, params, _ := strings.Cut(strings.TrimSpace(l), ";")
			if !relNext(params) || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			u, err := req.URL.Parse(target[1 : len(target)-1])
			if err != nil || u.Path != path || u.RawPath != "" || !sameHost(u, base) || u.Query().Encode() != q.Encode() {
				t.Fatalf("%q: followed to %v (query %q)", link, u, q.Encode())
			}
			return
		}
		t.Fatalf("%q: a next page without a next link", link)
	})
}
