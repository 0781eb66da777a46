#!/usr/bin/env bash
# cross-build.sh: build signet without cgo (CGO_ENABLED=0) for Linux, macOS
# and Windows on amd64 and arm64, and print each binary's size and whether
# it has YubiKey support (Windows only: piv-go needs cgo for PC/SC on Linux
# and macOS, and reaches winscard.dll without it on Windows). Fails on the
# first build that fails.
#
# Usage: bash scripts/cross-build.sh [OUT_DIR]
# The binaries go to OUT_DIR (kept) or to a temporary folder (removed).
# Extra `go build` flags may be given in CROSS_BUILD_FLAGS, e.g.
# CROSS_BUILD_FLAGS='-trimpath -ldflags=-s'.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PLATFORMS=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64)
read -r -a FLAGS <<<"${CROSS_BUILD_FLAGS:-}"

if [[ $# -gt 0 ]]; then
	OUT="$1"
	mkdir -p "$OUT"
else
	OUT="$(mktemp -d "${TMPDIR:-/tmp}/signet-cross.XXXXXX")"
	trap 'rm -rf "$OUT"' EXIT
fi

printf '%-16s %12s  %s\n' platform bytes yubikey
for p in "${PLATFORMS[@]}"; do
	os="${p%/*}" arch="${p#*/}"
	bin="$OUT/signet-$os-$arch"
	[[ "$os" == windows ]] && bin+=.exe
	if ! CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build "${FLAGS[@]}" -o "$bin" ./cmd/signet; then
		echo "cross-build: CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build ./cmd/signet failed" >&2
		exit 1
	fi
	yubikey=no
	if CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go list -f '{{join .GoFiles " "}}' ./keys/yubikey | grep -qw yubikey.go; then
		yubikey=yes
	fi
	printf '%-16s %12s  %s\n' "$p" "$(wc -c <"$bin" | tr -d ' ')" "$yubikey"
done
