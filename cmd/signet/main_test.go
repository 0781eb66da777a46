package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signet-project/signet/internal/testservers"
	"github.com/signet-project/signet/keys/yubikey"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"signet": main,
	})
}

// TestScripts runs the CLI behaviour tests in testdata/script.
func TestScripts(t *testing.T) {
	// One registry and one trust server for all publisher scripts; each
	// script uses its own repository names.
	reg, trustURL := testservers.Registry(t), testservers.TrustServer(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			// Free loopback ports for scripts that start servers.
			for _, v := range []string{"PORT", "PORT2"} {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					return err
				}
				env.Setenv(v, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
				defer l.Close()
			}
			env.Setenv("HOME", env.WorkDir+"/home")
			env.Setenv("SIGNET_SERVER_KEY_PASSPHRASE", "")
			// A registry and a trust server for the publisher scripts.
			env.Setenv("REGISTRY", reg)
			env.Setenv("TRUST", trustURL)
			env.Setenv("SIGNET_TRUST_DIR", env.WorkDir+"/trust")
			for _, k := range []string{"SIGNET_TRUST_SERVER", "DOCKER_CONTENT_TRUST_SERVER", "SIGNET_ROOT_PASSPHRASE", "SIGNET_REPOSITORY_PASSPHRASE", "SIGNET_DELEGATION_PASSPHRASE", "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "NOTARY_ROOT_PASSPHRASE", "NOTARY_TARGETS_PASSPHRASE", "NOTARY_SNAPSHOT_PASSPHRASE", "NOTARY_DELEGATION_PASSPHRASE"} {
				env.Setenv(k, "")
			}
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
			// pushrandom IMAGE:TAG: push a random image to the registry.
			"pushrandom": func(ts *testscript.TestScript, neg bool, args []string) {
				for _, a := range args {
					img, err := random.Image(512, 1)
					ts.Check(err)
					tag, err := name.NewTag(a)
					ts.Check(err)
					ts.Check(remote.Write(tag, img))
				}
			},
			// digest IMAGE:TAG: print the registry's digest and size.
			"digest": func(ts *testscript.TestScript, neg bool, args []string) {
				ref, err := name.ParseReference(args[0])
				ts.Check(err)
				d, err := remote.Head(ref)
				ts.Check(err)
				fmt.Fprintf(ts.Stdout(), "%s %d\n", d.Digest, d.Size)
			},
			// ocilayout DIR: write an OCI layout holding one random image.
			"ocilayout": func(ts *testscript.TestScript, neg bool, args []string) {
				img, err := random.Image(1024, 2)
				ts.Check(err)
				p, err := layout.Write(ts.MkAbs(args[0]), empty.Index)
				ts.Check(err)
				ts.Check(p.AppendImage(img))
			},
			// savetar FILE: write a docker-save style tarball of a random image.
			"savetar": func(ts *testscript.TestScript, neg bool, args []string) {
				img, err := random.Image(1024, 1)
				ts.Check(err)
				tag, err := name.NewTag("example.com/saved:latest")
				ts.Check(err)
				ts.Check(tarball.WriteToFile(ts.MkAbs(args[0]), tag, img))
			},
			// jsonlines stdout|stderr: the last command wrote at least one
			// line there, and every line is a JSON object.
			"jsonlines": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 || (args[0] != "stdout" && args[0] != "stderr") {
					ts.Fatalf("usage: jsonlines stdout|stderr")
				}
				text := strings.TrimRight(ts.ReadFile(args[0]), "\n")
				if text == "" {
					ts.Fatalf("no %s lines", args[0])
				}
				for i, line := range strings.Split(text, "\n") {
					var obj map[string]any
					if err := json.Unmarshal([]byte(line), &obj); err != nil {
						ts.Fatalf("%s line %d is not a JSON object: %q", args[0], i+1, line)
					}
				}
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
		// [yubikey]: this build has YubiKey support (PC/SC).
		Condition: func(cond string) (bool, error) {
			if cond == "yubikey" {
				return yubikey.Supported, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}
