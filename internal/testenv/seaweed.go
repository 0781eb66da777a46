//go:build unix

package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// S3 is an S3-compatible server started for one test by S3Server.
type S3 struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT. Buckets
	// are addressed path-style (Endpoint/bucket/key).
	Endpoint string
	// Region is the region to sign requests for.
	Region string
	// AccessKey and SecretKey are the credentials of the one identity the
	// server knows. Requests must be signed with them (AWS Signature
	// Version 4); the server refuses anonymous and wrongly signed ones.
	AccessKey, SecretKey string
	// Bucket is an empty bucket created for the test.
	Bucket string
}

const (
	s3Region = "us-east-1"
	// s3StartTimeout bounds one start of weed, from exec to a bucket that
	// takes writes. A start takes about 5 s, most of it fixed waits in
	// weed (its filer waits 3 s for peers, its master 1 s before it
	// hands out write locks), so it barely depends on the machine.
	s3StartTimeout = 60 * time.Second
	// s3StartAttempts: a start is retried when weed exits early, which is
	// what it does when another process took one of its ports between
	// freePorts and weed's listen.
	s3StartAttempts = 3
)

// errWeedExited reports that weed exited before it was ready.
var errWeedExited = errors.New("weed exited before it was ready")

// S3Server starts SeaweedFS (weed, installed by scripts/install-tools.sh)
// for the test: `weed mini`, its all-in-one server (master, volume server,
// filer, S3 gateway, and an admin server that cannot be turned off), on
// loopback ports only, with its data in a temporary directory, one
// identity (S3.AccessKey, S3.SecretKey) and one empty bucket (S3.Bucket).
// It returns once the bucket takes writes, about 5 s after the start.
// The server is killed when the test and its subtests finish; if the test
// failed, the tail of weed's log is logged then.
//
// It calls Require when weed is not installed and fails the test when weed
// does not start.
func S3Server(t testing.TB) S3 {
	t.Helper()
	weed := tool(t, "weed")
	for attempt := 1; ; attempt++ {
		s, err := startWeed(t, weed)
		if err == nil {
			return s
		}
		if attempt == s3StartAttempts || !errors.Is(err, errWeedExited) {
			t.Fatalf("testenv: start SeaweedFS S3 server (attempt %d): %v", attempt, err)
		}
		t.Logf("testenv: start SeaweedFS S3 server (attempt %d), retrying: %v", attempt, err)
	}
}

// startWeed makes one attempt of S3Server.
func startWeed(t testing.TB, weed string) (S3, error) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return S3{}, fmt.Errorf("create data directory: %w", err)
	}
	s := S3{Region: s3Region, AccessKey: "signet-" + randomHex(t, 8), SecretKey: randomHex(t, 20), Bucket: "signet-test"}

	// weed's static identity file; "Admin" lets the identity create buckets.
	config := filepath.Join(dir, "s3.json")
	identities := fmt.Sprintf(`{"identities": [{"name": "signet-test",
	  "credentials": [{"accessKey": %q, "secretKey": %q}],
	  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}`, s.AccessKey, s.SecretKey)
	if err := os.WriteFile(config, []byte(identities), 0o600); err != nil {
		return S3{}, fmt.Errorf("write S3 identity file: %w", err)
	}

	// Every port is set: weed's defaults are fixed ports, and a gRPC port
	// defaults to its HTTP port + 10000, which may be taken.
	p := freePorts(t, 10)
	master, masterGRPC, volume, volumeGRPC, filer, filerGRPC, s3, s3GRPC, admin, adminGRPC := p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]
	port := strconv.Itoa
	s.Endpoint = "http://127.0.0.1:" + port(s3)
	args := []string{
		"-logtostderr", // glog would also write log files into $TMPDIR
		"mini",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-dir=" + data,
		"-master.port=" + port(master), "-master.port.grpc=" + port(masterGRPC),
		"-master.volumeSizeLimitMB=64", // mini would size volumes from the free disk space
		"-master.telemetry=false",      // on by default: reports to a public server
		"-volume.port=" + port(volume), "-volume.port.grpc=" + port(volumeGRPC),
		"-volume.max=8", // so at most 8 × 64 MiB
		"-filer.port=" + port(filer), "-filer.port.grpc=" + port(filerGRPC),
		"-s3.port=" + port(s3), "-s3.port.grpc=" + port(s3GRPC),
		"-s3.config=" + config,
		"-s3.autoCreateBucket=false",             // as on AWS: a PUT into a missing bucket fails
		"-s3.port.iceberg=0", "-s3.port.lance=0", // catalogs on by default
		"-webdav=false",
		"-admin.ui=false", "-admin.port=" + port(admin), "-admin.port.grpc=" + port(adminGRPC), "-admin.port.legacy=0",
	}

	logPath := filepath.Join(dir, "weed.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return S3{}, fmt.Errorf("create weed log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(weed, args...)
	cmd.Dir = dir
	// weed reads security.toml and other settings from the working
	// directory and ~/.seaweedfs: keep a developer's out.
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return S3{}, fmt.Errorf("start %s: %w", weed, err)
	}
	exited := make(chan struct{})
	var waitErr error
	ready := false // a failed start reports the log itself
	go func() { waitErr = cmd.Wait(); close(exited) }()

	t.Cleanup(func() {
		// The data is thrown away, so no graceful stop (weed takes
		// seconds to tens of seconds for one).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		// weed also serves on Unix sockets at fixed paths in /tmp named
		// by port, and removes them only on a graceful stop.
		for _, sock := range []string{
			"master-grpc-" + port(masterGRPC), "volume-grpc-" + port(volumeGRPC),
			"filer-grpc-" + port(filerGRPC), "filer-" + port(filer),
			"s3-grpc-" + port(s3GRPC), "s3-" + port(s3), "admin-grpc-" + port(adminGRPC),
		} {
			path := "/tmp/seaweedfs-" + sock + ".sock"
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
				_ = os.Remove(path)
			}
		}
		if ready && t.Failed() {
			t.Logf("testenv: SeaweedFS log %s, last lines:\n%s", logPath, logTail(logPath))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), s3StartTimeout)
	defer cancel()
	if err := s.await(ctx, exited); err != nil {
		if errors.Is(err, errWeedExited) {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		return S3{}, fmt.Errorf("%s: %w; log %s, last lines:\n%s", weed, err, logPath, logTail(logPath))
	}
	ready = true
	return s, nil
}

// await waits until the server answers, creates the bucket, and writes
// and deletes an object in it: the S3 gateway answers before weed can
// store objects (it needs a volume and the filer's write locks first).
func (s S3) await(ctx context.Context, exited <-chan struct{}) error {
	probe := "/" + s.Bucket + "/.testenv-probe"
	steps := []struct {
		what         string
		method, path string
		body         []byte
	}{
		{"create bucket " + s.Bucket, http.MethodPut, "/" + s.Bucket, nil},
		{"write a probe object", http.MethodPut, probe, []byte("probe")},
		{"delete the probe object", http.MethodDelete, probe, nil},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var last error
	for _, st := range steps {
		for {
			req, err := s.signedRequest(ctx, st.method, st.path, st.body, s.AccessKey, s.SecretKey)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err == nil {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					break
				}
				last = fmt.Errorf("%s: %s %s: %s: %s", st.what, st.method, st.path, resp.Status, bytes.TrimSpace(msg))
				// 5xx: not ready yet. 4xx: weed will keep refusing it.
				if resp.StatusCode < 500 {
					return last
				}
			} else {
				last = fmt.Errorf("%s: %w", st.what, err)
			}
			select {
			case <-exited:
				return errWeedExited
			case <-ctx.Done():
				return fmt.Errorf("not ready after %v: %w", s3StartTimeout, last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// signedRequest returns a request of method for path (such as
// "/bucket/key") on the server, with body, signed with AWS Signature
// Version 4 for accessKey and secretKey.
func (s S3) signedRequest(ctx context.Context, method, path string, body []byte, accessKey, secretKey string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.Endpoint+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("S3 request %s %s: %w", method, path, err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash) // S3 wants it, signed
	creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", s.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign S3 request %s %s: %w", method, path, err)
	}
	return req, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago, with the caveat of FreePort. All n are held until all are
// chosen, so none is returned twice.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: find %d free ports: %v", n, err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// randomHex returns n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

// logTail returns the last 40 lines (at most 8 KiB) of the file at path.
func logTail(path string) string {
	const maxBytes = 8 << 10
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
