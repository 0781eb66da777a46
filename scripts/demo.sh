#!/usr/bin/env bash
# scripts/demo.sh (make demo): start signet's trust server on loopback with
# SQLite in a temporary data dir, then publish with the real notary CLI
# v0.7.0: a repository, a target, a targets/releases delegation and a
# delegated target (the upload the original notary-server refuses), and list
# it back. Grows with later issues (push, proxy).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TOOLS="$REPO/.tools/bin"
[[ -x "$TOOLS/notary" ]] || bash scripts/install-tools.sh

WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-demo.XXXXXX")"
PORT="${SIGNET_DEMO_PORT:-4443}"
URL="http://127.0.0.1:$PORT"
SERVER_PID=""
cleanup() {
	[[ -n "$SERVER_PID" ]] && kill -INT "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build signet"
go build -o "$WORK/signet" ./cmd/signet

step "start signet server on $URL (SQLite in $WORK/data)"
export SIGNET_SERVER_KEY_PASSPHRASE="demo passphrase, not for production"
"$WORK/signet" server --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
	curl -fsS "$URL/_notary_server/health" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "$URL/_notary_server/health" >/dev/null || { cat "$WORK/server.log"; exit 1; }

export NOTARY_ROOT_PASSPHRASE=demo-root-passphrase NOTARY_TARGETS_PASSPHRASE=demo-targets-passphrase \
	NOTARY_SNAPSHOT_PASSPHRASE=demo-snapshot-passphrase NOTARY_DELEGATION_PASSPHRASE=demo-delegation-passphrase
notary() { (set -x; "$TOOLS/notary" -s "$URL" -d "$WORK/trust" "$@"); }
GUN=registry.example.com/demo/app

step "notary init (root and targets keys local, snapshot and timestamp on the server)"
notary init "$GUN" -p

step "sign a digest into targets"
notary addhash "$GUN" v1.0 1234 --sha256 "$(printf 'manifest v1.0' | sha256sum | cut -d' ' -f1)" -p

step "add the targets/releases delegation (docker's signers role) and sign into it"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/releases.key" 2>/dev/null
openssl req -new -x509 -key "$WORK/releases.key" -out "$WORK/releases.crt" -days 365 -subj /CN=ci-signer 2>/dev/null
notary delegation add "$GUN" targets/releases "$WORK/releases.crt" --all-paths -p
notary key import "$WORK/releases.key" --role targets/releases
printf 'manifest v1.1' >"$WORK/manifest"
notary add "$GUN" v1.1 "$WORK/manifest" --roles targets/releases -p

step "list what is signed (v1.0 in targets, v1.1 in targets/releases)"
notary list "$GUN"

step "the raw API: timestamp signed by the server"
curl -fsS "$URL/v2/$GUN/_trust/tuf/timestamp.json"; echo

step "server log"
cat "$WORK/server.log"
