//go:build !nopcsc && cgo && unix

package pivsim_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/signet-project/signet/internal/pivsim"
)

// TestSignLatency measures an ECDSA P-256 signature through piv-go,
// libpcsclite, pcscd and vpcd, with and without TCP_QUICKACK on the
// simulator's socket, and logs the figures (go test -v).
func TestSignLatency(t *testing.T) {
	const n = 40
	for _, quickAck := range []bool{true, false} {
		name := map[bool]string{true: "QuickAck", false: "DelayedAck"}[quickAck]
		t.Run(name, func(t *testing.T) {
			card := newCard(t, pivsim.Options{Serial: 21000003})
			card.SetQuickAck(quickAck)
			yk, _ := open(t, card)
			pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
				Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyNever, TouchPolicy: piv.TouchPolicyNever,
			})
			if err != nil {
				t.Fatal(err)
			}
			priv, err := yk.PrivateKey(piv.SlotSignature, pub, piv.KeyAuth{})
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256([]byte("latency"))
			times := make([]time.Duration, n)
			for i := range times {
				start := time.Now()
				if _, err := priv.(crypto.Signer).Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					t.Fatal(err)
				}
				times[i] = time.Since(start)
			}
			slices.Sort(times)
			var sum time.Duration
			for _, d := range times {
				sum += d
			}
			t.Logf("%s: %d signatures, one APDU each: mean %v, median %v, min %v, max %v",
				name, n, sum/n, times[n/2], times[0], times[n-1])
		})
	}
}
