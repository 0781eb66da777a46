#!/usr/bin/env bash
# bench/run.sh: compare signet's trust server with the original
# notary-server v0.7.0 under the same load, and run the Go benchmarks of
# trust/server. See bench/README.md for what is measured.
#
#   1. builds `signet` and bench/trustload;
#   2. starts, on free loopback ports, `signet server` (SQLite in a temporary
#      folder) and notary-server v0.7.0 (memory storage: the released binary
#      links no SQLite driver); with a PostgreSQL DSN, also both servers over
#      PostgreSQL (fresh databases; notary's own migrations for notary-server);
#   3. runs the same trustload against each, BENCH_ROUNDS times, interleaved
#      and alternating the order, with a fresh set of repositories each time;
#   4. prints the median ops/s and server CPU ms per operation, per phase,
#      for each server and the ratios, and benchstat's comparison of the
#      rounds;
#   5. runs the Go benchmarks of trust/server (`go test -bench`, -count
#      BENCH_COUNT; publishes with a fixed -benchtime) and prints benchstat
#      of them.
#
# Raw output goes to bench/out/<UTC time>/ (git-ignored). Servers are
# stopped and temporary data removed on exit. Every wait and run is bounded.
#
# Usage: bash bench/run.sh    (or `make bench`)
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]        trustload runs per server
#   BENCH_REPOS [4]         repositories per run
#   BENCH_PUBLISHES [200]   targets updates per run
#   BENCH_GETS [5000]       GETs of timestamp.json, and of targets.json, per run
#   BENCH_CONCURRENCY [8]   concurrent GET workers (publishers: min of it and repos)
#   BENCH_COUNT [5]         go test -count
#   BENCH_PUBLISH_N [200]   go test -benchtime Nx of the publish benchmarks
#   BENCH_GO [1]            0 skips the Go benchmarks
#   BENCH_POSTGRES_DSN      postgres:// URL of a server where databases may be
#                           created (default $SIGNET_TEST_POSTGRES_DSN; unset:
#                           no PostgreSQL runs)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

ROUNDS="${BENCH_ROUNDS:-5}"
REPOS="${BENCH_REPOS:-4}"
PUBLISHES="${BENCH_PUBLISHES:-200}"
GETS="${BENCH_GETS:-5000}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
COUNT="${BENCH_COUNT:-5}"
PUBLISH_N="${BENCH_PUBLISH_N:-200}"
RUN_GO="${BENCH_GO:-1}"
PG_DSN="${BENCH_POSTGRES_DSN:-${SIGNET_TEST_POSTGRES_DSN:-}}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"
PASSPHRASE="signet benchmark server passphrase"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in ROUNDS REPOS PUBLISHES GETS CONCURRENCY COUNT PUBLISH_N; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v=${!v}: want a positive integer"
done
[[ -x "$TOOLS/notary-server" ]] || die "$TOOLS/notary-server not found: run scripts/install-tools.sh (make tools) first"
command -v curl >/dev/null || die "curl is needed to wait for the servers"
BENCHSTAT=""
[[ -x "$TOOLS/benchstat" ]] && BENCHSTAT="$TOOLS/benchstat"
[[ -z "$BENCHSTAT" ]] && log "no benchstat in $TOOLS (scripts/install-tools.sh installs it): printing raw results only"

OUT="$REPO/bench/out/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/signet-bench.XXXXXX")"
mkdir -p "$TMP/bin" "$TMP/data"

# --- cleanup -----------------------------------------------------------------

PIDS=()
PG_DBS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		# Bounded wait: SIGKILL after 10 s.
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [[ ${#PG_DBS[@]} -gt 0 ]]; then
		local db
		for db in "${PG_DBS[@]}"; do
			psql -q -X "$(pg_url postgres)" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || log "could not drop database $db"
		done
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- environment -------------------------------------------------------------

{
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
	echo "go:      $(go version)"
	echo "cpus:    $(nproc)"
	echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel:  $(uname -sr)"
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (at start)"
	echo "params:  rounds=$ROUNDS repos=$REPOS publishes=$PUBLISHES gets=$GETS concurrency=$CONCURRENCY"
	echo "notary-server: $("$TOOLS/notary-server" -version 2>&1 | head -n 1)"
} | tee "$OUT/env.txt"

# --- build -------------------------------------------------------------------

log "building signet and trustload"
go build -o "$TMP/bin/signet" ./cmd/signet
go build -o "$TMP/bin/trustload" ./bench/trustload

# --- servers -----------------------------------------------------------------

# free_port prints a loopback TCP port nobody listened on a moment ago.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# wait_up URL waits up to 20 s for URL/_notary_server/health and URL/v2/.
wait_up() {
	local url="$1"
	for _ in $(seq 200); do
		if curl -fsS -o /dev/null "$url/_notary_server/health" 2>/dev/null && curl -fsS -o /dev/null "$url/v2/" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# pg_url DB prints PG_DSN with its database replaced by DB.
pg_url() {
	local base="${PG_DSN%%\?*}" query=""
	[[ "$PG_DSN" == *\?* ]] && query="?${PG_DSN#*\?}"
	local hostpart="${base#*://}"
	hostpart="${hostpart%%/*}"
	echo "${base%%://*}://$hostpart/$1$query"
}

declare -A URL SPID
SERVERS=()

start_signet() { # name db-dsn-or-empty
	local name="$1" db="$2" port
	port="$(free_port)"
	local args=(server --addr "127.0.0.1:$port" --data-dir "$TMP/data/$name" --log-level error)
	[[ -n "$db" ]] && args+=(--db "$db")
	SIGNET_SERVER_KEY_PASSPHRASE="$PASSPHRASE" "$TMP/bin/signet" "${args[@]}" >"$OUT/server-$name.log" 2>&1 &
	PIDS+=("$!")
	SPID[$name]="$!"
	URL[$name]="http://127.0.0.1:$port"
	wait_up "${URL[$name]}" || die "$name did not start; see $OUT/server-$name.log"
	SERVERS+=("$name")
	log "$name on ${URL[$name]}"
}

start_notary() { # name storage-json
	local name="$1" storage="$2" port
	port="$(free_port)"
	cat >"$TMP/data/$name.json" <<-EOF
		{"server":{"http_addr":"127.0.0.1:$port"},
		 "trust_service":{"type":"local","hostname":"","port":"","key_algorithm":"ecdsa"},
		 "logging":{"level":"error"},
		 "storage":$storage}
	EOF
	"$TOOLS/notary-server" -config "$TMP/data/$name.json" >"$OUT/server-$name.log" 2>&1 &
	PIDS+=("$!")
	SPID[$name]="$!"
	URL[$name]="http://127.0.0.1:$port"
	wait_up "${URL[$name]}" || die "$name did not start; see $OUT/server-$name.log"
	SERVERS+=("$name")
	log "$name on ${URL[$name]}"
}

start_signet signet ""
start_notary notary-server '{"backend":"memory"}'
PAIRS=("signet notary-server")

if [[ -n "$PG_DSN" ]]; then
	command -v psql >/dev/null || die "psql is needed for the PostgreSQL runs"
	[[ "$PG_DSN" == postgres://* || "$PG_DSN" == postgresql://* ]] || die "BENCH_POSTGRES_DSN must be a postgres:// URL"
	suffix="$(date +%s)_$$"
	for db in signet_bench_$suffix notary_bench_$suffix; do
		psql -q -X "$(pg_url postgres)" -c "CREATE DATABASE $db" >/dev/null
		PG_DBS+=("$db")
	done
	# notary-server does not create its schema: apply its own migrations.
	NOTARY_DIR="$(go env GOMODCACHE)/github.com/theupdateframework/notary@v0.7.0"
	[[ -d "$NOTARY_DIR/migrations/server/postgresql" ]] || go mod download github.com/theupdateframework/notary@v0.7.0 >/dev/null 2>&1 || true
	[[ -d "$NOTARY_DIR/migrations/server/postgresql" ]] || die "notary v0.7.0 migrations not found in $NOTARY_DIR"
	for f in "$NOTARY_DIR"/migrations/server/postgresql/*.up.sql; do
		psql -q -X -v ON_ERROR_STOP=1 "$(pg_url "notary_bench_$suffix")" -f "$f" >/dev/null
	done
	start_signet signet-pg "$(pg_url "signet_bench_$suffix")"
	start_notary notary-server-pg "{\"backend\":\"postgres\",\"db_url\":\"$(pg_url "notary_bench_$suffix")\"}"
	PAIRS+=("signet-pg notary-server-pg")
fi

# --- trustload rounds --------------------------------------------------------

for r in $(seq "$ROUNDS"); do
	order=("${SERVERS[@]}")
	if ((r % 2 == 0)); then # alternate who goes first
		order=()
		for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[$i]}"); done
	fi
	for name in "${order[@]}"; do
		log "round $r/$ROUNDS: $name"
		if ! timeout 600 "$TMP/bin/trustload" -url "${URL[$name]}" -gun-prefix "localhost:5000/bench/r$r/" \
			-repos "$REPOS" -publishes "$PUBLISHES" -gets "$GETS" -concurrency "$CONCURRENCY" -timeout 9m -server-pid "${SPID[$name]}" \
			>>"$OUT/trustload-$name.txt" 2>>"$OUT/trustload-$name.log"; then
			tail -n 5 "$OUT/trustload-$name.log" >&2
			die "trustload against $name failed (round $r); see $OUT/trustload-$name.log and $OUT/server-$name.log"
		fi
	done
done
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (after trustload)" | tee -a "$OUT/env.txt"

# median FILE OP UNIT prints the median of the UNIT values of phase OP in
# FILE.
median() {
	awk -v op="BenchmarkTrustload/op=$2" -v unit="$3" '$1 == op { for (i = 2; i < NF; i++) if ($(i+1) == unit) print $i }' "$1" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}

# table UNIT TITLE prints, for each pair of servers, the median of UNIT
# per phase and the ratio.
table() {
	local unit="$1" a b op x y ratio
	echo
	echo "$2"
	for pair in "${PAIRS[@]}"; do
		read -r a b <<<"$pair"
		echo
		printf '%-15s %14s %18s %28s\n' phase "$a" "$b" "$a/$b"
		for op in init publish get-timestamp get-targets; do
			x="$(median "$OUT/trustload-$a.txt" "$op" "$unit")"
			y="$(median "$OUT/trustload-$b.txt" "$op" "$unit")"
			ratio="$(awk -v x="$x" -v y="$y" 'BEGIN { if (y + 0 > 0) printf "%.2f", x / y; else print "n/a" }')"
			printf '%-15s %14s %18s %28s\n' "$op" "$x" "$y" "$ratio"
		done
	done
}

{
	echo
	echo "trustload: rounds=$ROUNDS repos=$REPOS publishes=$PUBLISHES gets=$GETS concurrency=$CONCURRENCY, $(nproc) CPUs"
	table ops/s "Throughput: median ops/s over the rounds (higher is better)"
	table srv-cpu-ms/op "Server CPU time: median ms per operation over the rounds (lower is better)"
} | tee "$OUT/summary.txt"

if [[ -n "$BENCHSTAT" ]]; then
	for pair in "${PAIRS[@]}"; do
		read -r a b <<<"$pair"
		echo
		echo "benchstat, trustload: $b (base) vs $a"
		"$BENCHSTAT" "$b=$OUT/trustload-$b.txt" "$a=$OUT/trustload-$a.txt" | tee "$OUT/benchstat-trustload-$a.txt"
	done
fi

# Stop the servers before the Go benchmarks, which run their own.
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done

# --- Go benchmarks -----------------------------------------------------------

if [[ "$RUN_GO" == 1 ]]; then
	gotest_env=()
	[[ -n "$PG_DSN" ]] && gotest_env=(SIGNET_TEST_POSTGRES_DSN="$PG_DSN")
	# The publish benchmarks grow the repository by one target per
	# iteration, so ns/op depends on b.N: fix it.
	log "go test -bench 'Publish' -benchtime ${PUBLISH_N}x -count $COUNT ./trust/server/"
	env "${gotest_env[@]}" go test -run '^$' -bench 'Publish' -benchtime "${PUBLISH_N}x" -count "$COUNT" -timeout 20m ./trust/server/ | tee "$OUT/gobench.txt"
	log "go test -bench 'Get' -count $COUNT ./trust/server/"
	env "${gotest_env[@]}" go test -run '^$' -bench 'Get' -count "$COUNT" -timeout 20m ./trust/server/ | tee -a "$OUT/gobench.txt"
	if [[ -n "$BENCHSTAT" ]]; then
		echo
		echo "benchstat, go test -bench:"
		"$BENCHSTAT" "trust/server=$OUT/gobench.txt" | tee "$OUT/benchstat-go.txt"
	fi
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (after go test)" | tee -a "$OUT/env.txt"
fi

log "raw output in ${OUT#"$REPO/"}/"
