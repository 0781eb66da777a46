package trust

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/signet-project/signet/internal/testservers"
)

func TestCheckServerURL(t *testing.T) {
	tests := map[string]string{
		"https://trust.example.com": "",
		"http://127.0.0.1:4443":     "",
		"http://localhost:4443":     "",
		"http://[::1]:4443":         "",
		"http://trust.example.com":  "plain http is allowed only for loopback",
		"http://10.0.0.1:4443":      "plain http is allowed only for loopback",
		"trust.example.com":         "give an https:// URL",
		"ftp://trust.example.com":   "give an https:// URL",
		"https://":                  "give an https:// URL",
	}
	for in, want := range tests {
		_, err := CheckServerURL(in)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckServerURL(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestCheckAndDenyMessages(t *testing.T) {
	a, b := make([]byte, 32), make([]byte, 32)
	b[0] = 1
	signed := SignedTarget{Tag: "v1", SHA256: a, Size: 10, Role: "targets/releases"}
	if err := Check("r/app:v1", signed, a, 10); err != nil {
		t.Fatalf("same digest and size: %v", err)
	}
	err := Check("r/app:v1", signed, b, 10)
	var d *DenyError
	if !errors.As(err, &d) || d.Reason != ReasonMismatch || !strings.Contains(err.Error(), "the tag moved after signing") || !strings.Contains(err.Error(), "sha256:01") {
		t.Fatalf("digest mismatch: %v", err)
	}
	if err := Check("r/app:v1", signed, a, 11); err == nil || !strings.Contains(err.Error(), "says 10 bytes") {
		t.Fatalf("size mismatch: %v", err)
	}
}

// TestReadOnEmptyServer: a repository without trust data is a denial,
// not an infrastructure error.
func TestReadOnEmptyServer(t *testing.T) {
	_, err := Read(context.Background(), "registry.example.com/none", ReadOptions{TrustDir: t.TempDir(), Server: testservers.TrustServer(t)})
	var d *DenyError
	if !errors.As(err, &d) || d.Reason != ReasonNoTrustData {
		t.Fatalf("lookup: %v", err)
	}
	if _, err := Open("x", Options{Server: "https://t"}); err == nil {
		t.Fatal("Open without a trust dir succeeded")
	}
}
