package keys

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/theupdateframework/notary/tuf/utils"
)

// FileError is a key file in a trust dir that cannot be read or parsed.
// notary's key store skips such files when it lists keys, so a damaged
// root key would look like no root key at all; signet stops instead.
type FileError struct {
	// Path is the key file (or folder) concerned.
	Path string
	// Err says what is wrong with it.
	Err error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("read key file %s: %v: fix or remove it", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// CheckFiles reads every key file notary would list in
// <trustDir>/private (files named *.key, in subfolders too) and returns a
// *FileError for the first, by path, that cannot be read or is not a
// private key in PEM. It does not decrypt: an encrypted key is checked
// for the PKCS#8 structure only. A missing private folder is no error.
//
// Callers run it before using or creating keys, so that a key file notary
// would silently skip (a damaged root key, say) is reported rather than
// replaced by a new key.
func CheckFiles(trustDir string) error {
	dir := filepath.Join(trustDir, "private")
	var bad []*FileError
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			bad = append(bad, &FileError{Path: path, Err: pathErr(err)})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".key") {
			return nil
		}
		if err := checkFile(path, d); err != nil {
			bad = append(bad, &FileError{Path: path, Err: err})
		}
		return nil
	})
	if err != nil {
		return &FileError{Path: dir, Err: pathErr(err)}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Path < bad[j].Path })
	return bad[0]
}

// pathErr drops the path from an *fs.PathError: FileError names it.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func checkFile(path string, d fs.DirEntry) error {
	if d.Type()&fs.ModeSymlink != 0 {
		return errors.New("it is a symbolic link, which notary's key store ignores; put the key file itself there")
	}
	if !d.Type().IsRegular() {
		return errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return pathErr(err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return pathErr(err)
	}
	if len(raw) > MaxKeyFileBytes {
		return fmt.Errorf("over %d bytes, not a key file", MaxKeyFileBytes)
	}
	return checkPEM(raw)
}

// checkPEM checks that raw is a private key as notary's key store reads
// it, without decrypting it.
func checkPEM(raw []byte) error {
	if len(raw) == 0 {
		return errors.New("empty file")
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return errors.New("no PEM block (damaged or not a key file)")
	}
	switch block.Type {
	case "ENCRYPTED PRIVATE KEY":
		// EncryptedPrivateKeyInfo (RFC 5208 §6): the algorithm and the
		// encrypted key; the passphrase is needed for more.
		var info struct {
			Algorithm pkix.AlgorithmIdentifier
			Data      []byte
		}
		rest, err := asn1.Unmarshal(block.Bytes, &info)
		if err != nil || len(rest) != 0 || len(info.Data) == 0 {
			return errors.New("the encrypted key is damaged (not PKCS#8)")
		}
		return nil
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ED25519 PRIVATE KEY":
		if strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil // legacy encrypted PEM: needs the passphrase
		}
		if _, err := utils.ParsePEMPrivateKey(raw, ""); err != nil {
			return fmt.Errorf("the %s is damaged: %v", strings.ToLower(block.Type), err)
		}
		return nil
	}
	return fmt.Errorf("PEM type %q is not a private key", block.Type)
}
