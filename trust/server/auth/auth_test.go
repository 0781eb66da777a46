package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder is an Authorizer that records calls and answers with err.
type recorder struct {
	calls int
	err   error
}

func (r *recorder) Authorize(*http.Request, string, ...string) error {
	r.calls++
	return r.err
}

func TestReadOpen(t *testing.T) {
	challenge := &ChallengeError{Scheme: "Basic", Realm: "r", Err: ErrNoCredentials}
	tests := []struct {
		name      string
		gun       string
		actions   []string
		innerErr  error
		nilInner  bool
		wantInner bool
		wantErr   bool
	}{
		{name: "pull is open", gun: gun, actions: []string{"pull"}, innerErr: challenge},
		{name: "push goes to inner", gun: gun, actions: []string{"push", "pull"}, innerErr: challenge, wantInner: true, wantErr: true},
		{name: "pull and push goes to inner", gun: gun, actions: []string{"pull", "push"}, innerErr: challenge, wantInner: true, wantErr: true},
		{name: "star goes to inner", gun: gun, actions: []string{"*"}, innerErr: challenge, wantInner: true, wantErr: true},
		{name: "push allowed by inner", gun: gun, actions: []string{"push", "pull"}, wantInner: true},
		{name: "ping goes to inner", gun: "", actions: nil, innerErr: challenge, wantInner: true, wantErr: true},
		{name: "pull ping goes to inner", gun: "", actions: []string{"pull"}, innerErr: challenge, wantInner: true, wantErr: true},
		{name: "no actions goes to inner", gun: gun, actions: nil, wantInner: true},
		{name: "nil inner: pull open", gun: gun, actions: []string{"pull"}, nilInner: true},
		{name: "nil inner: push denied", gun: gun, actions: []string{"push", "pull"}, nilInner: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := &recorder{err: tt.innerErr}
			var a Authorizer
			if tt.nilInner {
				a = ReadOpen(nil)
			} else {
				a = ReadOpen(inner)
			}
			err := a.Authorize(httptest.NewRequest("GET", "/", nil), tt.gun, tt.actions...)
			if got := inner.calls > 0; got != tt.wantInner {
				t.Errorf("inner called = %v, want %v", got, tt.wantInner)
			}
			if got := err != nil; got != tt.wantErr {
				t.Errorf("Authorize: %v, want error: %v", err, tt.wantErr)
			}
			if tt.nilInner && err != nil {
				var d *DeniedError
				if !errors.As(err, &d) {
					t.Errorf("Authorize: %T, want *DeniedError", err)
				}
			}
		})
	}
}

func TestAllowAll(t *testing.T) {
	var a Authorizer = AllowAll{}
	for _, actions := range [][]string{nil, {"pull"}, {"push", "pull"}, {"*"}} {
		if err := a.Authorize(httptest.NewRequest("DELETE", "/", nil), gun, actions...); err != nil {
			t.Errorf("Authorize(%q): %v", actions, err)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"denied user", &DeniedError{User: "bob", GUN: gun, Actions: []string{"push", "pull"}},
			`authorize push,pull on repository "registry.example.com/team/app": user "bob" is not allowed`},
		{"denied anonymous ping", &DeniedError{},
			`authorize registry access: request is not allowed`},
		{"challenge", &ChallengeError{Scheme: "Basic", Err: ErrNoCredentials},
			`authentication required: no credentials`},
		{"bare challenge", &ChallengeError{Scheme: "Basic"},
			`authentication required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %s\nwant      %s", got, tt.want)
			}
			if strings.ContainsAny(tt.err.Error(), "\n\r") {
				t.Errorf("Error() is not one line")
			}
		})
	}
}
