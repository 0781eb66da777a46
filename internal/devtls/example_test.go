package devtls_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-project/signet/internal/devtls"
)

func ExampleEnsure() {
	dir, err := os.MkdirTemp("", "signet-tls")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	files, err := devtls.Ensure(filepath.Join(dir, "tls"), []string{"trust.internal", "192.0.2.10"}, time.Now())
	if err != nil {
		panic(err)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		panic(err)
	}
	_ = &tls.Config{Certificates: []tls.Certificate{pair}} // serve with it
	fmt.Println(filepath.Base(files.CACert), filepath.Base(files.Cert), filepath.Base(files.Key))
	// Output: ca.crt server.crt server.key
}
