#!/usr/bin/env bash
# stop-postgres.sh: stop the throwaway PostgreSQL server started by
# scripts/start-postgres.sh and delete its data directory
# (${TMPDIR:-/tmp}/signet-postgres-<port>). Safe to run when nothing runs.
#
# Environment: SIGNET_PG_PORT (default 55432), SIGNET_PG_KEEP=1 to keep the
# data directory (for looking at postgres.log after a failure).
set -euo pipefail

PORT="${SIGNET_PG_PORT:-55432}"
BASE="${TMPDIR:-/tmp}/signet-postgres-${PORT}"
DATA="$BASE/data"

log() { printf 'stop-postgres: %s\n' "$*" >&2; }

PGBIN=""
if compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
	PGBIN="$(compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' | sort -V | tail -n 1)"
	PGBIN="${PGBIN%/pg_ctl}"
elif command -v pg_ctl >/dev/null; then
	PGBIN="$(dirname "$(command -v pg_ctl)")"
fi

if [[ "$(id -u)" == 0 ]]; then
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

if [[ -n "$PGBIN" && -f "$DATA/postmaster.pid" ]]; then
	if as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		log "stopping server on 127.0.0.1:$PORT"
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
	fi
fi

if [[ "${SIGNET_PG_KEEP:-}" == 1 ]]; then
	log "keeping $BASE"
elif [[ -d "$BASE" ]]; then
	rm -rf "$BASE"
	rm -f "${BASE}.lock"
	log "removed $BASE"
fi
