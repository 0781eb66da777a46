package trust

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/internal/testservers"
)

// TestRefreshRetriesAfterConflict: when another publisher signs a tag
// between refresh's read and its upload, the server answers VERSION;
// refresh reads the new trust data and re-signs on top of it, so the
// other tag stays signed and the expiry is pushed out.
func TestRefreshRetriesAfterConflict(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()
	gun := "registry.example.com/team/refresh-race"
	admin := t.TempDir()
	if _, err := openRepo(t, gun, srv, admin, nil).Sign(ctx, []Target{randomTarget(t, "old")}); err != nil {
		t.Fatal(err)
	}
	other := openRepo(t, gun, srv, copyKeys(t, admin), nil)
	f := &interferer{next: http.DefaultTransport, times: 1, other: func(int) error {
		_, err := other.Sign(ctx, []Target{randomTarget(t, "other")})
		return err
	}}
	r := openRepo(t, gun, srv, copyKeys(t, admin), f)
	res, err := r.Refresh(ctx, RefreshOptions{Lifetimes: map[string]time.Duration{"": 90 * 24 * time.Hour}})
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if len(f.others) != 1 || f.others[0] != nil || f.posts != 2 {
		t.Fatalf("the other publisher: %v; %d publishes, want 2", f.others, f.posts)
	}
	// Signed by admin (2), the other (3), refreshed on top of that (4).
	if len(res.Refreshed) != 1 || res.Refreshed[0].OldVersion != 3 || res.Refreshed[0].NewVersion != 4 {
		t.Fatalf("refreshed %+v, want targets 3 -> 4", res.Refreshed)
	}
	if got := signedTags(t, gun, srv); strings.Join(got, ",") != "old,other" {
		t.Fatalf("signed tags %v, want old and other", got)
	}
	st, err := openRepo(t, gun, srv, t.TempDir(), nil).Status(ctx, StatusOptions{Warn: 89 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st.Due() || st.Roles[1].Role != "targets" || st.Roles[1].Version != 4 {
		t.Fatalf("status after refresh: %+v", st)
	}
	st, err = openRepo(t, gun, srv, t.TempDir(), nil).Status(ctx, StatusOptions{Warn: 91 * 24 * time.Hour})
	if err != nil || !st.Due() || st.Roles[1].State != StateExpiring {
		t.Fatalf("status with a 91-day window: %+v %v", st, err)
	}
}

// TestRefreshExpired: targets already past expiry (seen with a clock 4
// years ahead) are read ignoring expiry and renewed from that time.
func TestRefreshExpired(t *testing.T) {
	srv := testservers.TrustServer(t)
	ctx := context.Background()
	gun := "registry.example.com/team/refresh-expired"
	dir := t.TempDir()
	if _, err := openRepo(t, gun, srv, dir, nil).Sign(ctx, []Target{randomTarget(t, "v1")}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().AddDate(4, 0, 0)
	clock := func() time.Time { return later }
	st, err := openRepo(t, gun, srv, dir, nil).Status(ctx, StatusOptions{Now: clock})
	if err != nil || st.Roles[1].State != StateExpired {
		t.Fatalf("status 4 years on: %+v %v", st, err)
	}
	res, err := openRepo(t, gun, srv, dir, nil).Refresh(ctx, RefreshOptions{Now: clock, Within: time.Hour})
	if err != nil || len(res.Refreshed) != 1 || !res.Refreshed[0].NewExpires.Equal(later.Add(DefaultLifetime).UTC()) {
		t.Fatalf("refresh 4 years on: %+v %v", res, err)
	}
	st, err = openRepo(t, gun, srv, dir, nil).Status(ctx, StatusOptions{Now: clock})
	if err != nil || st.Roles[1].State != StateOK {
		t.Fatalf("status after refresh: %+v %v", st, err)
	}
}
