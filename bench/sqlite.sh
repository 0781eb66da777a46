#!/usr/bin/env bash
# bench/sqlite.sh: the trust server's Go benchmarks over each SQLite
# driver signet can be built with, in one run, interleaved. See
# bench/README.md, "cgo-free SQLite".
#
#   1. builds the test binary of trust/server once per driver: mattn
#      (-tags sqlite_mattn, github.com/mattn/go-sqlite3, needs cgo and a C
#      compiler), modernc (the default build, modernc.org/sqlite) and ncruces
#      (-tags sqlite_ncruces, github.com/ncruces/go-sqlite3), and `signet`
#      itself per driver, for the binary sizes;
#   2. runs BENCH_ROUNDS rounds; in each, every driver in turn (the order
#      rotating from round to round) runs BenchmarkPublish (-benchtime
#      BENCH_PUBLISH_N x) and then BenchmarkGetTimestamp,
#      BenchmarkGetTimestampUncached and BenchmarkChangeCount (-benchtime
#      BENCH_GET_TIME), -count 1 each, so load from other jobs falls on
#      every driver alike; the load average is logged around each run;
#   3. prints benchstat of the rounds, mattn first (the baseline).
#
# Raw output goes to bench/out/<UTC time>-sqlite/ (git-ignored).
#
# Usage: bash bench/sqlite.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [8]          rounds
#   BENCH_PUBLISH_N [200]     publishes per BenchmarkPublish run
#   BENCH_GET_TIME [2s]       -benchtime of the read benchmarks
#   BENCH_DRIVERS [mattn modernc ncruces]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

ROUNDS="${BENCH_ROUNDS:-8}"
PUBLISH_N="${BENCH_PUBLISH_N:-200}"
GET_TIME="${BENCH_GET_TIME:-2s}"
read -r -a DRIVERS <<<"${BENCH_DRIVERS:-mattn modernc ncruces}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"

log() { printf 'sqlite-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: want a positive integer"
[[ "$PUBLISH_N" =~ ^[1-9][0-9]*$ ]] || die "BENCH_PUBLISH_N=$PUBLISH_N: want a positive integer"
BENCHSTAT="$TOOLS/benchstat"
[[ -x "$BENCHSTAT" ]] || BENCHSTAT="$(command -v benchstat || true)"
[[ -n "$BENCHSTAT" ]] || die "benchstat not found: run scripts/install-tools.sh (make tools) first"

tags() {
	case "$1" in
	mattn) echo sqlite_mattn ;;
	modernc) echo "" ;;
	ncruces) echo sqlite_ncruces ;;
	*) die "unknown driver $1: use mattn, modernc or ncruces" ;;
	esac
}

OUT="$REPO/bench/out/$(date -u +%Y%m%dT%H%M%SZ)-sqlite"
mkdir -p "$OUT"
BIN="$(mktemp -d "${TMPDIR:-/tmp}/signet-sqlite-bench.XXXXXX")"
trap 'rm -rf "$BIN"' EXIT

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
	echo "go: $(go version)"
	echo "kernel: $(uname -sr)"
	echo "cpus: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo 2>/dev/null || true
	echo "rounds: $ROUNDS, publish -benchtime ${PUBLISH_N}x, reads -benchtime $GET_TIME"
} >"$OUT/env.txt"

for d in "${DRIVERS[@]}"; do
	t="$(tags "$d")"
	cgo=0
	[[ "$d" == mattn ]] && cgo=1
	log "building the $d test binary and signet"
	CGO_ENABLED=$cgo go test -c -tags "$t" -o "$BIN/server-$d.test" ./trust/server/
	CGO_ENABLED=$cgo go build -tags "$t" -o "$BIN/signet-$d" ./cmd/signet
	printf '%-8s signet %s bytes (CGO_ENABLED=%s)\n' "$d" "$(stat -c %s "$BIN/signet-$d")" "$cgo" | tee -a "$OUT/sizes.txt" >&2
	: >"$OUT/$d.txt"
done

load() { cut -d' ' -f1-3 /proc/loadavg; }

n=${#DRIVERS[@]}
for round in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		d="${DRIVERS[$(((i + round - 1) % n))]}"
		before="$(load)"
		(
			cd trust/server
			timeout 600 "$BIN/server-$d.test" -test.run '^$' -test.bench '^BenchmarkPublish$' \
				-test.benchtime "${PUBLISH_N}x" -test.count 1 -test.benchmem
			timeout 600 "$BIN/server-$d.test" -test.run '^$' \
				-test.bench '^Benchmark(GetTimestamp|GetTimestampUncached|ChangeCount)$' \
				-test.benchtime "$GET_TIME" -test.count 1 -test.benchmem
		) >>"$OUT/$d.txt" 2>&1 || die "round $round, $d failed: see $OUT/$d.txt"
		echo "round $round $d load $before -> $(load)" | tee -a "$OUT/load.txt" >&2
	done
done

files=()
for d in "${DRIVERS[@]}"; do files+=("$d.txt"); done
(cd "$OUT" && "$BENCHSTAT" "${files[@]}") | tee "$OUT/benchstat.txt"
log "raw output in ${OUT#"$REPO"/}/"
