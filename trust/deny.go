package trust

import (
	"encoding/hex"
	"fmt"
)

// Reasons for a denial.
const (
	ReasonNoTrustData = "no trust data"
	ReasonNotSigned   = "tag not signed"
	ReasonMismatch    = "digest mismatch"
	ReasonTrustData   = "trust data invalid or unavailable"
)

// DenyError says an image is not trusted, as distinct from failing to
// find out: callers answer it with "denied" (exit 1, HTTP 403), and other
// errors as infrastructure failures.
type DenyError struct {
	// Image is the image or repository concerned.
	Image string
	// Reason is one of the Reason constants.
	Reason string
	// Served and Signed are the sha256 digests, for ReasonMismatch.
	Served, Signed []byte
	// ServedSize and SignedSize are the manifest sizes, for ReasonMismatch.
	ServedSize, SignedSize int64
	// Role signed the target, for ReasonMismatch.
	Role string
	// Err is the underlying error, if any.
	Err error
}

func (e *DenyError) Error() string {
	switch e.Reason {
	case ReasonNoTrustData:
		return fmt.Sprintf("%s: no trust data on the trust server: sign it first (signet sign)", e.Image)
	case ReasonNotSigned:
		if e.Err != nil {
			return fmt.Sprintf("%s: tag is %v", e.Image, e.Err)
		}
		return fmt.Sprintf("%s: tag is not signed in targets/releases or targets", e.Image)
	case ReasonMismatch:
		if string(e.Served) == string(e.Signed) {
			return fmt.Sprintf("%s: the registry serves sha256:%s with %d bytes, the signature (%s) says %d bytes", e.Image, hex.EncodeToString(e.Served), e.ServedSize, e.Role, e.SignedSize)
		}
		return fmt.Sprintf("%s: the registry serves sha256:%s but the signed digest (%s) is sha256:%s: the tag moved after signing", e.Image, hex.EncodeToString(e.Served), e.Role, hex.EncodeToString(e.Signed))
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Image, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Image, e.Reason)
}

func (e *DenyError) Unwrap() error { return e.Err }

// Check compares what the registry serves for a tag with the signed
// target; a difference is a *DenyError naming both digests.
func Check(image string, signed SignedTarget, servedSHA256 []byte, servedSize int64) error {
	if string(signed.SHA256) == string(servedSHA256) && signed.Size == servedSize {
		return nil
	}
	return &DenyError{Image: image, Reason: ReasonMismatch, Served: servedSHA256, Signed: signed.SHA256,
		ServedSize: servedSize, SignedSize: signed.Size, Role: signed.Role}
}
