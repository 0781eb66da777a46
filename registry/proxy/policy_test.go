package proxy

import (
	"strings"
	"testing"

	"github.com/signet-project/signet/trust/verify"
)

func TestPolicyMatch(t *testing.T) {
	pin := verify.Pin{TOFU: true}
	p := Policy{Rules: []Rule{
		{Name: "all", Match: "reg:5000/*", TrustServer: "https://t", Pin: pin},
		{Name: "team", Match: "reg:5000/team/*", TrustServer: "https://t", Pin: pin},
		{Name: "exact", Match: "reg:5000/team/special", TrustServer: "https://t", Pin: pin},
		{Name: "hub", Match: "docker.io/library/*", Mode: ModeAllow},
	}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"reg:5000/app":            "all",
		"reg:5000/team/app":       "team",
		"reg:5000/team/deep/app":  "team",
		"reg:5000/team/special":   "exact",
		"docker.io/library/nginx": "hub",
		"docker.io/other/nginx":   "",
		"other:5000/app":          "",
		"reg:5000":                "",
		// Only clean names match: these would pass a prefix test.
		"reg:5000/team/../special": "",
		"reg:5000/team//app":       "",
		"reg:5000/team/./app":      "",
		"reg:5000/team/app/":       "",
		"reg:5000/team/App":        "",
	}
	for gun, want := range tests {
		r, ok := p.match(gun)
		got := ""
		if ok {
			got = r.Name
		}
		if got != want {
			t.Errorf("match(%q) = %q, want %q", gun, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{Match: "a/*", TrustServer: "https://t"}, "no root pin"},
		{Rule{Match: "a/*", Pin: verify.Pin{TOFU: true}}, "no trust server"},
		{Rule{Match: "a/*", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}, Mode: "audit"}, `mode "audit"`},
		{Rule{Match: "a/*", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}, Signers: []string{"releases"}}, "is not targets"},
		{Rule{Match: "[", TrustServer: "https://t", Pin: verify.Pin{TOFU: true}}, "bad pattern"},
		{Rule{}, "empty match"},
	}
	for _, tc := range tests {
		err := Policy{Rules: []Rule{tc.rule}}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.rule, err, tc.want)
		}
	}
	if err := (Policy{}).Validate(); err == nil {
		t.Error("empty policy accepted")
	}
}
