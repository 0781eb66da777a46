//go:build unix

package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestS3Server starts SeaweedFS and makes a signed PUT, GET and DELETE of
// an object in the test's bucket; a request signed with a wrong secret and
// an unsigned one are refused.
func TestS3Server(t *testing.T) {
	start := time.Now()
	s := S3Server(t)
	t.Logf("S3 server at %s ready in %v", s.Endpoint, time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.Bucket == "" || s.Region == "" {
		t.Fatalf("S3Server returned %+v", s)
	}

	ctx := context.Background()
	do := func(method, path string, body []byte, secret string) (int, []byte) {
		t.Helper()
		req, err := s.signedRequest(ctx, method, path, body, s.AccessKey, secret)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: read body: %v", method, path, err)
		}
		return resp.StatusCode, got
	}

	key := "/" + s.Bucket + "/dir/object"
	data := bytes.Repeat([]byte("signet "), 10000)
	if code, body := do(http.MethodPut, key, data, s.SecretKey); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := do(http.MethodGet, key, nil, s.SecretKey); code != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes (want 200, %d bytes)", code, len(body), len(data))
	}

	if code, body := do(http.MethodGet, key, nil, s.SecretKey+"x"); code != http.StatusForbidden {
		t.Errorf("GET signed with a wrong secret: %d %s, want 403", code, body)
	}
	if code, body := do(http.MethodPut, key, []byte("overwrite"), "wrong"); code != http.StatusForbidden {
		t.Errorf("PUT signed with a wrong secret: %d %s, want 403", code, body)
	}
	resp, err := http.Get(s.Endpoint + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned GET: %s, want 403", resp.Status)
	}

	if code, body := do(http.MethodDelete, key, nil, s.SecretKey); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _ := do(http.MethodGet, key, nil, s.SecretKey); code != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	if code, _ := do(http.MethodPut, "/no-such-bucket/x", data, s.SecretKey); code != http.StatusNotFound {
		t.Errorf("PUT into a missing bucket: %d, want 404 (NoSuchBucket)", code)
	}
}
