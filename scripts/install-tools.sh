#!/usr/bin/env bash
# install-tools.sh: install the external tools that signet's tests and
# benchmarks use, at pinned versions, into $REPO/.tools/bin.
#
#   notary, notary-server  github.com/theupdateframework/notary v0.7.0
#                          The original Notary v1 CLI and server, used by the
#                          compatibility tests (signet against real notary).
#   benchstat              golang.org/x/perf (pinned pseudo-version), used by
#                          bench/run.sh.
#   oci-conformance        github.com/opencontainers/distribution-spec/conformance
#                          (pinned pseudo-version): the OCI distribution-spec
#                          conformance suite, run against the proxy by
#                          internal/conformance. Its package builds a binary
#                          named "conformance"; it is installed under this name.
#   weed                   github.com/seaweedfs/seaweedfs/weed (pinned
#                          pseudo-version): SeaweedFS, a real S3-compatible
#                          server for the blob cache's shared tier tests,
#                          started by internal/testenv.S3Server.
#   postgresql (Debian)    the PostgreSQL server, started for the tests by
#                          scripts/start-postgres.sh. Installed only when
#                          running as root and no server is found; set
#                          SIGNET_SKIP_APT=1 to never touch apt.
#
# How the Go tools are built: `go install module/cmd@version`, which fetches
# the source from the Go module proxy and builds it with the Go toolchain on
# PATH (Go 1.26 for this project). notary v0.7.0's go.mod has no replace
# directives, so `go install pkg@version` is accepted as is; no temporary
# module is needed. The notary binaries are built with CGO_ENABLED=0 (no
# PKCS#11 / YubiKey support in them, which the tests do not need) and with
# -X ldflags so that `notary version` reports 0.7.0; the Git commit field
# stays empty because the module proxy zip carries no VCS data.
#
# SeaweedFS's go.mod has a replace directive, so `go install pkg@version`
# refuses it ("The go.mod file for the module providing named packages
# contains one or more replace directives"). install_in_module instead
# downloads the module with `go mod download` and runs `go build` inside it
# (in the read-only module cache), where it is the main module and its
# replace directives and go.sum apply. weed is built with CGO_ENABLED=0; a
# cold build takes about 10 minutes on 2 cores (about 200 modules to
# download) and makes a binary of about 230 MB.
#
# Note: the released notary-server does not link a SQLite driver (go-sqlite3
# is imported only by its tests), so its "sqlite3" storage backend fails at
# start with `sql: unknown driver "sqlite3"`. Use the "memory" backend; see
# testdata/notary-server/.
#
# Idempotent: each tool is recorded in $REPO/.tools/versions.txt as
# "<name> <package>@<version> <go version>"; a tool whose binary exists and
# whose line matches is skipped. Changing a pin or the Go version rebuilds it.
#
# Usage: scripts/install-tools.sh            (from anywhere)
# Environment: SIGNET_SKIP_APT=1 skips the Debian package step;
# SIGNET_TOOLS_ONLY=weed builds only weed (no Debian packages), and
# SIGNET_TOOLS_SKIP=weed everything else: .ci/run runs the two at once,
# since weed alone takes minutes to build.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO/.tools"
BIN="$TOOLS/bin"
STAMP="$TOOLS/versions.txt"

# Pinned versions. Change them here only.
NOTARY_VERSION="v0.7.0"
PERF_VERSION="v0.0.0-20260908200009-22c9c6c9d4da" # golang.org/x/perf, 2026-09-08

GGCR_VERSION="v0.22.1" # github.com/google/go-containerregistry, as go.mod requires
# github.com/opencontainers/distribution-spec/conformance, 2026-08-31. Its
# go.mod has no replace directives, so `go install pkg@version` builds it;
# the suite's README prefers `go build` of its main package to the older
# `go test -c`, which it reports as deprecated.
CONFORMANCE_VERSION="v0.0.0-20260831232431-97274622c111"
# github.com/seaweedfs/seaweedfs, 2026-11-09 (weed reports "version 30GB 4.53").
# Its go.mod has a replace directive: built by install_in_module.
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"

NOTARY_MOD="github.com/theupdateframework/notary"
NOTARY_LDFLAGS="-X ${NOTARY_MOD}/version.NotaryVersion=${NOTARY_VERSION#v}"

log() { printf 'install-tools: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------

have_postgres_server() {
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

install_debian_packages() {
	if [[ "${SIGNET_SKIP_APT:-}" == 1 ]]; then
		log "SIGNET_SKIP_APT=1: not installing Debian packages"
		return
	fi
	if ! pkg-config --exists libpcsclite 2>/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "libpcsclite-dev: installing with apt-get (YubiKey support)"
		export DEBIAN_FRONTEND=noninteractive
		apt-cache show libpcsclite-dev >/dev/null 2>&1 || apt-get update -qq
		apt-get install -y -qq --no-install-recommends pkg-config libpcsclite-dev >/dev/null
	fi
	if ! command -v skopeo >/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "skopeo: installing with apt-get (proxy end-to-end tests)"
		export DEBIAN_FRONTEND=noninteractive
		apt-cache show skopeo >/dev/null 2>&1 || apt-get update -qq
		apt-get install -y -qq --no-install-recommends skopeo >/dev/null
	fi
	if have_postgres_server; then
		log "postgresql: present ($(compgen -G '/usr/lib/postgresql/*/bin/initdb' | head -n1))"
		return
	fi
	if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
		log "postgresql: not installed and cannot install it (need root and apt-get);"
		log "  PostgreSQL tests will be skipped (or fail under SIGNET_REQUIRE_ALL=1)"
		return
	fi
	log "postgresql: installing with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	# Only refresh the package lists when apt cannot find the package.
	if ! apt-cache show postgresql >/dev/null 2>&1; then
		apt-get update -qq
	fi
	apt-get install -y -qq --no-install-recommends postgresql >/dev/null
	have_postgres_server || { log "postgresql: install finished but initdb not found"; exit 1; }
}

# --- Go tools --------------------------------------------------------------

GO_VERSION="$(go env GOVERSION)"

stamp_line() { # name pkg@version
	printf '%s %s %s' "$1" "$2" "$GO_VERSION"
}

is_current() { # name pkg@version
	local name="$1" want
	want="$(stamp_line "$1" "$2")"
	[[ -x "$BIN/$name" ]] && [[ -f "$STAMP" ]] && grep -qxF "$want" "$STAMP"
}

record() { # name pkg@version
	local name="$1" tmp
	# Under a lock: CI builds weed in a second run of this script.
	exec 9>"$TOOLS/versions.lock"
	flock 9
	tmp="$(mktemp "$TOOLS/versions.XXXXXX")"
	if [[ -f "$STAMP" ]]; then
		grep -v "^${name} " "$STAMP" >"$tmp" || true
	fi
	stamp_line "$1" "$2" >>"$tmp"
	printf '\n' >>"$tmp"
	sort -o "$tmp" "$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$STAMP"
	exec 9>&-
}

go_install() { # name pkg@version [go build flags...]
	local name="$1" target="$2"
	shift 2
	if is_current "$name" "$target"; then
		log "$name: $target already installed"
		return
	fi
	log "$name: building $target with $GO_VERSION"
	# GOFLAGS is cleared so a developer's -mod=... or -tags=... cannot leak
	# into the tool build; GOTOOLCHAIN=local builds with the Go on PATH.
	GOBIN="$BIN" GOFLAGS='' GOTOOLCHAIN=local go install "$@" "$target"
	record "$name" "$target"
}

# install_renamed NAME pkg@version: go_install for a package whose binary
# name (the last element of its path) is not NAME.
install_renamed() {
	local name="$1" target="$2" built tmp
	built="$(basename "${target%@*}")"
	if is_current "$name" "$target"; then
		log "$name: $target already installed"
		return
	fi
	log "$name: building $target with $GO_VERSION"
	tmp="$(mktemp -d "$TOOLS/gobin.XXXXXX")"
	GOBIN="$tmp" GOFLAGS='' GOTOOLCHAIN=local go install "$target"
	mv -f "$tmp/$built" "$BIN/$name"
	rmdir "$tmp"
	record "$name" "$target"
}

# install_in_module NAME MODULE DIR VERSION: build the command in directory
# DIR of MODULE at VERSION as $BIN/NAME, for a module whose go.mod has
# replace directives (which `go install pkg@version` refuses): go build
# runs inside the downloaded module, as its main module.
install_in_module() {
	local name="$1" mod="$2" pkg="$3" version="$4" target dir tmp
	target="$mod/$pkg@$version"
	if is_current "$name" "$target"; then
		log "$name: $target already installed"
		return
	fi
	log "$name: building $target with $GO_VERSION (inside the module: its go.mod has replace directives)"
	# Run from / so that no go.mod (such as the repo's) is involved or
	# changed; GOWORK=off so that no go.work is.
	(cd / && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go mod download "$mod@$version")
	dir="$(cd / && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go list -m -f '{{.Dir}}' "$mod@$version")"
	if [[ ! -d "$dir/$pkg" ]]; then
		log "$name: $mod@$version has no directory $pkg (module at \"$dir\")"
		exit 1
	fi
	tmp="$(mktemp -d "$TOOLS/gobin.XXXXXX")"
	(cd "$dir" && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go build -o "$tmp/$name" "./$pkg")
	mv -f "$tmp/$name" "$BIN/$name"
	rmdir "$tmp"
	record "$name" "$target"
}

# wanted NAME: whether this run installs tool NAME: SIGNET_TOOLS_ONLY
# names the one tool to install, SIGNET_TOOLS_SKIP one to leave out.
wanted() {
	[[ -z "${SIGNET_TOOLS_ONLY:-}" || "$SIGNET_TOOLS_ONLY" == "$1" ]] && [[ "${SIGNET_TOOLS_SKIP:-}" != "$1" ]]
}

main() {
	mkdir -p "$BIN"
	if [[ -n "${SIGNET_TOOLS_ONLY:-}" ]]; then
		if wanted weed; then
			CGO_ENABLED=0 install_in_module weed github.com/seaweedfs/seaweedfs weed "$SEAWEEDFS_VERSION"
		fi
		return
	fi
	install_debian_packages

	CGO_ENABLED=0 go_install notary "${NOTARY_MOD}/cmd/notary@${NOTARY_VERSION}" -ldflags "$NOTARY_LDFLAGS"
	CGO_ENABLED=0 go_install notary-server "${NOTARY_MOD}/cmd/notary-server@${NOTARY_VERSION}" -ldflags "$NOTARY_LDFLAGS"
	go_install benchstat "golang.org/x/perf/cmd/benchstat@${PERF_VERSION}"
	# crane: a real OCI client for the proxy's end-to-end tests.
	CGO_ENABLED=0 go_install crane "github.com/google/go-containerregistry/cmd/crane@${GGCR_VERSION}"
	# oci-conformance: the OCI conformance suite, run against the proxy.
	CGO_ENABLED=0 install_renamed oci-conformance "github.com/opencontainers/distribution-spec/conformance@${CONFORMANCE_VERSION}"
	# weed: SeaweedFS, a real S3-compatible server for the blob cache's
	# shared tier tests.
	if wanted weed; then
		CGO_ENABLED=0 install_in_module weed github.com/seaweedfs/seaweedfs weed "$SEAWEEDFS_VERSION"
	fi

	log "tools in $BIN:"
	sed 's/^/  /' "$STAMP" >&2
}

main "$@"
