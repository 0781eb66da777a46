#!/usr/bin/env bash
# start-pcscd.sh: start pcscd with vpcd, the virtual smart card reader of
# the vsmartcard project, for the PIV simulator tests (internal/pivsim),
# and print the TCP port vpcd waits for cards on, on stdout (everything
# else goes to stderr):
#
#   35963
#
# The simulated card (pivsim.Card.ConnectVPCD) dials that port; pcscd then
# shows it in reader "Virtual PCD 00 00" to every PC/SC client: piv-go,
# yubico-piv-tool, opensc. vpcd gives each reader two card slots, on the
# port and the next one ("Virtual PCD 00 01"). Tests find vpcd through
#
#   export SIGNET_TEST_VPCD=127.0.0.1:$(scripts/start-pcscd.sh)
#
# pcscd's client socket is fixed at build time (/run/pcscd/pcscd.comm on
# Debian), so there is one pcscd per machine: this script starts it as root,
# with no systemd, in the foreground of its own session (setsid), with a
# reader configuration of its own in ${TMPDIR:-/tmp}/signet-pcscd and its
# log in ${TMPDIR:-/tmp}/signet-pcscd/pcscd.log. Stop it with
#   kill "$(cat /run/pcscd/pcscd.pid)"
#
# Idempotent: if a pcscd is running and vpcd listens on the port, it only
# prints the port. A pcscd running without vpcd on the port (a system
# pcscd started before vsmartcard-vpcd was installed, say) is reported, not
# replaced.
#
# Needs the Debian packages pcscd and vsmartcard-vpcd (and libpcsclite-dev
# to build piv-go, yubico-piv-tool for the cross-checks):
#   apt-get install -y pcscd vsmartcard-vpcd libpcsclite-dev yubico-piv-tool
#
# Environment: SIGNET_VPCD_PORT (default 35963, vpcd's own default).
set -euo pipefail

PORT="${SIGNET_VPCD_PORT:-35963}"
BASE="${TMPDIR:-/tmp}/signet-pcscd"
CONF="$BASE/reader.conf.d"
LOGFILE="$BASE/pcscd.log"
IPCDIR=/run/pcscd
SOCK="$IPCDIR/pcscd.comm"
PIDFILE="$IPCDIR/pcscd.pid"

log() { printf 'start-pcscd: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65534)); then
	die "SIGNET_VPCD_PORT=$PORT is not a TCP port below 65535"
fi

# listening reports whether something listens on TCP port $1 (vpcd binds
# 0.0.0.0). It reads /proc instead of connecting, because vpcd takes any
# connection for a card.
listening() {
	local hex
	hex="$(printf '%04X' "$1")"
	awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# running prints the pid of the running pcscd, from its pid file.
running() {
	local pid
	[[ -r "$PIDFILE" ]] || return 1
	pid="$(tr -dc '0-9' <"$PIDFILE")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	# A killed pcscd whose parent does not reap it (PID 1 in a container)
	# stays a zombie: not running.
	[[ "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]] || return 1
	printf '%s\n' "$pid"
}

command -v pcscd >/dev/null || die "pcscd not found; apt-get install -y pcscd vsmartcard-vpcd"

DRIVER=""
for d in /usr/lib/pcsc/drivers/serial /usr/lib64/pcsc/drivers/serial /usr/local/lib/pcsc/drivers/serial; do
	if [[ -e "$d/libifdvpcd.so" ]]; then
		DRIVER="$d/libifdvpcd.so"
		break
	fi
done
[[ -n "$DRIVER" ]] || die "vpcd driver libifdvpcd.so not found; apt-get install -y vsmartcard-vpcd"

mkdir -p "$BASE"
# One start at a time (parallel CI jobs or shells).
exec 9>"$BASE/start.lock"
flock -w 60 9 || die "timed out waiting for another start-pcscd.sh"

if pid="$(running)"; then
	if listening "$PORT"; then
		log "pcscd (pid $pid) is running with vpcd on port $PORT"
		printf '%s\n' "$PORT"
		exit 0
	fi
	die "a pcscd (pid $pid) is running but nothing listens on vpcd port $PORT: stop it (kill $pid) and run this again, or set SIGNET_VPCD_PORT to the port of its vpcd (a system pcscd reads /etc/reader.conf.d/vpcd, port 35963, once restarted after vsmartcard-vpcd is installed)"
fi
if listening "$PORT"; then
	die "port $PORT is taken by another program; set SIGNET_VPCD_PORT to a free port"
fi

if [[ -e "$SOCK" ]]; then
	if command -v systemctl >/dev/null && systemctl is-active --quiet pcscd.socket 2>/dev/null; then
		die "$SOCK belongs to systemd's pcscd.socket: use the system pcscd (systemctl restart pcscd after installing vsmartcard-vpcd; its vpcd listens on 35963) or stop pcscd.socket"
	fi
	log "removing stale $SOCK (no pcscd running)"
	rm -f "$SOCK" "$PIDFILE"
fi
if ! mkdir -p "$IPCDIR" 2>/dev/null || [[ ! -w "$IPCDIR" ]]; then
	die "cannot write $IPCDIR, where pcscd puts its socket: run as root"
fi

mkdir -p "$CONF"
# vpcd's reader.conf entry: DEVICENAME /dev/null:<port> makes vpcd listen
# on <port> (and <port>+1) for cards instead of connecting out.
printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x%04X\nLIBPATH      %s\nCHANNELID    0x%04X\n' \
	"$PORT" "$DRIVER" "$PORT" >"$CONF/vpcd"

log "starting pcscd with vpcd on port $PORT (config: $CONF, log: $LOGFILE)"
launcher=()
command -v setsid >/dev/null && launcher=(setsid)
# 9>&-: the daemon must not hold the lock.
"${launcher[@]}" pcscd --foreground --config "$CONF" </dev/null >>"$LOGFILE" 2>&1 9>&- &
child=$!

for _ in $(seq 1 100); do
	if [[ -S "$SOCK" ]] && listening "$PORT"; then
		break
	fi
	if ! kill -0 "$child" 2>/dev/null; then
		tail -n 20 "$LOGFILE" >&2 || true
		die "pcscd exited at start"
	fi
	sleep 0.1
done
if ! [[ -S "$SOCK" ]] || ! listening "$PORT"; then
	tail -n 20 "$LOGFILE" >&2 || true
	die "pcscd did not come up with vpcd on port $PORT within 10 s"
fi

log "pcscd (pid $child) is running with vpcd on port $PORT"
printf '%s\n' "$PORT"
