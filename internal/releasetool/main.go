// Command releasetool is the part of scripts/release.sh that a shell does
// badly: reproducible archives and an SBOM. It is not installed and not
// part of signet; the script runs it with `go run` or a `go build` of it.
//
//	releasetool archive -o OUT.tar.gz|OUT.zip -prefix DIR -mtime EPOCH FILE...
//	releasetool sbom -o OUT.cdx.json -mtime EPOCH [-version V] BINARY
//
// archive writes FILE... (each under DIR/ by its base name, in the order
// given) into a gzip-compressed tar or a zip, chosen by OUT's extension,
// with every time set to EPOCH (seconds since 1970, as SOURCE_DATE_EPOCH),
// owner 0:0, and mode 0755 for executables, 0644 for the rest: the same
// inputs give the same bytes.
//
// sbom writes a CycloneDX 1.5 JSON SBOM of a Go binary from the build
// information the go command records in it (what `go version -m BINARY`
// prints): the main module, every dependency module with its version and
// go.sum hash, the Go standard library, and the build settings (GOOS,
// GOARCH, CGO_ENABLED, -tags, the commit). -version names the release
// (the -X main.version the binary was stamped with, which the build
// information does not record); without it, the module version recorded.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "releasetool:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  releasetool archive -o OUT.tar.gz|OUT.zip -prefix DIR -mtime EPOCH FILE...
  releasetool sbom -o OUT.cdx.json -mtime EPOCH [-version V] BINARY`

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command\n%s", usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("o", "", "output file")
	mtime := fs.String("mtime", "", "time of the files (seconds since 1970; default SOURCE_DATE_EPOCH)")
	prefix := fs.String("prefix", "", "folder in the archive (archive)")
	version := fs.String("version", "", "the release version (sbom)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%s: -o is required\n%s", args[0], usage)
	}
	if *mtime == "" {
		*mtime = os.Getenv("SOURCE_DATE_EPOCH")
	}
	secs, err := strconv.ParseInt(*mtime, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: -mtime or SOURCE_DATE_EPOCH %q: want seconds since 1970", args[0], *mtime)
	}
	t := time.Unix(secs, 0).UTC()
	switch args[0] {
	case "archive":
		if *prefix == "" || fs.NArg() == 0 {
			return fmt.Errorf("archive: -prefix and files are required\n%s", usage)
		}
		return writeArchive(*out, *prefix, t, fs.Args())
	case "sbom":
		if fs.NArg() != 1 {
			return fmt.Errorf("sbom: one binary\n%s", usage)
		}
		return writeSBOM(*out, fs.Arg(0), *version, t)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
