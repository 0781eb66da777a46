package trust

import (
	"strings"
	"testing"
	"time"

	"github.com/signet-project/signet/trust/verify"
)

// TestExpiries: each role's state and renewer, from verified trust data
// read ignoring expiry, around a 7-day window.
func TestExpiries(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	role := func(name string, st verify.RoleStatus, expires time.Duration) *verify.Role {
		return &verify.Role{Name: name, Status: st, KeyIDs: []string{"b" + name, "a" + name}, Threshold: 1, Version: 3, Expires: now.Add(expires)}
	}
	for _, tc := range []struct {
		name      string
		role      *verify.Role
		here      bool
		wantState string
		wantBy    string
	}{
		{"targets far", role("targets", verify.RoleVerified, 300*day), true, StateOK, RenewHere},
		{"targets in window", role("targets", verify.RoleVerified, 2*day), true, StateExpiring, RenewHere},
		{"targets expired", role("targets", verify.RoleVerified, -time.Second), true, StateExpired, RenewHere},
		{"targets expiring now", role("targets", verify.RoleVerified, 0), false, StateExpired, RenewKeyHolder},
		{"targets at the window's end", role("targets", verify.RoleVerified, 7*day), true, StateOK, RenewHere},
		{"delegation elsewhere in window", role("targets/releases", verify.RoleVerified, day), false, StateExpiring, RenewKeyHolder},
		{"delegation empty", role("targets/releases", verify.RoleEmpty, 0), false, StateEmpty, RenewKeyHolder},
		{"delegation disabled", role("targets/releases", verify.RoleDisabled, 0), false, StateDisabled, RenewKeyHolder},
		{"delegation failed", role("targets/releases", verify.RoleFailed, 300*day), true, StateFailed, RenewHere},
		{"timestamp in window: the server renews it", role("timestamp", verify.RoleVerified, day), false, StateOK, RenewServer},
		{"timestamp served expired: the server did not", role("timestamp", verify.RoleVerified, -day), false, StateExpired, RenewServer},
		{"server snapshot in window", role("snapshot", verify.RoleVerified, day), false, StateOK, RenewServer},
		{"snapshot key here, in window", role("snapshot", verify.RoleVerified, day), true, StateExpiring, RenewHere},
		{"root in window", role("root", verify.RoleVerified, 6*day), true, StateExpiring, RenewRootKeys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.role.Status == verify.RoleFailed {
				tc.role.Err = &verify.Error{GUN: "g", Role: tc.role.Name, Reason: verify.ReasonSignature}
			}
			res := &verify.Result{Roles: map[string]*verify.Role{tc.role.Name: tc.role}}
			st := Expiries("g", res, map[string]bool{tc.role.Name: tc.here}, 7*day, now)
			if len(st.Roles) != 1 {
				t.Fatalf("roles %+v", st.Roles)
			}
			got := st.Roles[0]
			if got.State != tc.wantState || got.RenewedBy != tc.wantBy {
				t.Errorf("state %s renewed by %s, want %s by %s", got.State, got.RenewedBy, tc.wantState, tc.wantBy)
			}
			wantDue := tc.wantState == StateExpiring || tc.wantState == StateExpired || tc.wantState == StateFailed
			if st.Due() != wantDue {
				t.Errorf("due %v, want %v", st.Due(), wantDue)
			}
			if got.KeyIDs[0] > got.KeyIDs[1] {
				t.Errorf("key IDs not sorted: %v", got.KeyIDs)
			}
			verified := tc.role.Status == verify.RoleVerified
			if verified != !got.Expires.IsZero() || verified != (got.Version != 0) {
				t.Errorf("version %d expires %s for a %s role", got.Version, got.Expires, tc.role.Status)
			}
			if (got.Error != "") != (tc.role.Status == verify.RoleFailed) {
				t.Errorf("error %q", got.Error)
			}
		})
	}
}

func TestExpiriesOrder(t *testing.T) {
	roles := map[string]*verify.Role{}
	for _, n := range []string{"targets/z", "timestamp", "targets/a", "root", "snapshot", "targets", "targets/a/b"} {
		roles[n] = &verify.Role{Name: n, Status: verify.RoleEmpty}
	}
	st := Expiries("g", &verify.Result{Roles: roles}, nil, 0, time.Now())
	var got []string
	for _, r := range st.Roles {
		got = append(got, r.Role)
	}
	if want := "root targets snapshot timestamp targets/a targets/a/b targets/z"; strings.Join(got, " ") != want {
		t.Fatalf("order %v, want %s", got, want)
	}
}

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * day, false},
		{"2w", 14 * day, false},
		{"3y", 3 * 365 * day, false},
		{"0d", 0, false},
		{"36h", 36 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"-5h", 0, true},
		{"1.5d", 0, true},
		{"30days", 0, true},
		{"999999999999y", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseDuration(%q): error %q does not name the value", tc.in, err)
		}
	}
}

func TestParseLifetimes(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   []string
		want map[string]time.Duration
		err  string
	}{
		{nil, map[string]time.Duration{}, ""},
		{[]string{"2d"}, map[string]time.Duration{"": 2 * day}, ""},
		{[]string{"1y", "targets/releases=90d"}, map[string]time.Duration{"": 365 * day, "targets/releases": 90 * day}, ""},
		{[]string{"1y", "2y"}, nil, "two default lifetimes"},
		{[]string{"targets=1d", "targets=2d"}, nil, "targets given twice"},
		{[]string{"targets=0d"}, nil, "positive"},
		{[]string{"targets=soon"}, nil, `"targets=soon"`},
	} {
		got, err := ParseLifetimes(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLifetimes(%q): %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseLifetimes(%q) = %v, %v", tc.in, got, err)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseLifetimes(%q)[%q] = %s, want %s", tc.in, k, got[k], v)
			}
		}
	}
}

func TestCheckRefreshOptions(t *testing.T) {
	for _, tc := range []struct {
		opts RefreshOptions
		err  string
	}{
		{RefreshOptions{}, ""},
		{RefreshOptions{Roles: []string{"targets", "targets/releases", "snapshot"}, Within: time.Hour}, ""},
		{RefreshOptions{Roles: []string{"timestamp"}}, "the trust server renews the timestamp"},
		{RefreshOptions{Roles: []string{"root"}}, "root keys renew root"},
		{RefreshOptions{Lifetimes: map[string]time.Duration{"timestamp": time.Hour}}, "timestamp is not re-signed by refresh"},
		{RefreshOptions{Lifetimes: map[string]time.Duration{"": -time.Hour}}, "must be positive"},
		{RefreshOptions{Within: -time.Hour}, "negative"},
	} {
		err := checkRefreshOptions(tc.opts)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("checkRefreshOptions(%+v) = %v, want %q", tc.opts, err, tc.err)
		}
	}
}
