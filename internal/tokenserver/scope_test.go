package tokenserver

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		scope   string
		want    Access // zero: an error is expected
		wantErr string
	}{
		{scope: "repository:alpine:pull", want: Access{"repository", "alpine", []string{"pull"}}},
		{scope: "repository:registry.example.com/team/app:push,pull",
			want: Access{"repository", "registry.example.com/team/app", []string{"push", "pull"}}},
		{scope: "repository:registry.example.com:5000/team/app:*",
			want: Access{"repository", "registry.example.com:5000/team/app", []string{"*"}}},
		{scope: "repository:docker.io/library/alpine:pull,pull,push",
			want: Access{"repository", "docker.io/library/alpine", []string{"pull", "push"}}},
		{scope: "repository:a/b__c-d.e/f:delete", want: Access{"repository", "a/b__c-d.e/f", []string{"delete"}}},

		{scope: "", wantErr: "want <type>:<name>:<actions>"},
		{scope: "repository", wantErr: "want <type>:<name>:<actions>"},
		{scope: "repository:alpine", wantErr: "want <type>:<name>:<actions>"},
		{scope: "registry:catalog:*", wantErr: "unsupported resource type"},
		{scope: "Repository:alpine:pull", wantErr: "unsupported resource type"},
		{scope: "repository::pull", wantErr: "invalid repository name"},
		{scope: "repository:Alpine:pull", wantErr: "invalid repository name"},
		{scope: "repository:team//app:pull", wantErr: "invalid repository name"},
		{scope: "repository:/app:pull", wantErr: "invalid repository name"},
		{scope: "repository:app/:pull", wantErr: "invalid repository name"},
		{scope: "repository:team/app name:pull", wantErr: "invalid repository name"},
		{scope: "repository:" + strings.Repeat("a", 256) + ":pull", wantErr: "invalid repository name"},
		{scope: "repository:alpine:", wantErr: `invalid action ""`},
		{scope: "repository:alpine:pull,", wantErr: `invalid action ""`},
		{scope: "repository:alpine:Pull", wantErr: `invalid action "Pull"`},
		{scope: "repository:alpine:pu*", wantErr: `invalid action "pu*"`},
		{scope: "repository:alpine:5000", wantErr: `invalid action "5000"`},
		{scope: "repository:alpine:pull:push", wantErr: "invalid repository name"},
		{scope: "repository:alpine:" + strings.Repeat("p", maxScopeLength), wantErr: "longer than 512 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			got, err := parseScope(tt.scope)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseScope(%.80q) = %v, %v; want error with %q", tt.scope, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseScope(%q) = %v, %v; want %v", tt.scope, got, err, tt.want)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	many, names := make([]string, maxScopes+1), make([]string, maxScopes)
	for i := range many {
		many[i] = "repository:alpine:pull"
	}
	for i := range names {
		names[i] = "alpine"
	}
	tests := []struct {
		name    string
		params  []string
		want    []string // names, in order
		wantErr string
	}{
		{name: "none"},
		{name: "one", params: []string{"repository:a:pull"}, want: []string{"a"}},
		{name: "several params", params: []string{"repository:a:pull", "repository:b:push"}, want: []string{"a", "b"}},
		{name: "space separated", params: []string{"repository:a:pull repository:b:push"}, want: []string{"a", "b"}},
		{name: "empty param", params: []string{""}},
		{name: "at the limit", params: many[:maxScopes], want: names},
		{name: "over the limit", params: many, wantErr: "more than 16"},
		{name: "one bad", params: []string{"repository:a:pull", "repository:B:pull"}, wantErr: "invalid repository name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseScopes(tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseScopes = %v, %v; want error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Fatalf("parseScopes names = %q, want %q", names, tt.want)
			}
		})
	}
}

// FuzzParseScope checks that an accepted scope is well formed and prints
// back to an equivalent scope.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:alpine:pull", "repository:registry.example.com:5000/team/app:push,pull",
		"repository:a:*", "registry:catalog:*", "repository::", "repository:a:pull,pull", ":::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseScope(s)
		if err != nil {
			return
		}
		if len(s) > maxScopeLength || a.Type != ResourceType || a.Name == "" || len(a.Actions) == 0 {
			t.Fatalf("parseScope(%q) = %+v", s, a)
		}
		for _, act := range a.Actions {
			if act == "" || strings.ContainsAny(act, ":, ") {
				t.Fatalf("parseScope(%q): action %q", s, act)
			}
		}
		again, err := parseScope(a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ","))
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, a)
		}
	})
}
