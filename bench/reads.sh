#!/usr/bin/env bash
# bench/reads.sh: GET throughput of signet's trust server (read cache on,
# SQLite and PostgreSQL) against notary-server v0.7.0 on memory, measured
# in one run. See bench/README.md, "Reads from memory".
#
# It runs bench/run.sh with few publishes and many GETs and without the Go
# benchmarks, so every round is mostly the two GET phases of trustload
# (timestamp.json, targets.json) against each server in turn, the order
# alternating from round to round. Then it prints, per phase, the median
# ops/s and server CPU per request of each server over the rounds, and
# the ratios to notary-server on memory (and on PostgreSQL, when run):
# the ratio of the medians and the median of the per-round ratios.
#
# Usage: bash bench/reads.sh
# Environment (defaults in brackets), passed on to run.sh:
#   BENCH_ROUNDS [5]          rounds
#   BENCH_GETS [10000]        GETs per phase per round
#   BENCH_PUBLISHES [8]       publishes per round (the repositories read)
#   BENCH_REPOS [4], BENCH_CONCURRENCY [8]
#   BENCH_POSTGRES_DSN        default $SIGNET_TEST_POSTGRES_DSN; unset: no
#                             PostgreSQL servers
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BENCH_ROUNDS="${BENCH_ROUNDS:-5}" BENCH_GETS="${BENCH_GETS:-10000}" BENCH_PUBLISHES="${BENCH_PUBLISHES:-8}" BENCH_GO=0

LOG="$(mktemp "${TMPDIR:-/tmp}/signet-reads.XXXXXX")"
trap 'rm -f "$LOG"' EXIT
# Two known flakes start the whole run again, up to three times:
# notary-server v0.7.0 now and then dies of "concurrent map writes" in its
# in-memory ED25519 key store while trustload initialises repositories at
# once (its bug, not the load's), and a port run.sh found free can be
# taken by another process before a server binds it.
for attempt in 1 2 3; do
	if bash "$REPO/bench/run.sh" 2>&1 | tee "$LOG"; then
		break
	fi
	failed="$(grep -o 'bench/out/[0-9TZ]*' "$LOG" | tail -n 1)"
	if [[ $attempt -lt 3 && -n "$failed" ]] && grep -qsE 'concurrent map writes|address already in use' "$REPO/$failed"/server-*.log; then
		echo "reads: a known flake (see $failed/server-*.log); starting again" >&2
		continue
	fi
	exit 1
done
OUT="$REPO/$(sed -n 's/^bench: raw output in \(.*\)\/$/\1/p' "$LOG" | tail -n 1)"
[[ -f "$OUT/env.txt" ]] || { echo "reads: no output folder found in run.sh's log" >&2; exit 1; }

# values FILE OP UNIT prints the UNIT values of phase OP in FILE, one per
# round, in round order.
values() {
	[[ -f "$1" ]] || return 0
	awk -v op="BenchmarkTrustload/op=$2" -v unit="$3" '$1 == op { for (i = 2; i < NF; i++) if ($(i+1) == unit) print $i }' "$1"
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}

# ratios A B OP UNIT prints median(A)/median(B) and the median of the
# per-round ratios A/B.
ratios() {
	local a b x y
	a="$(values "$OUT/trustload-$1.txt" "$3" "$4" | median)"
	b="$(values "$OUT/trustload-$2.txt" "$3" "$4" | median)"
	x="$(awk -v x="$a" -v y="$b" 'BEGIN { if (y + 0 > 0) printf "%.2f", x / y; else print "n/a" }')"
	y="$(paste <(values "$OUT/trustload-$1.txt" "$3" "$4") <(values "$OUT/trustload-$2.txt" "$3" "$4") |
		awk '$2 + 0 > 0 { printf "%.4f\n", $1 / $2 }' | median | awk '$1 == "n/a" { print; next } { printf "%.2f", $1 }')"
	printf '%s %s' "$x" "$y"
}

{
	echo
	echo "Reads: medians over $BENCH_ROUNDS interleaved rounds, $BENCH_GETS GETs per phase, $(nproc) CPUs"
	for op in get-timestamp get-targets; do
		echo
		printf '%-34s %10s %12s\n' "$op" "ops/s" "srv-cpu-ms/op"
		for s in signet signet-pg notary-server notary-server-pg; do
			[[ -f "$OUT/trustload-$s.txt" ]] || continue
			printf '%-34s %10s %12s\n' "$s" "$(values "$OUT/trustload-$s.txt" "$op" ops/s | median)" \
				"$(values "$OUT/trustload-$s.txt" "$op" srv-cpu-ms/op | median)"
		done
		echo
		printf '%-34s %24s %24s\n' "ratio ($op)" "ops/s: medians, paired" "cpu/op: medians, paired"
		for s in signet signet-pg; do
			for base in notary-server notary-server-pg; do
				[[ -f "$OUT/trustload-$s.txt" && -f "$OUT/trustload-$base.txt" ]] || continue
				read -r r1 r2 <<<"$(ratios "$s" "$base" "$op" ops/s)"
				read -r c1 c2 <<<"$(ratios "$s" "$base" "$op" srv-cpu-ms/op)"
				printf '%-34s %24s %24s\n' "$s / $base" "$r1, $r2" "$c1, $c2"
			done
		done
	done
	echo
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (at the end)"
} | tee "$OUT/reads.txt"
