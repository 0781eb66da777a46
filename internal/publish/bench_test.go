package publish

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/signet-project/signet/internal/testservers"
)

// BenchmarkSign signs n tags in one publish into an existing repository,
// with digests given (no registry round trip) and resolved from a
// loopback registry. bench/sign.sh compares it with the notary CLI.
func BenchmarkSign(b *testing.B) {
	reg := testservers.Registry(b)
	server := testservers.TrustServer(b)
	ctx := context.Background()
	calls := 0 // -count N calls each sub-benchmark again: new repository each time
	for _, n := range []int{1, 100, 1000} {
		for _, resolve := range []bool{false, true} {
			mode := "digests"
			if resolve {
				mode = "resolve"
			}
			b.Run(fmt.Sprintf("%s/tags=%d", mode, n), func(b *testing.B) {
				c := benchConfig(b, server)
				calls++
				repo := fmt.Sprintf("%s/bench/%s-%d-%d", reg, mode, n, calls)
				if resolve {
					for i := 0; i < n; i++ {
						testservers.PushRandom(b, fmt.Sprintf("%s:t%d", repo, i))
					}
				}
				// Initialise outside the timer.
				if _, err := Sign(ctx, c, []Request{{Image: repo + ":init", Digest: fakeDigest(-1), Size: 1}}); err != nil {
					b.Fatal(err)
				}
				round := 0
				for b.Loop() {
					reqs := make([]Request, n)
					for i := range reqs {
						reqs[i] = Request{Image: fmt.Sprintf("%s:t%d", repo, i)}
						if !resolve {
							reqs[i].Digest, reqs[i].Size = fakeDigest(round*n+i), 1000+int64(i)
						}
					}
					if _, err := Sign(ctx, c, reqs); err != nil {
						b.Fatal(err)
					}
					round++
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tags/s")
			})
		}
	}
}

func fakeDigest(i int) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprint(i))))
}

// BenchmarkRotateRoot times `signet rotate IMAGE root` against the
// in-process trust server: read and verify the trust data, make a new
// root key and certificate, sign with the old and new keys, publish,
// read back.
func BenchmarkRotateRoot(b *testing.B) {
	server := testservers.TrustServer(b)
	c := benchConfig(b, server)
	ctx := context.Background()
	repo := "registry.example.com/team/rotbench"
	if _, err := Sign(ctx, c, []Request{{Image: repo + ":v1", Digest: fakeDigest(1), Size: 100}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := Rotate(ctx, c, repo, []string{"root"}, false); err != nil {
			b.Fatal(err)
		}
	}
}
