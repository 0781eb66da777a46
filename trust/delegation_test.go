package trust

import (
	"slices"
	"strings"
	"testing"

	canonicaljson "github.com/docker/go/canonical/json"
	"github.com/theupdateframework/notary/cryptoservice"
	"github.com/theupdateframework/notary/passphrase"
	"github.com/theupdateframework/notary/trustmanager"
	"github.com/theupdateframework/notary/tuf/data"
	"github.com/theupdateframework/notary/tuf/signed"

	"github.com/signet-project/signet/trust/verify"
)

func TestSignerRole(t *testing.T) {
	for _, tc := range []struct {
		name, role, err string
	}{
		{"alice", "targets/alice", ""},
		{"ci-bot_2", "targets/ci-bot_2", ""},
		{"releases", "", "reserved"},
		{"Alice", "", "lower-case"},
		{"-x", "", "starting with a letter or digit"},
		{"a/b", "", "lower-case letters"},
		{"", "", "lower-case letters"},
	} {
		role, err := SignerRole(tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("SignerRole(%q) = %v, want an error saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || role.String() != tc.role {
			t.Errorf("SignerRole(%q) = %q, %v; want %q", tc.name, role, err, tc.role)
		}
	}
}

func TestCheckDelegationRole(t *testing.T) {
	for role, ok := range map[string]bool{
		"targets/releases": true,
		"targets/team/qa":  true,
		"targets":          false,
		"releases":         false,
		"root":             false,
		"targets/":         false,
	} {
		if err := CheckDelegationRole(role); (err == nil) != ok {
			t.Errorf("CheckDelegationRole(%q) = %v, want ok=%v", role, err, ok)
		}
	}
}

// testKeys makes n ECDSA keys in memory.
func testKeys(t *testing.T, n int) (*cryptoservice.CryptoService, []data.PublicKey) {
	t.Helper()
	cs := cryptoservice.NewCryptoService(trustmanager.NewKeyMemoryStore(passphrase.ConstantRetriever("pass")))
	var out []data.PublicKey
	for range n {
		k, err := cs.Create("targets/x", "", data.ECDSAKey)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return cs, out
}

func TestMatchKeys(t *testing.T) {
	_, ks := testKeys(t, 2)
	br := data.NewBaseRole("targets/x", 1, ks...)
	a, b := ks[0].ID(), ks[1].ID()
	for _, tc := range []struct {
		name string
		refs []string
		want []string
		err  string
	}{
		{"full ID", []string{a}, []string{a}, ""},
		{"prefix", []string{b[:8]}, []string{b}, ""},
		{"twice", []string{a, a[:10]}, []string{a}, ""},
		{"short prefix", []string{a[:7]}, nil, "is not one of its keys"},
		{"unknown", []string{strings.Repeat("f", 64)}, nil, "is not one of its keys"},
	} {
		got, err := matchKeys(br, tc.refs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestValidUnder(t *testing.T) {
	cs, ks := testKeys(t, 3)
	tg := data.NewTargets()
	s, err := tg.ToSigned()
	if err != nil {
		t.Fatal(err)
	}
	if err := signed.Sign(cs, s, ks[:2], 2, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := canonicaljson.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		keys      []data.PublicKey
		threshold int
		want      bool
	}{
		{"both signers, threshold 2", ks[:2], 2, true},
		{"one signer kept, threshold 1", ks[1:2], 1, true},
		{"one signer kept, threshold 2", []data.PublicKey{ks[0], ks[2]}, 2, false},
		{"no signer kept", ks[2:], 1, false},
	} {
		if got := validUnder(raw, data.NewBaseRole("targets/x", tc.threshold, tc.keys...)); got != tc.want {
			t.Errorf("%s: validUnder = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoadOrder(t *testing.T) {
	raw := map[string][]byte{"root": nil, "timestamp": nil, "snapshot": nil, "targets": nil,
		"targets/b": nil, "targets/a/x": nil, "targets/a": nil}
	want := []string{"root", "timestamp", "snapshot", "targets", "targets/a", "targets/b", "targets/a/x"}
	if got := loadOrder(raw); !slices.Equal(got, want) {
		t.Errorf("loadOrder = %v, want %v", got, want)
	}
}

func TestTagHelpers(t *testing.T) {
	if got := outside([]string{"v1", "dev-1", "x"}, []string{"v", "dev-"}); !slices.Equal(got, []string{"x"}) {
		t.Errorf("outside = %v", got)
	}
	if got := outside([]string{"v1"}, []string{""}); len(got) != 0 {
		t.Errorf("outside of every path = %v", got)
	}
	if got := listTags([]string{"a", "b", "c", "d", "e", "f", "g"}); got != "a, b, c, d, e and 2 more" {
		t.Errorf("listTags = %q", got)
	}
	if got := notIn([]string{"a", "b"}, []string{"b"}); !slices.Equal(got, []string{"a"}) {
		t.Errorf("notIn = %v", got)
	}
}

func TestDelegations(t *testing.T) {
	res := &verify.Result{Roles: map[string]*verify.Role{
		"targets":          {Name: "targets", Status: verify.RoleVerified},
		"targets/releases": {Name: "targets/releases", Status: verify.RoleVerified, KeyIDs: []string{"b", "a"}, Threshold: 2, Paths: []string{""}, Targets: map[string]verify.Target{"v2": {}, "v1": {}}},
		"targets/alice":    {Name: "targets/alice", Status: verify.RoleDisabled},
	}}
	got := Delegations(res)
	if len(got) != 2 || got[0].Role != "targets/alice" || got[1].Role != "targets/releases" {
		t.Fatalf("Delegations = %+v", got)
	}
	r := got[1]
	if r.Threshold != 2 || !slices.Equal(r.KeyIDs, []string{"a", "b"}) || !slices.Equal(r.Tags, []string{"v1", "v2"}) || r.Status != verify.RoleVerified {
		t.Errorf("targets/releases = %+v", r)
	}
	if got[0].Status != verify.RoleDisabled {
		t.Errorf("targets/alice = %+v", got[0])
	}
}
