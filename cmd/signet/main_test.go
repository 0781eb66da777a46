package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"signet": main,
	})
}

// TestScripts runs the CLI behaviour tests in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// A free loopback port for scripts that start a server.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			env.Setenv("PORT", fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
			l.Close()
			env.Setenv("HOME", env.WorkDir+"/home")
			env.Setenv("SIGNET_SERVER_KEY_PASSPHRASE", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitready [-ca FILE] URL: wait up to 20s for URL to answer
			// 200, trusting only the CA in FILE for https.
			"waitready": func(ts *testscript.TestScript, neg bool, args []string) {
				var caFile string
				if len(args) == 3 && args[0] == "-ca" {
					caFile, args = ts.MkAbs(args[1]), args[2:]
				}
				if len(args) != 1 {
					ts.Fatalf("usage: waitready [-ca FILE] URL")
				}
				deadline := time.Now().Add(20 * time.Second)
				for time.Now().Before(deadline) {
					client := http.DefaultClient
					if caFile != "" {
						pem, err := os.ReadFile(caFile)
						if err != nil {
							time.Sleep(50 * time.Millisecond)
							continue
						}
						pool := x509.NewCertPool()
						pool.AppendCertsFromPEM(pem)
						client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
					}
					resp, err := client.Get(args[0])
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("%s not ready", args[0])
			},
			// httpget URL: print the status code and body to stdout.
			"httpget": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: httpget URL")
				}
				resp, err := http.Get(args[0])
				if err != nil {
					ts.Fatalf("GET %s: %v", args[0], err)
				}
				defer resp.Body.Close()
				buf := make([]byte, 4096)
				n, _ := resp.Body.Read(buf)
				fmt.Fprintf(ts.Stdout(), "%d %s\n", resp.StatusCode, buf[:n])
			},
		},
	})
}
