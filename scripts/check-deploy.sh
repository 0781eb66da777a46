#!/usr/bin/env bash
# check-deploy.sh: check the Kubernetes manifests in deploy/ without a
# cluster. It fails on the first kind of problem it finds, and prints what
# it checked:
#
#   1. every kustomization under deploy/ (the base and each overlay)
#      renders with kustomize;
#   2. kubeconform -strict validates each rendering, and the examples in
#      deploy/examples/, against the JSON schemas of the pinned Kubernetes
#      release (KUBERNETES_VERSION in scripts/install-tools.sh): unknown
#      fields, wrong types, missing required fields and kinds without a
#      schema are errors;
#   3. the arguments of each rendered signet container are accepted by the
#      real binary: `signet ARGS... --help` exits non-zero on an unknown
#      flag or a value a flag refuses (signet is built from this tree);
#   4. each policy file in deploy/ loads: `signet proxy --policy FILE`
#      starts (on 127.0.0.1, port chosen by the system, for 3 seconds);
#   5. deploy/nodes/hosts.toml parses as TOML (python3 >= 3.11, tomllib),
#      has the settings of docs/proxy.md's https example (the file
#      internal/engines runs containerd with), and
#      deploy/nodes/cloud-init.yaml writes the same lines.
#
# Needs `make tools` (kustomize, kubeconform and the schemas in .tools/),
# Go, and python3 >= 3.11 for step 5.
#
# Usage: scripts/check-deploy.sh [DEPLOY_DIR]   (default: deploy/ of this repo;
#        another folder checks a copy, as when trying a change out)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$(cd "${1:-$REPO/deploy}" && pwd)"
TOOLS="$REPO/.tools"
KUSTOMIZE="$TOOLS/bin/kustomize"
KUBECONFORM="$TOOLS/bin/kubeconform"
SCHEMAS="$TOOLS/kubernetes-json-schema"

log() { printf 'check-deploy: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for t in "$KUSTOMIZE" "$KUBECONFORM"; do
	[[ -x "$t" ]] || die "$t is missing: run make tools"
done
shopt -s nullglob
schema_dirs=("$SCHEMAS"/v*-standalone-strict)
((${#schema_dirs[@]} == 1)) || die "want one schema folder in $SCHEMAS, found ${#schema_dirs[@]}: run make tools"
K8S_VERSION="$(basename "${schema_dirs[0]}")"
K8S_VERSION="${K8S_VERSION%-standalone-strict}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- 1 and 2: render and validate ------------------------------------------

mapfile -t kustomizations < <(cd "$DEPLOY" && find . -name kustomization.yaml -printf '%h\n' | sed 's|^\./||; s|^\.$||' | sort)
((${#kustomizations[@]})) || die "no kustomization.yaml under $DEPLOY"
rendered=()
for k in "${kustomizations[@]}"; do
	out="$WORK/rendered-${k//\//_}.yaml"
	log "kustomize build deploy/$k"
	"$KUSTOMIZE" build "$DEPLOY/$k" >"$out" || die "kustomize build deploy/$k"
	rendered+=("$out")
done
examples=("$DEPLOY"/examples/*.yaml)
for f in "${rendered[@]}" "${examples[@]}"; do
	name="${f#"$WORK"/}"
	name="${name#"$DEPLOY"/}"
	log "kubeconform -strict (Kubernetes $K8S_VERSION): $name"
	"$KUBECONFORM" -strict -summary -schema-location "$SCHEMAS" -kubernetes-version "${K8S_VERSION#v}" "$f" >&2 ||
		die "kubeconform: $name"
done

# --- 3: container arguments against the real binary -------------------------

log "building signet"
(cd "$REPO" && go build -tags nopcsc -o "$WORK/signet" ./cmd/signet) || die "go build ./cmd/signet"

# args_of FILE: one line per container whose args start with a signet
# command (server, proxy): its arguments, separated by \001. kustomize
# writes a block sequence one item per line, at the indentation of its
# key, so a line-based reading is enough; a quoted item is unquoted.
args_of() {
	awk '
	function flush() {
		if (n > 0 && (a[1] == "server" || a[1] == "proxy")) {
			s = a[1]
			for (i = 2; i <= n; i++) s = s "\001" a[i]
			print s
		}
		n = 0
		inargs = 0
	}
	/^---$/ { flush(); next }
	inargs {
		if (substr($0, 1, col + 2) == pre) {
			v = substr($0, col + 3)
			if (v ~ /^".*"$/) v = substr(v, 2, length(v) - 2)
			else if (v ~ /^'\''.*'\''$/) { v = substr(v, 2, length(v) - 2); gsub(/'\'\''/, "'\''", v) }
			a[++n] = v
			next
		}
		flush()
	}
	/^ *(- )?args:$/ {
		match($0, /^ */)
		col = RLENGTH
		if ($0 ~ /^ *- args:$/) col += 2
		pre = ""
		for (i = 0; i < col; i++) pre = pre " "
		pre = pre "- "
		inargs = 1
		n = 0
	}
	END { flush() }' "$1"
}

checked=0
for f in "${rendered[@]}"; do
	while IFS=$'\001' read -r -a argv; do
		log "signet ${argv[*]} --help   (${f#"$WORK"/})"
		"$WORK/signet" "${argv[@]}" --help >/dev/null || die "signet refuses the arguments of its ${argv[0]} container in ${f#"$WORK"/}"
		checked=$((checked + 1))
	done < <(args_of "$f")
done
((checked > 0)) || die "found no signet container arguments in the rendered manifests"

# --- 4: policy files load ----------------------------------------------------

policies=()
while IFS= read -r -d '' p; do policies+=("$p"); done < <(find "$DEPLOY" -name policy.yaml -print0 | sort -z)
((${#policies[@]})) || die "no policy.yaml under $DEPLOY"
for p in "${policies[@]}"; do
	log "signet proxy --policy ${p#"$DEPLOY"/}"
	rc=0
	timeout 3 "$WORK/signet" proxy --addr 127.0.0.1:0 --policy "$p" --cache-dir "$WORK/cache" \
		>"$WORK/proxy.out" 2>"$WORK/proxy.err" </dev/null || rc=$?
	if ((rc != 124)) || ! grep -q '^signet proxy on ' "$WORK/proxy.out"; then
		cat "$WORK/proxy.err" >&2
		die "signet proxy did not start with ${p#"$DEPLOY"/} (exit $rc)"
	fi
done

# --- 5: the nodes' hosts.toml --------------------------------------------------

hosts="$DEPLOY/nodes/hosts.toml"
cloudinit="$DEPLOY/nodes/cloud-init.yaml"
[[ -f "$hosts" ]] || die "no nodes/hosts.toml under $DEPLOY"
{
	log "TOML: nodes/hosts.toml"
	py=""
	for c in python3 /usr/bin/python3; do
		if command -v "$c" >/dev/null && "$c" -c 'import tomllib' 2>/dev/null; then
			py="$c"
			break
		fi
	done
	[[ -n "$py" ]] || die "python3 >= 3.11 (tomllib) is needed to parse nodes/hosts.toml (Debian 12: apt-get install python3)"
	"$py" -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    t = tomllib.load(f)
for key in ("server", "capabilities"):
    if key not in t:
        sys.exit(f"{sys.argv[1]}: no {key}")
if "host" not in t or t["host"]:
    sys.exit(f"{sys.argv[1]}: want an empty [host] table (no mirrors)")
' "$hosts" || die "nodes/hosts.toml"
	if [[ -f "$cloudinit" ]]; then
		log "same lines: nodes/hosts.toml and its copy in nodes/cloud-init.yaml"
		grep -v '^#' "$hosts" >"$WORK/hosts.want"
		awk '
		/^  - path: .*\/hosts\.toml$/ { in_file = 1; next }
		/^  - path: / { in_file = 0 }
		in_file && /^    content: \|/ { in_content = 1; next }
		in_content && /^      / { print substr($0, 7); next }
		in_content { in_content = 0; in_file = 0 }' "$cloudinit" >"$WORK/hosts.got"
		diff -u "$WORK/hosts.want" "$WORK/hosts.got" >&2 || die "nodes/cloud-init.yaml does not write nodes/hosts.toml's lines"
	fi
	# docs/proxy.md's https example is the file internal/engines runs
	# containerd with; the nodes get the same settings.
	log "same settings: nodes/hosts.toml and docs/proxy.md's https example"
	awk '
	/^```toml$/ { inblock = 1; b = ""; next }
	inblock && /^```$/ { inblock = 0; if (b ~ /registry\.example\.com\/hosts\.toml/ && b ~ /server = "https:\/\/signet-proxy\.internal:5443"\n/) printf "%s", b; next }
	inblock { b = b $0 "\n" }' "$REPO/docs/proxy.md" | sed -e 's/ *#.*$//' -e '/^$/d' >"$WORK/hosts.doc"
	[[ -s "$WORK/hosts.doc" ]] || die "docs/proxy.md has no https hosts.toml example for registry.example.com"
	sed -e 's/ *#.*$//' -e '/^$/d' "$hosts" >"$WORK/hosts.mine"
	diff -u "$WORK/hosts.doc" "$WORK/hosts.mine" >&2 || die "nodes/hosts.toml differs from docs/proxy.md's https example"
}

log "ok: ${#kustomizations[@]} kustomizations and ${#examples[@]} examples valid for Kubernetes $K8S_VERSION, $checked signet containers' arguments accepted, ${#policies[@]} policy files loaded"
