package keys

import (
	"errors"
	"strings"
	"testing"
)

func TestEnvFor(t *testing.T) {
	tests := map[string]string{
		"root": "SIGNET_ROOT_PASSPHRASE", "targets": "SIGNET_REPOSITORY_PASSPHRASE",
		"snapshot": "SIGNET_REPOSITORY_PASSPHRASE", "targets/releases": "SIGNET_DELEGATION_PASSPHRASE",
		"delegation": "SIGNET_DELEGATION_PASSPHRASE",
	}
	for role, want := range tests {
		if got := EnvFor(role)[0]; got != want {
			t.Errorf("EnvFor(%q)[0] = %s, want %s", role, got, want)
		}
	}
}

func TestRetriever(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name     string
		r        *Retriever
		alias    string
		create   bool
		attempts int
		want     string
		wantErr  string
	}{
		{"signet name first", &Retriever{Getenv: env(map[string]string{"SIGNET_ROOT_PASSPHRASE": "aaaaaaaa", "NOTARY_ROOT_PASSPHRASE": "bbbbbbbb"})}, "root", false, 0, "aaaaaaaa", ""},
		{"docker name", &Retriever{Getenv: env(map[string]string{"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "cccccccc"})}, "targets", false, 0, "cccccccc", ""},
		{"notary delegation name", &Retriever{Getenv: env(map[string]string{"NOTARY_DELEGATION_PASSPHRASE": "dddddddd"})}, "targets/releases", false, 0, "dddddddd", ""},
		{"wrong env passphrase gives up at once", &Retriever{Getenv: env(map[string]string{"SIGNET_ROOT_PASSPHRASE": "aaaaaaaa"})}, "root", false, 1, "", "SIGNET_ROOT_PASSPHRASE does not decrypt"},
		{"short new passphrase", &Retriever{Getenv: env(map[string]string{"SIGNET_ROOT_PASSPHRASE": "short"})}, "root", true, 0, "", "at least 8"},
		{"nothing and no terminal", &Retriever{Getenv: env(nil)}, "targets", false, 0, "", "set SIGNET_REPOSITORY_PASSPHRASE"},
		{"prompt", &Retriever{Getenv: env(nil), Prompt: func(string, bool) (string, error) { return "typed-passphrase", nil }}, "root", false, 0, "typed-passphrase", ""},
		{"prompt gives up after 3", &Retriever{Getenv: env(nil), Prompt: func(string, bool) (string, error) { return "x", nil }}, "root", false, 3, "", "3 times"},
		{"prompt without terminal", &Retriever{Getenv: env(nil), Prompt: func(string, bool) (string, error) { return "", ErrNoPrompt }}, "root", false, 0, "", "set SIGNET_ROOT_PASSPHRASE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, giveup, err := tc.r.PassRetriever()("abcdef0123456789", tc.alias, tc.create, tc.attempts)
			if tc.wantErr != "" {
				if err == nil || !giveup || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(tc.r.Err(), err) {
					t.Fatalf("got %q %v %v, want give-up error containing %q", got, giveup, err, tc.wantErr)
				}
				return
			}
			if err != nil || giveup || got != tc.want {
				t.Fatalf("got %q %v %v, want %q", got, giveup, err, tc.want)
			}
		})
	}
}

func TestPromptRetriesShortNewPassphrase(t *testing.T) {
	answers := []string{"short", "long enough now"}
	var questions []string
	r := &Retriever{Getenv: func(string) string { return "" }, Prompt: func(q string, confirm bool) (string, error) {
		questions = append(questions, q)
		a := answers[0]
		answers = answers[1:]
		return a, nil
	}}
	got, _, err := r.PassRetriever()("id", "root", true, 0)
	if err != nil || got != "long enough now" || len(questions) != 2 || !strings.Contains(questions[1], "Too short") {
		t.Fatalf("got %q %v, questions %q", got, err, questions)
	}
}
