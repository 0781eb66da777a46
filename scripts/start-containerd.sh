#!/usr/bin/env bash
# start-containerd.sh: start a private containerd (Debian's package) for the
# engine tests (internal/engines), in a folder of its own, and print its
# socket path on stdout (everything else goes to stderr):
#
#   /tmp/ctrd.abc/containerd.sock
#
# Everything the daemon keeps is under DIR: config.toml (written here),
# root/, state/, opt/, the sockets, containerd.log and containerd.pid. It
# uses the native snapshotter (no overlay mounts needed), its CRI plugin
# reads registry hosts from DIR/certs.d/<registry>/hosts.toml (the
# kubelet's view), and `ctr --address DIR/containerd.sock images pull
# --hosts-dir DIR/certs.d ...` reads the same files. Nothing outside DIR is
# written, no system service is touched, and a system containerd keeps
# running undisturbed. The socket path must stay under 100 bytes or so:
# keep DIR short (mktemp -d /tmp/ctrd.XXXXXX).
#
# The daemon runs in a session of its own (setsid) and outlives this
# script. Stop it with
#   kill "$(cat DIR/containerd.pid)"
# and then remove DIR (its root may hold read-only snapshot files: rm -rf as
# root).
#
# Needs the Debian package containerd (and runc only to run containers,
# which the tests do not):
#   apt-get install -y containerd
#
# Usage: SOCK="$(scripts/start-containerd.sh DIR)"
# Environment: SIGNET_CONTAINERD (the containerd binary, default from PATH),
# SIGNET_CONTAINERD_LOG_LEVEL (default debug: the log shows each registry
# request and response, which is where denials show).
set -euo pipefail

log() { printf 'start-containerd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $# == 1 ]] || die "usage: $0 DIR"
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
BIN="${SIGNET_CONTAINERD:-$(command -v containerd || true)}"
[[ -n "$BIN" && -x "$BIN" ]] || die "no containerd binary (apt-get install containerd, or set SIGNET_CONTAINERD)"
LEVEL="${SIGNET_CONTAINERD_LOG_LEVEL:-debug}"
SOCK="$DIR/containerd.sock"
((${#SOCK} < 100)) || die "socket path $SOCK is too long for a Unix socket: use a shorter DIR"

mkdir -p "$DIR/root" "$DIR/state" "$DIR/opt" "$DIR/certs.d"
chmod 0700 "$DIR"

# Version 2 configuration (containerd 1.5 to 1.7). Plugins that need
# kernel features or system paths are disabled; the CRI plugin is kept,
# with no CNI (image calls need none).
cat >"$DIR/config.toml" <<EOF
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""
  level = "$LEVEL"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/cni/bin"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$DIR/certs.d"
EOF

if [[ -S "$SOCK" ]] && [[ -f "$DIR/containerd.pid" ]] && kill -0 "$(cat "$DIR/containerd.pid")" 2>/dev/null; then
	log "already running (pid $(cat "$DIR/containerd.pid"))"
	printf '%s\n' "$SOCK"
	exit 0
fi
rm -f "$SOCK" "$SOCK.ttrpc"

log "starting $BIN in $DIR (log: $DIR/containerd.log)"
setsid "$BIN" --config "$DIR/config.toml" </dev/null >"$DIR/containerd.log" 2>&1 &
pid=$!
echo "$pid" >"$DIR/containerd.pid"

# Ready once the socket answers a version call.
CTR="$(dirname "$BIN")/ctr"
[[ -x "$CTR" ]] || CTR="$(command -v ctr || true)"
for _ in $(seq 1 120); do
	kill -0 "$pid" 2>/dev/null || { tail -n 30 "$DIR/containerd.log" >&2; die "containerd exited"; }
	if [[ -S "$SOCK" ]]; then
		if [[ -z "$CTR" ]] || "$CTR" --address "$SOCK" version >/dev/null 2>&1; then
			printf '%s\n' "$SOCK"
			exit 0
		fi
	fi
	sleep 0.25
done
tail -n 30 "$DIR/containerd.log" >&2
kill "$pid" 2>/dev/null || true
die "containerd did not answer on $SOCK within 30s"
