package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testlog"
	"github.com/signet-project/signet/internal/testtuf"
)

// TestRejectedRefreshIsLoud: when new trust data fails verification, a
// running proxy keeps serving its last verified data (as a TUF client
// does after a failed update) and says so: an error log line with the
// role and reason, the refresh counted as rejected, the repository on
// /_signet/status and in the stale gauge. Back to honest data, it is no
// longer stale.
func TestRejectedRefreshIsLoud(t *testing.T) {
	reg := newRegistry(t)
	img := reg.push(t, "team/app:v1")
	ts := testtuf.New(t, reg.host+"/team/app")
	sign(ts, data.CanonicalTargetsRole, "v1", img)
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)

	var logs testlog.Buffer
	r := newReadersWith(t, reg.host, srv.URL, "", slog.New(slog.NewJSONHandler(&logs, nil)))
	r.expect("team/app:v1", true, "")
	honestTimestamp := ts.File("timestamp.json")

	// The server starts signing timestamps with a key root does not list.
	rogue, _ := ts.CS.Create(data.CanonicalTimestampRole, data.GUN(ts.GUN), data.ECDSAKey)
	if err := ts.Repo.ReplaceBaseKeys(data.CanonicalTimestampRole, rogue); err != nil {
		t.Fatal(err)
	}
	sg, err := ts.Repo.SignTimestamp(ts.Repo.Timestamp.Signed.Expires)
	if err != nil {
		t.Fatal(err)
	}
	ts.Put("timestamp", testtuf.Marshal(t, sg))

	if err := pull(r.running, "team/app:v1"); err != nil {
		t.Fatalf("running proxy stopped serving its verified data: %v", err)
	}
	if err := pull(r.replica(), "team/app:v1"); !isDenied(err) {
		t.Fatalf("fresh proxy with rejected data: %v, want denied", err)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"trust data rejected; serving the last verified data until it expires"`) ||
		!strings.Contains(logs.String(), `"role":"timestamp"`) {
		t.Fatalf("no error log line naming the role:\n%s", logs.String())
	}
	st := status(t, r.running)
	if len(st.Stale) != 1 || !st.Stale[0].Rejected || st.Stale[0].Repository != ts.GUN || st.Stale[0].Expires.IsZero() {
		t.Fatalf("status = %+v, want the repository as rejected", st)
	}
	m := get(t, "http://"+r.running+"/metrics")
	for _, want := range []string{`signet_proxy_trust_refresh_total{result="rejected"}`, "signet_proxy_trust_stale_repositories 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Honest again (the old key is back): no longer stale.
	ts.SetFile("timestamp.json", honestTimestamp)
	if err := pull(r.running, "team/app:v1"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, r.running); len(st.Stale) != 0 {
		t.Fatalf("still stale after an honest refresh: %+v", st)
	}
}

type statusBody struct {
	Stale []struct {
		Repository string `json:"repository"`
		Rejected   bool   `json:"rejected"`
		Error      string `json:"error"`
		Expires    jsonTime
	} `json:"stale"`
}

type jsonTime struct{ s string }

func (j *jsonTime) UnmarshalJSON(b []byte) error { j.s = string(b); return nil }
func (j jsonTime) IsZero() bool                  { return j.s == "" || strings.HasPrefix(j.s, `"0001`) }

func status(t *testing.T, host string) statusBody {
	t.Helper()
	var st statusBody
	if err := json.Unmarshal([]byte(get(t, "http://"+host+"/_signet/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
