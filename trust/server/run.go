package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PassphraseEnv names the environment variable holding the passphrase
// that encrypts server-managed keys.
const PassphraseEnv = "SIGNET_SERVER_KEY_PASSPHRASE"

// KeyPassphrase returns the server key passphrase: from env (the value of
// PassphraseEnv, if set), else from file, else from dataDir's
// server-key-passphrase file, created with a random passphrase (0600) on
// first start. generated reports that last case, which callers should
// warn about: the key and its passphrase then sit side by side on disk.
func KeyPassphrase(env, file, dataDir string) (pass string, generated bool, err error) {
	if env != "" {
		return env, false, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("read key passphrase file %q: %w", file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), false, nil
	}
	path := filepath.Join(dataDir, "server-key-passphrase")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimRight(string(b), "\r\n"), true, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read key passphrase file %q: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data dir %q: %w", dataDir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate key passphrase: %w", err)
	}
	pass = base64.RawURLEncoding.EncodeToString(raw)
	// Replicas started together on a new data dir race to create the
	// file: write it whole under a temporary name, then link it into
	// place, which fails if another replica got there first; that one's
	// passphrase is then the one to use.
	tmp, err := os.CreateTemp(dataDir, ".server-key-passphrase-*")
	if err != nil {
		return "", false, fmt.Errorf("create key passphrase file in %q: %w", dataDir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(pass + "\n"); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("write key passphrase file %q: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("write key passphrase file %q: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("write key passphrase file %q: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return "", false, fmt.Errorf("create key passphrase file %q: %w", path, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, fmt.Errorf("read key passphrase file %q: %w", path, err)
		}
		return strings.TrimRight(string(b), "\r\n"), true, nil
	}
	return pass, true, nil
}

// Serve answers h on ln (with TLS if tlsConfig is not nil) until ctx is
// cancelled, then stops accepting and waits up to grace for requests in
// flight. Requests get two minutes to be read and answered.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConfig *tls.Config, grace time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return ServeServer(ctx, ln, srv, grace)
}

// ServeServer runs srv on ln until ctx is cancelled, then shuts it down
// gracefully within grace. TLS is used when srv.TLSConfig is set.
func ServeServer(ctx context.Context, ln net.Listener, srv *http.Server, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
