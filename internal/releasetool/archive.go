package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// writeArchive writes files into out (.tar.gz or .zip) under prefix/,
// reproducibly: see the package comment.
func writeArchive(out, prefix string, mtime time.Time, files []string) (err error) {
	var add func(name string, mode fs.FileMode, size int64, r io.Reader) error
	var finish func() error
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
		}
	}()
	switch {
	case strings.HasSuffix(out, ".tar.gz"), strings.HasSuffix(out, ".tgz"):
		gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression) // the header keeps no name and no time
		tw := tar.NewWriter(gz)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: prefix + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		add = func(name string, mode fs.FileMode, size int64, r io.Reader) error {
			h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode), Size: size, ModTime: mtime, Format: tar.FormatPAX}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err := io.Copy(tw, r)
			return err
		}
		finish = func() error { return errors.Join(tw.Close(), gz.Close()) }
	case strings.HasSuffix(out, ".zip"):
		zw := zip.NewWriter(f)
		dir := &zip.FileHeader{Name: prefix + "/", Modified: mtime}
		dir.SetMode(fs.ModeDir | 0o755)
		if _, err := zw.CreateHeader(dir); err != nil {
			return err
		}
		add = func(name string, mode fs.FileMode, _ int64, r io.Reader) error {
			h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mtime}
			h.SetMode(mode)
			w, err := zw.CreateHeader(h)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, r)
			return err
		}
		finish = zw.Close
	default:
		return fmt.Errorf("archive %q: name it .tar.gz or .zip", out)
	}
	seen := map[string]bool{}
	for _, file := range files {
		base := filepath.Base(file)
		if seen[base] {
			return fmt.Errorf("archive %q: two files named %q", out, base)
		}
		seen[base] = true
		if err := addFile(add, path.Join(prefix, base), file); err != nil {
			return fmt.Errorf("archive %q: add %q: %w", out, file, err)
		}
	}
	return finish()
}

func addFile(add func(string, fs.FileMode, int64, io.Reader) error, name, file string) error {
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	mode := fs.FileMode(0o644)
	if fi.Mode()&0o111 != 0 || strings.HasSuffix(name, ".exe") {
		mode = 0o755
	}
	return add(name, mode, fi.Size(), src)
}
