package proxy_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/signet-project/signet/registry/blobcache"
	"github.com/signet-project/signet/registry/proxy"
	"github.com/signet-project/signet/trust/verify"
)

// A proxy with a blob cache: the caller opens the store, runs the scrub,
// and closes the store once the server has shut down.
func ExampleNew_blobCache() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := blobcache.Open("/var/cache/signet/blobs", blobcache.Options{MaxBytes: 20 << 30, Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close() // after srv.Shutdown
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go proxy.ScrubCache(ctx, store, 24*time.Hour, logger)

	ups, pol, err := proxy.QuickStart("https://registry.example.com", "https://trust.example.com", verify.Pin{CAFile: "/etc/signet/root-ca.pem"}, nil, "")
	if err != nil {
		log.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Upstreams: ups, Policy: pol, Logger: logger, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: "127.0.0.1:5001", Handler: p.Handler()}
	_ = srv // srv.ListenAndServe(), then srv.Shutdown(ctx) on a signal
}
