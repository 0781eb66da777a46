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
#   kubeconform            github.com/yannh/kubeconform (pinned): validates the
#                          Kubernetes manifests in deploy/ against the API's
#                          JSON schemas (scripts/check-deploy.sh).
#   kustomize              sigs.k8s.io/kustomize/kustomize/v5 (pinned): renders
#                          deploy/'s kustomizations for kubeconform.
#   kubernetes-json-schema the JSON schemas kubeconform reads, one per API kind,
#                          of one Kubernetes release (KUBERNETES_VERSION), in
#                          .tools/kubernetes-json-schema/<version>-standalone-strict/.
#                          kubeconform would download them from GitHub; here
#                          they are made from that release's own OpenAPI
#                          document, api/openapi-spec/swagger.json of the Go
#                          module k8s.io/kubernetes (go mod download: the Go
#                          module proxy and the checksum database vouch for
#                          it), by the jq program K8S_SCHEMA_JQ below, the way
#                          openapi2jsonschema --kubernetes --stand-alone
#                          --strict makes kubeconform's default schemas.
#   jq (Debian)            runs that conversion.
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
# github.com/yannh/kubeconform, 2026-06 (its go.mod has no replace directives).
KUBECONFORM_VERSION="v0.8.0"
# sigs.k8s.io/kustomize/kustomize/v5, 2026-09-30: v5.8.3 needs Go 1.27.
KUSTOMIZE_VERSION="v5.8.2"
# The Kubernetes release whose API schemas deploy/ is checked against:
# the oldest minor release upstream still maintained on 2026-11-25 (1.35
# to 1.37; v1.35.4 is of 2026-04-15), so the manifests use nothing that
# only newer clusters know.
KUBERNETES_VERSION="v1.35.4"

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
	if ! command -v jq >/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "jq: installing with apt-get (Kubernetes JSON schemas for kubeconform)"
		export DEBIAN_FRONTEND=noninteractive
		apt-cache show jq >/dev/null 2>&1 || apt-get update -qq
		apt-get install -y -qq --no-install-recommends jq >/dev/null
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

# K8S_SCHEMA_JQ turns Kubernetes' OpenAPI 2.0 document (swagger.json)
# into kubeconform's schema layout: for each API kind (a definition with
# x-kubernetes-group-version-kind, named by its last part), the file
# <kind>[-<group's first label>]-<version>.json, lower case, as kubeconform
# looks it up. Each is stand-alone (every $ref inlined; a cycle is an
# error) and strict (additionalProperties: false on every object that
# lists its properties, as kubectl's own validation refuses unknown
# fields); apiVersion and kind are fixed to the kind's by enum;
# IntOrString is a string or an integer and Quantity a string or a number,
# and a field that its object does not require may be null, as the API
# server takes null for "unset" (as openapi2jsonschema --kubernetes makes
# them, and as `kubectl create --dry-run -o yaml` writes
# creationTimestamp: null). Descriptions are dropped: they are prose,
# not constraints. The apiextensions kinds
# (CustomResourceDefinition: recursive JSONSchemaProps) are left out, as
# openapi2jsonschema leaves them out. It prints a file name line, then the
# schema on one line, for each kind.
# shellcheck disable=SC2016 # a jq program: its $names are jq's
K8S_SCHEMA_JQ='
def deref($defs; $seen):
  if type == "object" then
    if has("$ref") then
      (.["$ref"] | ltrimstr("#/definitions/")) as $n
      | if ($seen | index([$n])) != null then error("recursive $ref: \($seen + [$n] | join(" -> "))")
        else ($defs[$n] // error("unknown $ref \($n)")) | deref($defs; $seen + [$n]) end
    else map_values(deref($defs; $seen)) end
  elif type == "array" then map(deref($defs; $seen))
  else . end;
(.definitions
  | .["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {oneOf: [{type: "string"}, {type: "integer"}]}
  | .["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {oneOf: [{type: "string"}, {type: "number"}]}
  | walk(if type == "object" then
      (if (.description | type) == "string" then del(.description) else . end)
      | (if .format == "int-or-string" then {oneOf: [{type: "string"}, {type: "integer"}]} else . end)
      | (if has("properties") and (has("additionalProperties") | not) then .additionalProperties = false else . end)
    else . end)
) as $defs
| $defs | to_entries[]
| select(.key | startswith("io.k8s.apiextensions-apiserver.") | not)
| .key as $title | .value as $schema
| ($schema["x-kubernetes-group-version-kind"] // [])[]
| select(.kind == ($title | split(".") | last))
| . as $gvk
| ((.kind | ascii_downcase)
   + (if .group == "" then "" else "-" + (.group | split(".")[0] | ascii_downcase) end)
   + "-" + (.version | ascii_downcase)) as $file
| if ($file | test("^[a-z0-9.-]+$")) then . else error("unexpected schema file name \($file)") end
| $file,
  ($schema
   | .properties.apiVersion.enum = [if $gvk.group == "" then $gvk.version else "\($gvk.group)/\($gvk.version)" end]
   | .properties.kind.enum = [$gvk.kind]
   | .type //= "object"
   | .additionalProperties = false
   | deref($defs; [$title])
   | walk(if type == "object" then
       (if (.type | type) == "string" and .type != "null" then .type = [.type, "null"] else . end)
       | (if (.properties | type) == "object" and (.required | type) == "array" then
           reduce .required[] as $r (.; if (.properties[$r].type | type) == "array" then .properties[$r].type |= .[0] else . end)
         else . end)
     else . end)
   | .type = "object"
   | {"$schema": "http://json-schema.org/schema#"} + .
   | tojson)
'

# install_k8s_schemas: the JSON schemas of Kubernetes $KUBERNETES_VERSION
# for kubeconform, in $TOOLS/kubernetes-json-schema (see K8S_SCHEMA_JQ).
# The stamp names the release and a hash of the jq program, so changing
# either makes them again.
install_k8s_schemas() {
	local name=kubernetes-json-schema mod=k8s.io/kubernetes target dir out tmp n
	target="$mod/api/openapi-spec/swagger.json@${KUBERNETES_VERSION}+jq-$(printf '%s' "$K8S_SCHEMA_JQ" | sha256sum | cut -c1-12)"
	out="$TOOLS/$name/${KUBERNETES_VERSION}-standalone-strict"
	if [[ -f "$out/deployment-apps-v1.json" ]] && [[ -f "$STAMP" ]] && grep -qxF "$(stamp_line "$name" "$target")" "$STAMP"; then
		log "$name: $target already installed"
		return
	fi
	command -v jq >/dev/null || { log "$name: needs jq (apt-get install jq)"; exit 1; }
	log "$name: making the schemas of Kubernetes $KUBERNETES_VERSION from $mod's OpenAPI document"
	(cd / && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go mod download "$mod@$KUBERNETES_VERSION")
	dir="$(cd / && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go list -m -f '{{.Dir}}' "$mod@$KUBERNETES_VERSION")"
	[[ -f "$dir/api/openapi-spec/swagger.json" ]] || { log "$name: no api/openapi-spec/swagger.json in $mod@$KUBERNETES_VERSION"; exit 1; }
	tmp="$(mktemp -d "$TOOLS/schemas.XXXXXX")"
	mkdir "$tmp/${KUBERNETES_VERSION}-standalone-strict"
	jq -r "$K8S_SCHEMA_JQ" "$dir/api/openapi-spec/swagger.json" |
		awk -v d="$tmp/${KUBERNETES_VERSION}-standalone-strict" 'NR % 2 == 1 { f = d "/" $0 ".json"; next } { print > f; close(f) }'
	n="$(find "$tmp/${KUBERNETES_VERSION}-standalone-strict" -name '*.json' | wc -l)"
	if ((n < 100)) || [[ ! -f "$tmp/${KUBERNETES_VERSION}-standalone-strict/deployment-apps-v1.json" ]]; then
		log "$name: only $n schemas made"
		exit 1
	fi
	chmod -R a+rX "$tmp"
	rm -rf "${TOOLS:?}/${name:?}"
	mv "$tmp" "$TOOLS/$name"
	log "$name: $n schemas in $out"
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
	# kubeconform, kustomize and the Kubernetes schemas: scripts/check-deploy.sh.
	CGO_ENABLED=0 go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" -ldflags "-X main.version=${KUBECONFORM_VERSION}"
	CGO_ENABLED=0 go_install kustomize "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
	install_k8s_schemas
	# weed: SeaweedFS, a real S3-compatible server for the blob cache's
	# shared tier tests.
	if wanted weed; then
		CGO_ENABLED=0 install_in_module weed github.com/seaweedfs/seaweedfs weed "$SEAWEEDFS_VERSION"
	fi

	log "tools in $BIN:"
	sed 's/^/  /' "$STAMP" >&2
}

main "$@"
