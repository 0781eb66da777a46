package auth_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/signet-project/signet/trust/server/auth"
	"golang.org/x/crypto/bcrypt"
)

// protect answers 401 or 403 from the authorizer's errors, as the trust
// server does.
func protect(a auth.Authorizer, gun string, actions []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := a.Authorize(r, gun, actions...)
		var challenge *auth.ChallengeError
		var denied *auth.DeniedError
		switch {
		case err == nil:
			next.ServeHTTP(w, r)
		case errors.As(err, &challenge):
			w.Header().Set("WWW-Authenticate", challenge.Header())
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case errors.As(err, &denied):
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
}

func ExampleNewHtpasswd() {
	dir, err := os.MkdirTemp("", "signet-auth")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		panic(err)
	}

	htpasswd, err := auth.NewHtpasswd(path, "signet")
	if err != nil {
		panic(err)
	}
	// Anyone may read; publishing needs alice's password.
	a := auth.ReadOpen(htpasswd)
	const gun = "registry.example.com/team/app"
	publish := protect(a, gun, []string{auth.ActionPush, auth.ActionPull}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	w := httptest.NewRecorder()
	publish.ServeHTTP(w, httptest.NewRequest("POST", "/v2/"+gun+"/_trust/tuf/", nil))
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))

	r := httptest.NewRequest("POST", "/v2/"+gun+"/_trust/tuf/", nil)
	r.SetBasicAuth("alice", "s3cret")
	w = httptest.NewRecorder()
	publish.ServeHTTP(w, r)
	fmt.Println(w.Code)
	// Output:
	// 401 Basic realm="signet"
	// 200
}
