#!/usr/bin/env bash
# scripts/demo.sh (make demo): the whole loop on loopback with embedded
# defaults: a local registry (go-containerregistry's, via crane), signet's
# trust server on SQLite, and signet's verifying proxy. It signs an image on
# push, pulls it through the proxy, shows an unsigned pull denied, a tag
# moved upstream still served as signed, and the notary CLI reading what
# signet signed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TOOLS="$REPO/.tools/bin"
[[ -x "$TOOLS/crane" && -x "$TOOLS/notary" ]] || bash scripts/install-tools.sh

WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-demo.XXXXXX")"
REG_PORT="${SIGNET_DEMO_REGISTRY_PORT:-5000}"
TRUST_PORT="${SIGNET_DEMO_TRUST_PORT:-4443}"
PROXY_PORT="${SIGNET_DEMO_PROXY_PORT:-5001}"
REG="127.0.0.1:$REG_PORT"
TRUST="http://127.0.0.1:$TRUST_PORT"
PROXY="127.0.0.1:$PROXY_PORT"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_up() { # url
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "not up: $1" >&2
	cat "$WORK"/*.log >&2
	return 1
}
crane() { "$TOOLS/crane" "$@"; }

step "build signet"
# YubiKey support needs libpcsclite; without it, build without PC/SC.
TAGS=()
pkg-config --exists libpcsclite 2>/dev/null || TAGS=(-tags nopcsc)
go build "${TAGS[@]}" -o "$WORK/signet" ./cmd/signet
signet() { (set -x; "$WORK/signet" "$@"); }

step "start a registry ($REG), signet server ($TRUST), signet proxy ($PROXY)"
"$TOOLS/crane" registry serve --address "$REG" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
export SIGNET_SERVER_KEY_PASSPHRASE="demo server passphrase, not for production"
"$WORK/signet" server --addr "127.0.0.1:$TRUST_PORT" --data-dir "$WORK/server" 2>"$WORK/server.log" &
PIDS+=($!)
wait_up "http://$REG/v2/"
wait_up "$TRUST/_notary_server/health"
"$WORK/signet" proxy --addr "$PROXY" --upstream "http://$REG" --trust-server "$TRUST" --tofu 2>"$WORK/proxy.log" &
PIDS+=($!)
wait_up "http://$PROXY/healthz"

# A small image as an OCI layout, built offline.
mkdir -p "$WORK/rootfs"
echo "hello from signet demo" >"$WORK/rootfs/hello.txt"
tar -C "$WORK/rootfs" -cf "$WORK/layer.tar" hello.txt
crane append -f "$WORK/layer.tar" -t "$REG/scratch/base:1" >/dev/null 2>&1
crane pull --format oci "$REG/scratch/base:1" "$WORK/oci"

export SIGNET_TRUST_SERVER="$TRUST" SIGNET_TRUST_DIR="$WORK/trust"
export SIGNET_ROOT_PASSPHRASE=demo-root-passphrase SIGNET_REPOSITORY_PASSPHRASE=demo-repo-passphrase

step "sign on push: push the OCI layout and sign the pushed digest"
signet push -q "$WORK/oci" "$REG/demo/app:1.0"

step "pull it through the proxy (crane)"
crane pull "$PROXY/demo/app:1.0" "$WORK/pulled.tar" && echo "pulled: $(crane digest "$PROXY/demo/app:1.0")"

step "push an unsigned tag upstream; the proxy denies it"
crane append -f "$WORK/layer.tar" -b "$REG/demo/app:1.0" -t "$REG/demo/app:unsigned" >/dev/null 2>&1
crane manifest "$PROXY/demo/app:unsigned" || echo "(denied, as it should be)"

step "move the signed tag upstream; the proxy still serves the signed digest"
crane append -f "$WORK/layer.tar" -b "$REG/demo/app:1.0" -t "$REG/demo/app:1.0" >/dev/null 2>&1
echo "registry serves: $(crane digest "$REG/demo/app:1.0")"
echo "proxy serves:    $(crane digest "$PROXY/demo/app:1.0")"
signet verify "$REG/demo/app:1.0" || echo "(signet verify reports the move)"

step "what is signed, as docker trust inspect shows it"
signet inspect "$REG/demo/app"

step "the notary CLI v0.7.0 reads the same trust data"
NOTARY_ROOT_PASSPHRASE=x "$TOOLS/notary" -s "$TRUST" -d "$WORK/notary" list "$REG/demo/app"

step "proxy audit log"
grep -E 'msg=decision' "$WORK/proxy.log" | tail -5
