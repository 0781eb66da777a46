#!/usr/bin/env bash
# release.sh: build signet's release downloads, or its container image.
# See docs/release.md.
#
#   scripts/release.sh          the downloads, into dist/ (make release):
#       signet_<v>_<os>_<arch>.tar.gz (.zip for windows)  static builds
#           (CGO_ENABLED=0) for linux, darwin and windows on amd64 and arm64
#       signet_<v>_linux_amd64_yubikey.tar.gz  the cgo build with YubiKey
#           support (links libpcsclite.so.1 and glibc)
#       <archive name without extension>.sbom.cdx.json  CycloneDX SBOM of
#           each binary, from its Go build information
#       CHANGELOG.md   the commits since the previous tag (all without one)
#       SHA256SUMS     of all of the above
#   scripts/release.sh image    the container image (make image): a static
#       linux binary on an empty base (Dockerfile), built with the docker
#       CLI against $DOCKER_HOST; its build folder is dist/image/.
#
# Every build is -trimpath, stamped with -ldflags -X main.version,
# main.commit, main.date, and the archives hold files dated
# SOURCE_DATE_EPOCH (default: the commit's time) with owner 0:0: the same
# commit, Go version and settings give the same bytes.
#
# Environment:
#   VERSION            the version (default: `git describe --tags` of a v*
#                      tag, else v0.0.0-<commits>-g<sha>; "-dirty" if
#                      tracked files have uncommitted changes)
#   SIGNET_DIST        output folder (default <repo>/dist); emptied first
#                      (image: only <dist>/image)
#   SIGNET_TARGETS     GOOS/GOARCH pairs to build (default: all six)
#   SIGNET_YUBIKEY     1 (default): build the linux/amd64 YubiKey archive,
#                      which needs a linux/amd64 host with gcc and
#                      libpcsclite-dev; 0: skip it
#   SOURCE_DATE_EPOCH  file times in the archives and the build date
#   SIGNET_IMAGE       image name:tag (default signet:<version>)
#   SIGNET_IMAGE_SAVE  if set, `docker save` the image into this file
#   SIGNET_CA_BUNDLE   CA certificates put in the image (default
#                      /etc/ssl/certs/ca-certificates.crt)
#   GO                 the go command (default go)
set -euo pipefail

START=$SECONDS
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
GO="${GO:-go}"

log() { printf 'release: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

MODE="${1:-release}"
case "$MODE" in
release | image) ;;
*) die "usage: $0 [image]" ;;
esac

git rev-parse --git-dir >/dev/null 2>&1 || die "not a git checkout: the version and commit come from git"
COMMIT="$(git rev-parse HEAD)"
# --no-optional-locks: status must not write the index.
DIRTY=""
[[ -z "$(git --no-optional-locks status --porcelain --untracked-files=no)" ]] || DIRTY=1
if [[ -z "${VERSION:-}" ]]; then
	if ! VERSION="$(git describe --tags --match 'v[0-9]*' 2>/dev/null)"; then
		VERSION="v0.0.0-$(git rev-list --count HEAD)-g$(git rev-parse --short=12 HEAD)"
	fi
	[[ -z "$DIRTY" ]] || VERSION+="-dirty"
fi
[[ "$VERSION" =~ ^[A-Za-z0-9._-]+$ ]] || die "VERSION $VERSION: use letters, digits, '.', '_' and '-'"
[[ -z "$DIRTY" ]] || log "warning: tracked files have uncommitted changes: version $VERSION"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}"
DATE="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r "$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
V="${VERSION#v}" # in file names, as other Go projects name their downloads
DIST="${SIGNET_DIST:-$REPO/dist}"
mkdir -p "$DIST"
DIST="$(cd "$DIST" && pwd)"
log "signet $VERSION, commit $COMMIT, date $DATE, $($GO version)"

# build OS ARCH CGO TAGS OUT: one signet binary.
build() {
	local os=$1 arch=$2 cgo=$3 tags=$4 out=$5 t0=$SECONDS
	# -buildvcs=true: record the commit even where GOFLAGS turns it off.
	CGO_ENABLED=$cgo GOOS=$os GOARCH=$arch "$GO" build -trimpath -buildvcs=true \
		${tags:+-tags "$tags"} \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
		-o "$out" ./cmd/signet
	log "built $os/$arch (CGO_ENABLED=$cgo${tags:+, -tags $tags}) in $((SECONDS - t0))s"
}

# size FILE: its size, in bytes and in KiB or MiB.
size() {
	local b
	b="$(stat -c %s "$1" 2>/dev/null || stat -f %z "$1")"
	awk -v b="$b" -v f="$(basename "$1")" 'BEGIN {
		if (b >= 1048576) h = sprintf("%.1f MiB", b / 1048576); else h = sprintf("%.1f KiB", b / 1024)
		printf "%10d  %10s  %s\n", b, h, f
	}'
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
TOOL="$WORK/releasetool"
# Built for the host, whatever GOOS/GOARCH the environment sets.
GOOS="" GOARCH="" CGO_ENABLED=0 "$GO" build -o "$TOOL" ./internal/releasetool

# ---- the container image ----
if [[ "$MODE" == image ]]; then
	command -v docker >/dev/null || die "no docker CLI"
	docker version >/dev/null 2>&1 || die "no docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-unset}): $(docker version 2>&1 | tail -n 1)"
	# The image is for the daemon's platform (the classic builder labels
	# it so); a multi-platform image needs buildx.
	arch="$(docker version -f '{{.Server.Arch}}')"
	[[ "$(docker version -f '{{.Server.Os}}')" == linux ]] || die "the image is a linux image: use a docker daemon on linux"
	image="${SIGNET_IMAGE:-signet:$VERSION}"
	ca="${SIGNET_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
	[[ -s "$ca" ]] || die "no CA bundle at $ca (apt-get install ca-certificates, or set SIGNET_CA_BUNDLE)"
	ctx="$DIST/image"
	rm -rf "$ctx"
	# rootfs/: root's files. lib/signet, cache/signet: the volumes' folders,
	# owned by the user 65532.
	mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/var/lib" "$ctx/rootfs/var/cache" "$ctx/lib/signet" "$ctx/cache/signet"
	build linux "$arch" 0 nopcsc "$ctx/signet"
	cp "$ca" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nsignet:x:65532:65532:signet:/var/lib/signet:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
	printf 'root:x:0:\nsignet:x:65532:\n' >"$ctx/rootfs/etc/group"
	printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
	chmod 0644 "$ctx"/rootfs/etc/{passwd,group,nsswitch.conf} "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
	chmod 1777 "$ctx/rootfs/tmp"
	chmod 0700 "$ctx/lib/signet" "$ctx/cache/signet"
	find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
	# BuildKit comes with the buildx plugin; without it the classic
	# builder builds this Dockerfile as well.
	docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
	t0=$SECONDS
	docker build -f "$REPO/Dockerfile" -t "$image" \
		--build-arg "VERSION=$VERSION" --build-arg "REVISION=$COMMIT" --build-arg "CREATED=$DATE" \
		"$ctx" >&2
	log "built image $image in $((SECONDS - t0))s"
	if [[ -n "${SIGNET_IMAGE_SAVE:-}" ]]; then
		docker save -o "$SIGNET_IMAGE_SAVE" "$image"
		log "saved to $SIGNET_IMAGE_SAVE"
	fi
	bytes="$(docker image inspect -f '{{.Size}}' "$image")"
	echo "image $image ($(docker image inspect -f '{{.Id}}' "$image")): $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }')), linux/$arch"
	echo "binary: $(size "$ctx/signet")"
	echo "done in $((SECONDS - START))s"
	exit 0
fi

# ---- the downloads ----
TARGETS="${SIGNET_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}"
YUBIKEY="${SIGNET_YUBIKEY:-1}"
if [[ "$YUBIKEY" == 1 ]]; then
	[[ "$("$GO" env GOHOSTOS)/$("$GO" env GOHOSTARCH)" == linux/amd64 ]] || die "the YubiKey build is a native cgo build: run on linux/amd64, or set SIGNET_YUBIKEY=0"
	pkg-config --exists libpcsclite 2>/dev/null || die "the YubiKey build needs libpcsclite-dev and pkg-config (apt-get install libpcsclite-dev pkg-config), or set SIGNET_YUBIKEY=0"
fi
# Emptied first, but only if it is dist/ or holds an earlier release.
if [[ "$DIST" != "$REPO/dist" && -n "$(ls -A "$DIST")" && ! -f "$DIST/SHA256SUMS" ]]; then
	die "SIGNET_DIST $DIST is not empty and holds no earlier release (no SHA256SUMS): not emptying it"
fi
find "$DIST" -mindepth 1 -delete

# CHANGELOG.md: what changed since the previous v* tag before HEAD.
prev="$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD^ 2>/dev/null || true)"
{
	printf '# signet %s\n\n' "$VERSION"
	if [[ -n "$prev" ]]; then
		printf 'Changes since %s (%s), newest first.\n\n' "$prev" "$(git log -1 --format=%cs "$prev")"
		range="$prev..HEAD"
	else
		printf 'Every change up to this release, newest first.\n\n'
		range=HEAD
	fi
	printf 'Built from commit %s (%s).\n\n' "$COMMIT" "${DATE%%T*}"
	git log --no-merges --format='- %s (%h)' "$range"
} >"$DIST/CHANGELOG.md"
log "CHANGELOG.md: $(grep -c '^- ' "$DIST/CHANGELOG.md") commits${prev:+ since $prev}"

docs=(README.md "$DIST/CHANGELOG.md")
[[ ! -f LICENSE ]] || docs+=(LICENSE)

# package NAME OS BINARY: the archive and SBOM of one build.
package() {
	local name=$1 os=$2 bin=$3 ext=tar.gz
	[[ "$os" != windows ]] || ext=zip
	"$TOOL" archive -o "$DIST/$name.$ext" -prefix "$name" "$bin" "${docs[@]}"
	"$TOOL" sbom -o "$DIST/$name.sbom.cdx.json" -version "$VERSION" "$bin"
}

for target in $TARGETS; do
	os="${target%/*}" arch="${target#*/}"
	[[ "$target" == */* && -n "$os" && -n "$arch" ]] || die "SIGNET_TARGETS: $target is not GOOS/GOARCH"
	name="signet_${V}_${os}_${arch}"
	exe=signet
	tags=nopcsc # no PC/SC without cgo on linux and darwin
	if [[ "$os" == windows ]]; then
		exe=signet.exe
		tags="" # piv-go reaches winscard.dll without cgo
	fi
	mkdir -p "$WORK/$name"
	build "$os" "$arch" 0 "$tags" "$WORK/$name/$exe"
	package "$name" "$os" "$WORK/$name/$exe"
done

if [[ "$YUBIKEY" == 1 ]]; then
	name="signet_${V}_linux_amd64_yubikey"
	mkdir -p "$WORK/$name"
	build linux amd64 1 "" "$WORK/$name/signet"
	package "$name" linux "$WORK/$name/signet"
fi

(
	cd "$DIST"
	find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >"$WORK/SHA256SUMS"
	mv "$WORK/SHA256SUMS" SHA256SUMS
)

echo "signet $VERSION in $DIST:"
for f in "$DIST"/*; do
	size "$f"
done
echo "done in $((SECONDS - START))s"
