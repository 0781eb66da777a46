//go:build unix

package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Script runs the repository's scripts/NAME with args in the environment
// env (within 10 minutes) and returns its stdout, trimmed. It fails the
// test with the last 40 lines of the script's stderr.
func Script(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	root := RepoRoot()
	if root == "" {
		t.Fatal("no repository root (go.mod) above the working directory")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts", name)}, args...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, LastLines(stderr.String(), 40))
	}
	return strings.TrimSpace(string(out))
}

// StopDaemon sends SIGTERM to the process whose pid is in pidFile (a
// daemon a script started), waits up to 20 s for it to exit, then kills
// it.
func StopDaemon(t testing.TB, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Logf("stop daemon: %v", err)
		return
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
		t.Logf("stop daemon: bad pid file %s: %q", pidFile, b)
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for range 200 {
		if !alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("daemon %d did not stop in 20s: killing it", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// alive reports whether pid runs (a zombie, waiting for init to reap it,
// does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
