#!/usr/bin/env bash
# start-postgres.sh: start a throwaway PostgreSQL server for the tests and
# print its DSN on stdout (everything else goes to stderr):
#
#   postgres://postgres@127.0.0.1:55432/signet_test?sslmode=disable
#
# The server listens on 127.0.0.1 only, on port $SIGNET_PG_PORT (default
# 55432, away from the default 5432), with its data directory and Unix socket
# in ${TMPDIR:-/tmp}/signet-postgres-<port>. Authentication is "trust" for
# local and loopback connections; the superuser is "postgres". Durability is
# switched off (fsync=off): the data is throwaway.
#
# Run as root, the server runs as the Debian "postgres" user (PostgreSQL
# refuses to run as root). Run as another user, it runs as that user, still
# with a superuser role named "postgres".
#
# Idempotent: if a server already answers on the port, it only makes sure the
# database signet_test exists and prints the DSN.
#
# Usage: DSN="$(scripts/start-postgres.sh)"; stop with scripts/stop-postgres.sh.
# Environment: SIGNET_PG_PORT (default 55432).
set -euo pipefail

PORT="${SIGNET_PG_PORT:-55432}"
BASE="${TMPDIR:-/tmp}/signet-postgres-${PORT}"
DATA="$BASE/data"
LOGFILE="$BASE/postgres.log"
DB="signet_test"
DSN="postgres://postgres@127.0.0.1:${PORT}/${DB}?sslmode=disable"

log() { printf 'start-postgres: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The newest Debian PostgreSQL server binaries.
PGBIN=""
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	PGBIN="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)"
	PGBIN="${PGBIN%/initdb}"
fi
# Fall back to initdb on PATH (non-Debian systems).
if [[ -z "$PGBIN" ]] && command -v initdb >/dev/null; then
	PGBIN="$(dirname "$(command -v initdb)")"
fi
[[ -n "$PGBIN" ]] || die "no PostgreSQL server found under /usr/lib/postgresql/*/bin; run scripts/install-tools.sh (as root) or apt-get install postgresql"

# as_pg runs a command as the user that owns the cluster.
if [[ "$(id -u)" == 0 ]]; then
	id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user (apt-get install postgresql creates it)"
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

ready() {
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres
}

ensure_db() {
	local exists
	exists="$("$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -XtAq \
		-c "SELECT 1 FROM pg_database WHERE datname = '${DB}'")"
	if [[ "$exists" != 1 ]]; then
		"$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
		log "created database $DB"
	fi
}

# One start at a time per port (parallel CI jobs or shells).
exec 9>"${TMPDIR:-/tmp}/signet-postgres-${PORT}.lock"
flock -w 120 9 || die "timed out waiting for another start-postgres.sh on port $PORT"

if ready; then
	log "already running on 127.0.0.1:$PORT"
	ensure_db
	printf '%s\n' "$DSN"
	exit 0
fi

mkdir -p "$BASE"
chmod 0700 "$BASE"
if [[ "$(id -u)" == 0 ]]; then
	chown postgres: "$BASE"
	as_pg test -w "$BASE" || die "user postgres cannot write $BASE (is ${TMPDIR:-/tmp} reachable by it?); set TMPDIR to a directory such as /tmp"
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
	rm -rf "$DATA"
	log "initdb into $DATA ($PGBIN)"
	as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$BASE/initdb.log" 2>&1 ||
		{ cat "$BASE/initdb.log" >&2; die "initdb failed"; }
fi

log "starting on 127.0.0.1:$PORT (log: $LOGFILE)"
# Options: loopback only, socket in $BASE, no durability (throwaway data),
# enough connections for parallel test packages.
opts="-c listen_addresses=127.0.0.1 -p $PORT -k $BASE"
opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
opts+=" -c max_connections=200"
# 9>&-: the server must not inherit the start lock, or it would hold it
# for as long as it runs and every later start would time out.
if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -o "$opts" -w -t 60 start >/dev/null 9>&-; then
	tail -n 30 "$LOGFILE" >&2 || true
	die "pg_ctl start failed"
fi

for _ in $(seq 1 60); do
	ready && break
	sleep 0.5
done
ready || { tail -n 30 "$LOGFILE" >&2 || true; die "server did not become ready on 127.0.0.1:$PORT"; }

ensure_db
printf '%s\n' "$DSN"
