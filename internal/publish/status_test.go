package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/notary/tuf/data"

	"github.com/signet-project/signet/internal/testkeys"
	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/internal/testtuf"
	"github.com/signet-project/signet/trust"
)

const day = 24 * time.Hour

// roleOf returns a role of a report, failing the test without it.
func roleOf(t *testing.T, rep StatusReport, role string) trust.RoleExpiry {
	t.Helper()
	for _, r := range rep.Roles {
		if r.Role == role {
			return r
		}
	}
	t.Fatalf("no role %s in %+v", role, rep)
	return trust.RoleExpiry{}
}

// TestRefreshPushesExpiryOut: a repository signed with signet gets a
// targets role expiring in 2 days (refresh with a short lifetime);
// status with a 7-day window is due (exit 1); a refresh with the default
// lifetime makes it ok (exit 0), with versions bumped, and the notary
// CLI still lists the tags.
func TestRefreshPushesExpiryOut(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	repo := reg + "/team/exp"
	testservers.PushRandom(t, repo+":v1")
	if _, err := Sign(ctx, c, []Request{{Image: repo + ":v1"}}); err != nil {
		t.Fatal(err)
	}
	before := roleOf(t, Status(ctx, c, []string{repo}, 7*day, nil)[0], "targets")
	if before.State != trust.StateOK || before.RenewedBy != trust.RenewHere {
		t.Fatalf("targets after signing: %+v", before)
	}

	reps, err := Refresh(ctx, c, []string{repo}, trust.RefreshOptions{Lifetimes: map[string]time.Duration{"": 2 * day}})
	if err != nil {
		t.Fatalf("refresh --expires 2d: %v", err)
	}
	if got := reps[0].Refreshed; len(got) != 1 || got[0].Role != "targets" || got[0].NewVersion != before.Version+1 ||
		got[0].NewExpires.After(time.Now().Add(2*day)) || got[0].NewExpires.Before(time.Now().Add(2*day-time.Hour)) {
		t.Fatalf("refreshed %+v, want targets version %d expiring in 2 days", got, before.Version+1)
	}

	st := Status(ctx, c, []string{repo}, 7*day, nil)
	if code := StatusExit(st); code != 1 || st[0].Result != StatusDue {
		t.Fatalf("status --warn 7d: exit %d, %+v", code, st[0])
	}
	if r := roleOf(t, st[0], "targets"); r.State != trust.StateExpiring || r.Version != before.Version+1 {
		t.Fatalf("targets: %+v", r)
	}
	for _, role := range []string{"timestamp", "snapshot"} {
		if r := roleOf(t, st[0], role); r.State != trust.StateOK || r.RenewedBy != trust.RenewServer {
			t.Errorf("%s: %+v, want ok, renewed by the server", role, r)
		}
	}
	// A window shorter than 2 days: nothing due.
	if st := Status(ctx, c, []string{repo}, day, nil); StatusExit(st) != 0 {
		t.Fatalf("status --warn 1d: %+v", st[0])
	}
	// --within 1d leaves it alone.
	reps, err = Refresh(ctx, c, []string{repo}, trust.RefreshOptions{Within: day})
	if err != nil || len(reps[0].Refreshed) != 0 || len(reps[0].Skipped) != 1 || !strings.Contains(reps[0].Skipped[0].Reason, "after the window") {
		t.Fatalf("refresh --within 1d: %+v %v", reps, err)
	}

	reps, err = Refresh(ctx, c, []string{repo}, trust.RefreshOptions{Within: 7 * day})
	if err != nil || len(reps[0].Refreshed) != 1 || reps[0].Refreshed[0].NewExpires.Before(time.Now().Add(3*365*day-time.Hour)) {
		t.Fatalf("refresh --within 7d: %+v %v", reps, err)
	}
	st = Status(ctx, c, []string{repo}, 7*day, nil)
	if code := StatusExit(st); code != 0 || st[0].Result != StatusOK {
		t.Fatalf("status after refresh: exit %d, %+v", code, st[0])
	}
	if r := roleOf(t, st[0], "targets"); r.Version != before.Version+2 {
		t.Fatalf("targets version %d, want %d", r.Version, before.Version+2)
	}
	if out := notary(t, t.TempDir(), server, "list", repo); !strings.Contains(out, "v1") {
		t.Fatalf("notary list after refresh:\n%s", out)
	}
	if _, err := Verify(ctx, c, repo+":v1"); err != nil {
		t.Fatalf("verify after refresh: %v", err)
	}
}

// TestRefreshClientSnapshotAndDelegation: a repository made with the
// notary CLI keeps its snapshot key in the trust dir, and has a
// targets/releases delegation; refresh re-signs targets, the delegation
// and the snapshot here, and the notary CLI reads the result.
func TestRefreshClientSnapshotAndDelegation(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	c := testConfig(t, server)
	gun := reg + "/team/snap"
	certPath, keyPath := testkeys.Delegation(t, t.TempDir(), "ci")
	notary(t, c.TrustDir, server, "init", gun, "-p")
	notary(t, c.TrustDir, server, "delegation", "add", gun, "targets/releases", certPath, "--all-paths", "-p")
	notary(t, c.TrustDir, server, "key", "import", keyPath, "--role", "targets/releases")
	testservers.PushRandom(t, gun+":v1")
	if _, err := Sign(ctx, c, []Request{{Image: gun + ":v1"}}); err != nil {
		t.Fatal(err)
	}
	st := Status(ctx, c, []string{gun}, 7*day, nil)[0]
	for _, role := range []string{"targets", "targets/releases", "snapshot"} {
		if r := roleOf(t, st, role); r.RenewedBy != trust.RenewHere {
			t.Fatalf("%s renewed by %s, want %s (keys here)", role, r.RenewedBy, trust.RenewHere)
		}
	}

	reps, err := Refresh(ctx, c, []string{gun}, trust.RefreshOptions{Lifetimes: map[string]time.Duration{"targets/releases": 3 * day}})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	got := map[string]trust.Refreshed{}
	for _, r := range reps[0].Refreshed {
		got[r.Role] = r
	}
	for _, role := range []string{"targets", "targets/releases", "snapshot"} {
		old := roleOf(t, st, role)
		if r, ok := got[role]; !ok || r.NewVersion != old.Version+1 {
			t.Fatalf("refreshed %+v, want %s at version %d", reps[0].Refreshed, role, old.Version+1)
		}
	}
	if exp := got["targets/releases"].NewExpires; exp.After(time.Now().Add(3 * day)) {
		t.Fatalf("targets/releases expires %s, want within 3 days", exp)
	}
	st = Status(ctx, c, []string{gun}, 7*day, nil)[0]
	if r := roleOf(t, st, "targets/releases"); r.State != trust.StateExpiring {
		t.Fatalf("targets/releases: %+v", r)
	}
	if r := roleOf(t, st, "snapshot"); r.State != trust.StateOK {
		t.Fatalf("snapshot: %+v", r)
	}
	out := notary(t, t.TempDir(), server, "list", gun)
	if !strings.Contains(out, "v1") || !strings.Contains(out, "targets/releases") {
		t.Fatalf("notary list after refresh:\n%s", out)
	}
	// The trust dir's notary client follows too (its cache has the old
	// versions).
	if out := notary(t, c.TrustDir, server, "list", gun); !strings.Contains(out, "v1") {
		t.Fatalf("notary list with the publisher's cache:\n%s", out)
	}

	// Only the delegation, by name.
	reps, err = Refresh(ctx, c, []string{gun}, trust.RefreshOptions{Roles: []string{"targets/releases"}})
	if err != nil || len(reps[0].Refreshed) != 2 || reps[0].Refreshed[0].Role != "targets/releases" || reps[0].Refreshed[1].Role != "snapshot" {
		t.Fatalf("refresh --roles targets/releases: %+v %v", reps, err)
	}
}

// TestRefreshKeysElsewhere: roles whose keys are not here are listed and
// left alone, unless named; named roles that cannot be re-signed here
// are errors that say why.
func TestRefreshKeysElsewhere(t *testing.T) {
	reg := testservers.Registry(t)
	server := testservers.TrustServer(t)
	ctx := context.Background()
	admin := testConfig(t, server)
	gun := reg + "/team/else"
	testservers.PushRandom(t, gun+":v1")
	if _, err := Sign(ctx, admin, []Request{{Image: gun + ":v1"}}); err != nil {
		t.Fatal(err)
	}
	other := testConfig(t, server) // no keys of this repository
	reps, err := Refresh(ctx, other, []string{gun}, trust.RefreshOptions{})
	if err != nil || len(reps[0].Refreshed) != 0 || len(reps[0].Skipped) != 1 || !strings.Contains(reps[0].Skipped[0].Reason, "no key of it in") {
		t.Fatalf("refresh without keys: %+v %v", reps, err)
	}
	if r := roleOf(t, Status(ctx, other, []string{gun}, 0, nil)[0], "targets"); r.RenewedBy != trust.RenewKeyHolder {
		t.Fatalf("targets seen from elsewhere: %+v", r)
	}
	for _, tc := range []struct {
		opts trust.RefreshOptions
		c    Config
		want string
	}{
		{trust.RefreshOptions{Roles: []string{"targets"}}, other, "no key of it in"},
		{trust.RefreshOptions{Roles: []string{"targets/nope"}}, admin, "not in the trust data"},
		{trust.RefreshOptions{Roles: []string{"snapshot"}}, admin, "the trust server re-signs it"},
		{trust.RefreshOptions{Lifetimes: map[string]time.Duration{"targets/nope": day}}, admin, "has no role targets/nope"},
	} {
		_, err := Refresh(ctx, tc.c, []string{gun}, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("refresh %+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
	// Every image is tried; the errors are one line.
	reps, err = Refresh(ctx, admin, []string{gun + ":v1", "registry.example.com/NOPE", gun}, trust.RefreshOptions{})
	if err == nil || !strings.Contains(err.Error(), "without a tag") || !strings.Contains(err.Error(), "NOPE") || strings.Contains(err.Error(), "\n") {
		t.Errorf("refresh of a tag and a bad name: %v", err)
	}
	if len(reps) != 3 || reps[0].Err == nil || reps[1].Err == nil || reps[2].Err != nil || len(reps[2].Refreshed) != 1 {
		t.Errorf("reports %+v", reps)
	}
}

// TestStatusExpiredAndFailedDelegations: a delegation past its expiry
// is shown as expired (not refused) and one with a bad signature as
// failed; both make the status due (exit 1).
func TestStatusExpiredAndFailedDelegations(t *testing.T) {
	reg := testservers.Registry(t)
	ctx := context.Background()
	ts := testtuf.New(t, reg+"/team/old")
	ts.AddTarget(data.CanonicalTargetsRole, "v1", "one")
	ts.Delegate("targets/releases")
	ts.AddTarget("targets/releases", "v1", "one")
	ts.Delegate("targets/qa")
	ts.AddTarget("targets/qa", "v1", "one")
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole, "targets/qa")
	sg, err := ts.Repo.SignTargets("targets/releases", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ts.ServeRaw("targets/releases", testtuf.Marshal(t, sg))
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	c := testConfig(t, srv.URL)

	reps := Status(ctx, c, []string{ts.GUN}, 7*day, nil)
	if code := StatusExit(reps); code != 1 || reps[0].Result != StatusDue {
		t.Fatalf("status: exit %d, %+v", code, reps[0])
	}
	if r := roleOf(t, reps[0], "targets/releases"); r.State != trust.StateExpired || r.Expires.After(time.Now()) || r.Version == 0 {
		t.Fatalf("expired delegation: %+v", r)
	}
	if r := roleOf(t, reps[0], "targets/qa"); r.State != trust.StateOK {
		t.Fatalf("targets/qa: %+v", r)
	}

	// A bad signature on targets/qa: failed, with the reason.
	bad := ts.SignWith("targets/qa", ts.Root)
	ts.ServeRaw("targets/qa", bad)
	reps = Status(ctx, c, []string{ts.GUN}, 0, nil)
	if r := roleOf(t, reps[0], "targets/qa"); r.State != trust.StateFailed || !strings.Contains(r.Error, "signature") {
		t.Fatalf("failed delegation: %+v", r)
	}
	if StatusExit(reps) != 1 {
		t.Fatalf("status with a failed delegation: %+v", reps[0])
	}

	// Timestamp signed by the wrong key: the trust data fails, denied.
	ts.SetFile("timestamp.json", ts.SignWith(data.CanonicalTargetsRole, ts.Root))
	reps = Status(ctx, testConfig(t, srv.URL), []string{ts.GUN}, 0, nil)
	if reps[0].Result != StatusDenied || StatusExit(reps) != 1 {
		t.Fatalf("status of bad trust data: %+v", reps[0])
	}
}

// TestStatusCouldNotCheck: an unreachable trust server or a tag instead
// of a repository is exit 2, the other images are still checked, and
// the highest exit status wins.
func TestStatusCouldNotCheck(t *testing.T) {
	reg := testservers.Registry(t)
	ctx := context.Background()
	ts := testtuf.New(t, reg+"/team/ok")
	ts.Publish(data.CanonicalRootRole, data.CanonicalTargetsRole)
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	c := testConfig(t, srv.URL)

	reps := Status(ctx, c, []string{ts.GUN + ":v1", ts.GUN}, 7*day, nil)
	if reps[0].Result != StatusError || !strings.Contains(reps[0].Error, "without a tag") || reps[1].Result != StatusOK || StatusExit(reps) != 2 {
		t.Fatalf("status: %+v", reps)
	}
	down := httptest.NewServer(ts)
	down.Close()
	reps = Status(ctx, testConfig(t, down.URL), []string{ts.GUN}, 7*day, nil)
	if reps[0].Result != StatusError || StatusExit(reps) != 2 {
		t.Fatalf("status with the trust server down: %+v", reps)
	}
}

func TestStatusExit(t *testing.T) {
	for _, tc := range []struct {
		results []string
		want    int
	}{
		{nil, 0},
		{[]string{StatusOK, StatusOK}, 0},
		{[]string{StatusOK, StatusDue}, 1},
		{[]string{StatusDenied}, 1},
		{[]string{StatusDue, StatusError, StatusOK}, 2},
	} {
		var reps []StatusReport
		for _, r := range tc.results {
			reps = append(reps, StatusReport{Result: r})
		}
		if got := StatusExit(reps); got != tc.want {
			t.Errorf("StatusExit(%v) = %d, want %d", tc.results, got, tc.want)
		}
	}
}

// sampleReports are a due repository and one that could not be checked.
func sampleReports() []StatusReport {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	return []StatusReport{{
		Image: "registry.example.com/team/app", GUN: "registry.example.com/team/app", Result: StatusDue,
		Checked: now, WarnUntil: now.Add(7 * day),
		Roles: []trust.RoleExpiry{
			{Role: "root", State: trust.StateOK, Version: 1, Expires: now.Add(3650 * day), KeyIDs: []string{"0123456789abcdef0123"}, Threshold: 1, RenewedBy: trust.RenewRootKeys},
			{Role: "targets", State: trust.StateExpiring, Version: 4, Expires: now.Add(2 * day), KeyIDs: []string{"aaaaaaaaaaaaaaaa", "bbbb"}, Threshold: 2, RenewedBy: trust.RenewHere},
			{Role: "timestamp", State: trust.StateOK, Version: 9, Expires: now.Add(14 * day), KeyIDs: []string{"cccc"}, Threshold: 1, RenewedBy: trust.RenewServer},
			{Role: "targets/old", State: trust.StateExpired, Version: 2, Expires: now.Add(-3 * time.Hour), KeyIDs: []string{"dddd"}, Threshold: 1, RenewedBy: trust.RenewKeyHolder},
			{Role: "targets/bad", State: trust.StateFailed, KeyIDs: []string{"eeee"}, Threshold: 1, RenewedBy: trust.RenewKeyHolder, Error: "bad signature or threshold"},
			{Role: "targets/gone", State: trust.StateDisabled, KeyIDs: []string{}, RenewedBy: trust.RenewKeyHolder},
		},
	}, {
		Image: "registry.example.com/team/down", Result: StatusError, Error: "trust server https://trust.example.com is unreachable",
		Checked: now, WarnUntil: now.Add(7 * day), Roles: []trust.RoleExpiry{},
	}}
}

func TestWriteStatusTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStatusTable(&b, sampleReports()); err != nil {
		t.Fatal(err)
	}
	want := `registry.example.com/team/app: DUE: something expires before 2030-01-08T12:00:00Z, has expired or failed
ROLE          STATE     VERSION  EXPIRES                              KEYS                        RENEWED BY
root          ok        1        2039-12-30 12:00 UTC (in 3650 days)  1 of 1: 0123456789ab        root keys (key ceremony)
targets       expiring  4        2030-01-03 12:00 UTC (in 2 days)     2 of 2: aaaaaaaaaaaa, bbbb  signet refresh (keys here)
timestamp     ok        9        2030-01-15 12:00 UTC (in 14 days)    1 of 1: cccc                trust server, on read once expired
targets/old   expired   2        2030-01-01 09:00 UTC (3 hours ago)   1 of 1: dddd                signet refresh where its keys are
targets/bad   failed    -        -                                    1 of 1: eeee                signet refresh where its keys are
targets/gone  disabled  -        -                                    none                        signet refresh where its keys are
  targets/bad: bad signature or threshold

registry.example.com/team/down: ERROR: trust server https://trust.example.com is unreachable
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestWriteStatusJSON: the field names and values docs/expiry.md
// documents.
func TestWriteStatusJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStatusJSON(&b, sampleReports()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if len(got) != 2 {
		t.Fatalf("%d reports", len(got))
	}
	for _, tc := range []struct {
		path string
		want any
	}{
		{"0.image", "registry.example.com/team/app"},
		{"0.gun", "registry.example.com/team/app"},
		{"0.result", "due"},
		{"0.checked", "2030-01-01T12:00:00Z"},
		{"0.warnUntil", "2030-01-08T12:00:00Z"},
		{"0.roles.1.role", "targets"},
		{"0.roles.1.state", "expiring"},
		{"0.roles.1.version", 4.0},
		{"0.roles.1.expires", "2030-01-03T12:00:00Z"},
		{"0.roles.1.threshold", 2.0},
		{"0.roles.1.keyIDs.1", "bbbb"},
		{"0.roles.1.renewedBy", "signet-refresh"},
		{"0.roles.2.renewedBy", "trust-server"},
		{"0.roles.3.renewedBy", "key-holder"},
		{"0.roles.0.renewedBy", "root-keys"},
		{"0.roles.4.error", "bad signature or threshold"},
		{"0.roles.4.expires", nil},
		{"0.roles.4.version", nil},
		{"0.error", nil},
		{"1.result", "error"},
		{"1.error", "trust server https://trust.example.com is unreachable"},
		{"1.gun", nil},
	} {
		if v := dig(got, tc.path); v != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.path, v, tc.want)
		}
	}
	if roles, ok := got[1]["roles"].([]any); !ok || len(roles) != 0 {
		t.Errorf("roles of an unchecked image: %#v, want []", got[1]["roles"])
	}
}

// dig follows a dotted path of keys and indexes; nil if absent.
func dig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case []map[string]any:
			i := int(k[0] - '0')
			if i >= len(x) {
				return nil
			}
			v = x[i]
		case []any:
			i := int(k[0] - '0')
			if i >= len(x) {
				return nil
			}
			v = x[i]
		case map[string]any:
			v = x[k]
		default:
			return nil
		}
	}
	return v
}
