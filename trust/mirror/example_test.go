package mirror_test

import (
	"context"
	"fmt"
	"log"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/signet-project/signet/trust"
	"github.com/signet-project/signet/trust/mirror"
)

// Copy two repositories from notary.docker.io (docker token auth with the
// Docker Hub login from the Docker keychain) into a signet trust server
// started with --allow-import, and print what became of each.
func ExampleRun() {
	ctx := context.Background()
	src, err := mirror.NewServerSource("https://notary.docker.io", trust.TransportOptions{}, authn.DefaultKeychain, 8)
	if err != nil {
		log.Fatal(err)
	}
	dst, err := mirror.NewServerSink("https://trust.example.com", trust.TransportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := mirror.Run(ctx, mirror.Options{Source: src, Sink: dst,
		Repositories: []string{"docker.io/team/app", "docker.io/team/db"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rep.Results {
		fmt.Println(r.GUN, r.Outcome, r.SnapshotSHA256, r.Err)
		if r.ArchiveRule != "" {
			fmt.Println("  proxy rule:", r.ArchiveRule)
		}
	}
}

// Write an offline archive of what a docker client cached, for an
// air-gapped transfer; `signet mirror --from DIR` reads it back.
func ExampleOpenSource_trustDir() {
	src, err := mirror.OpenSource("/home/me/.docker/trust", mirror.SourceOptions{})
	if err != nil {
		log.Fatal(err)
	}
	dst, err := mirror.OpenSink("/media/usb/trust-archive", trust.TransportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := mirror.Run(context.Background(), mirror.Options{Source: src, Sink: dst})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Count(mirror.Copied), "copied,", rep.Count(mirror.Failed), "failed")
}
