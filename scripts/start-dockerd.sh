#!/usr/bin/env bash
# start-dockerd.sh: start a private Docker engine (Debian's docker.io
# package) for the engine tests (internal/engines), in a folder of its own,
# and print its socket path on stdout (everything else goes to stderr):
#
#   /tmp/dockerd.abc/docker.sock
#
# Use it with DOCKER_HOST=unix://<that path>. Everything the daemon keeps
# is under DIR: data/ (--data-root, with the vfs storage driver), exec/
# (--exec-root, with the containerd dockerd starts for itself), the socket,
# dockerd.log and dockerd.pid. No iptables rules, no bridge, no system
# service: a system dockerd keeps running undisturbed.
#
# dockerd reads registry CAs from /etc/docker/certs.d/<host:port>/ca.crt,
# a path it does not let one change, and resolves registry names through
# /etc/hosts. So that a test can give it both without touching the
# machine's, the daemon runs in a mount namespace of its own (unshare
# --mount) where
#   DIR/etc-docker  is mounted on /etc/docker (daemon.json, certs.d/, and
#                   the key.json dockerd 20.10 writes there), and
#   DIR/hosts       is mounted on /etc/hosts, if the file exists.
# Write those before running this script. DIR/etc-docker/daemon.json is
# created as {} if missing; it is passed with --config-file, so
# "insecure-registries" and "registry-mirrors" go there.
#
# docker treats every registry that resolves into 127.0.0.0/8 as insecure
# (https without certificate checks, then plain http): to test a CA in
# certs.d for real, give the registry a name that resolves to ::1 in
# DIR/hosts.
#
# The daemon runs in a session of its own (setsid) and outlives this
# script. Stop it with
#   kill "$(cat DIR/dockerd.pid)"
# then remove DIR as root.
#
# Needs the Debian package docker.io (dockerd, containerd, runc) and
# util-linux (unshare, mount):
#   apt-get install -y docker.io
#
# Usage: SOCK="$(scripts/start-dockerd.sh DIR)"
# Environment: SIGNET_DOCKERD (the dockerd binary, default /usr/sbin/dockerd
# or from PATH).
set -euo pipefail

log() { printf 'start-dockerd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $# == 1 ]] || die "usage: $0 DIR"
[[ "$(id -u)" == 0 ]] || die "dockerd runs as root here (run as root)"
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
BIN="${SIGNET_DOCKERD:-}"
if [[ -z "$BIN" ]]; then
	if [[ -x /usr/sbin/dockerd ]]; then BIN=/usr/sbin/dockerd; else BIN="$(command -v dockerd || true)"; fi
fi
[[ -n "$BIN" && -x "$BIN" ]] || die "no dockerd binary (apt-get install docker.io, or set SIGNET_DOCKERD)"
command -v unshare >/dev/null || die "no unshare (apt-get install util-linux)"
SOCK="$DIR/docker.sock"
((${#SOCK} < 100)) || die "socket path $SOCK is too long for a Unix socket: use a shorter DIR"

mkdir -p "$DIR/data" "$DIR/exec" "$DIR/etc-docker/certs.d"
chmod 0700 "$DIR"
[[ -f "$DIR/etc-docker/daemon.json" ]] || echo '{}' >"$DIR/etc-docker/daemon.json"
# The mount point (the docker.io package creates it).
[[ -d /etc/docker ]] || { log "creating /etc/docker (empty), the mount point for DIR/etc-docker"; mkdir -p /etc/docker; }

if [[ -S "$SOCK" ]] && [[ -f "$DIR/dockerd.pid" ]] && kill -0 "$(cat "$DIR/dockerd.pid")" 2>/dev/null; then
	log "already running (pid $(cat "$DIR/dockerd.pid"))"
	printf '%s\n' "$SOCK"
	exit 0
fi
rm -f "$SOCK"

# The inner shell mounts, then becomes dockerd (exec), so the pid is
# dockerd's. Paths are passed as arguments, not spliced into the script.
inner='set -e
dir=$1; bin=$2; shift 2
mount --bind "$dir/etc-docker" /etc/docker
if [ -f "$dir/hosts" ]; then mount --bind "$dir/hosts" /etc/hosts; fi
exec "$bin" "$@"'

log "starting $BIN in $DIR (log: $DIR/dockerd.log)"
setsid unshare --mount --propagation private sh -c "$inner" sh "$DIR" "$BIN" \
	--config-file "$DIR/etc-docker/daemon.json" \
	--data-root "$DIR/data" \
	--exec-root "$DIR/exec" \
	--pidfile "$DIR/dockerd.pid" \
	-H "unix://$SOCK" \
	--storage-driver vfs \
	--iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
	--bridge none \
	--userland-proxy=false \
	</dev/null >"$DIR/dockerd.log" 2>&1 &
pid=$!

for _ in $(seq 1 240); do
	kill -0 "$pid" 2>/dev/null || { tail -n 30 "$DIR/dockerd.log" >&2; die "dockerd exited"; }
	if [[ -S "$SOCK" ]] && grep -q 'API listen on' "$DIR/dockerd.log" 2>/dev/null; then
		[[ -f "$DIR/dockerd.pid" ]] || echo "$pid" >"$DIR/dockerd.pid"
		printf '%s\n' "$SOCK"
		exit 0
	fi
	sleep 0.25
done
tail -n 30 "$DIR/dockerd.log" >&2
kill "$pid" 2>/dev/null || true
die "dockerd did not listen on $SOCK within 60s"
