//go:build !nopcsc && cgo && unix

package pivsim_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-piv/piv-go/v2/piv"

	"github.com/signet-project/signet/internal/pivsim"
	"github.com/signet-project/signet/internal/pivsim/pivsimtest"
	"github.com/signet-project/signet/internal/testenv"
)

// TestYubicoPIVTool cross-checks the simulator with Yubico's own tool
// (Debian package yubico-piv-tool), which drives the card through
// libykpiv rather than piv-go.
func TestYubicoPIVTool(t *testing.T) {
	tool, err := testenv.LookTool("yubico-piv-tool")
	if err != nil {
		testenv.Require(t, "yubico-piv-tool", "%v; apt-get install -y yubico-piv-tool", err)
	}
	card := newCard(t, pivsim.Options{Serial: 21000002})
	reader := pivsimtest.Insert(t, card)

	// Set the card up with piv-go, then let go of it: both tools want the
	// reader to themselves.
	yk, err := piv.Open(reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := yk.GenerateKey(piv.DefaultManagementKey, piv.SlotSignature, piv.Key{
		Algorithm: piv.AlgorithmEC256, PINPolicy: piv.PINPolicyAlways, TouchPolicy: piv.TouchPolicyNever,
	})
	if err != nil {
		yk.Close()
		t.Fatal(err)
	}
	cert := selfSigned(t, pub, "yubico-piv-tool cross-check")
	err = yk.SetCertificate(piv.DefaultManagementKey, piv.SlotSignature, cert)
	yk.Close()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		args = append([]string{"--reader=" + pivsimtest.ReaderPrefix}, args...)
		cmd := exec.Command(tool, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("yubico-piv-tool %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
		}
		t.Logf("yubico-piv-tool %s:\n%s%s", strings.Join(args, " "), &stdout, &stderr)
		return stdout.String()
	}

	t.Run("status", func(t *testing.T) {
		out := run(t, "-a", "status")
		for _, want := range []string{"Version:\t5.4.3", "Serial Number:\t21000002", "Slot 9c:", "ECCP256", "CN=yubico-piv-tool cross-check", "PIN tries left:\t3"} {
			if !strings.Contains(out, want) {
				t.Errorf("status output lacks %q", want)
			}
		}
	})

	t.Run("read-certificate", func(t *testing.T) {
		out := run(t, "-a", "read-certificate", "-s", "9c")
		block, _ := pem.Decode([]byte(out))
		if block == nil || !bytes.Equal(block.Bytes, cert.Raw) {
			t.Errorf("read-certificate printed %q, want the certificate set with piv-go", out)
		}
	})

	t.Run("sign", func(t *testing.T) {
		data := []byte("signed by yubico-piv-tool")
		in := filepath.Join(dir, "data")
		sigFile := filepath.Join(dir, "sig")
		if err := os.WriteFile(in, data, 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "-a", "verify-pin", "-P", piv.DefaultPIN, "--sign", "-s", "9c", "-A", "ECCP256", "-H", "SHA256", "-i", in, "-o", sigFile)
		sig, err := os.ReadFile(sigFile)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256(data)
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			t.Errorf("signature %x does not verify", sig)
		}
	})

	t.Run("test-signature", func(t *testing.T) {
		certFile := filepath.Join(dir, "cert.pem")
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "-a", "verify-pin", "-P", piv.DefaultPIN, "-a", "test-signature", "-s", "9c", "-i", certFile)
	})

	t.Run("attest", func(t *testing.T) {
		out := run(t, "-a", "attest", "-s", "9c")
		block, _ := pem.Decode([]byte(out))
		if block == nil {
			t.Fatalf("attest printed %q, want a PEM certificate", out)
		}
		slotCert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = run(t, "-a", "read-certificate", "-s", "f9")
		block, _ = pem.Decode([]byte(out))
		if block == nil {
			t.Fatalf("read-certificate -s f9 printed %q, want a PEM certificate", out)
		}
		f9, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(card.AttestationRoot())
		if _, err := (&piv.Verifier{Roots: roots}).Verify(f9, slotCert); err != nil {
			t.Errorf("attestation from yubico-piv-tool does not verify: %v", err)
		}
	})

	t.Run("generate", func(t *testing.T) {
		// Management key authentication (3DES) through libykpiv.
		out := run(t, "-a", "generate", "-s", "9a", "-A", "ECCP256")
		block, _ := pem.Decode([]byte(out))
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("generate printed %q, want a PEM public key", out)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		yk, err := piv.Open(reader)
		if err != nil {
			t.Fatal(err)
		}
		defer yk.Close()
		info, err := yk.KeyInfo(piv.SlotAuthentication)
		if err != nil {
			t.Fatal(err)
		}
		if !info.PublicKey.(*ecdsa.PublicKey).Equal(pub) {
			t.Error("the card holds another key than yubico-piv-tool printed")
		}
	})
}
