// Command signet signs container image digests into TUF (Notary v1 /
// Docker Content Trust) metadata, serves that trust data, and enforces it.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		printError(root, os.Stderr, err)
		stop()
		os.Exit(exitCode(err))
	}
}

// exitCode is the process status for a command's error: 1 unless the
// command chose another (signet verify: 2 when it could not check).
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
