#!/usr/bin/env bash
# bench/sign.sh: time `signet sign` of many tags in one publish against the
# notary v0.7.0 CLI doing the same work (one `addhash` per tag, then one
# `publish`), both against the same `signet server`; then run the Go
# benchmark BenchmarkSign of internal/publish. See bench/README.md
# ("Signing") for what is measured.
#
#   1. builds `signet` and go-containerregistry's `crane`;
#   2. starts, on free loopback ports, one `signet server` (SQLite in a
#      temporary folder) and `crane registry serve` (in memory);
#   3. for each N in BENCH_SIGN_SIZES, prepares BENCH_SIGN_RUNS fresh
#      repositories (GUNs) per case, initialised outside the timing, then
#      times, round by round (alternating the order of signet and notary):
#        signet-digests  `signet sign --file F`, F = N lines IMAGE:TAG sha256:HEX SIZE
#        notary          N x `notary addhash GUN TAG SIZE --sha256 HEX`, then
#                        `notary publish GUN` (one bash script running them)
#        signet-resolve  `signet sign --file F`, F = N lines IMAGE:TAG, each
#                        resolved from the loopback registry (pushed beforehand)
#      the first two sign made-up digests, new in every run; the resolve
#      case's tags all name one small image. After each run the published
#      targets are checked (outside the timing) with `notary list`;
#   4. prints the median wall time per case and N, and the ratio
#      notary / signet-digests;
#   5. runs `go test -bench BenchmarkSign ./internal/publish/` BENCH_COUNT times
#      (as separate -count 1 runs: see the Go benchmark section below).
#
# Raw output goes to bench/out/sign-<UTC time>/ (git-ignored). The servers
# are stopped and temporary data removed on exit. Every step is bounded by a
# timeout. About 1.5 minutes on 2 CPUs (2 with the Go benchmark).
#
# Usage: bash bench/sign.sh
# Environment (defaults in brackets):
#   BENCH_SIGN_SIZES ["1 100 1000"]  numbers of tags signed per run
#   BENCH_SIGN_RUNS [3]              timed runs per case and size
#   BENCH_COUNT [3]                  runs of BenchmarkSign (go test -count 1 each)
#   BENCH_GO [1]                     0 skips the Go benchmark
#   SIGNET_TOOLS [.tools/bin]        where notary (v0.7.0) is
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SIZES="${BENCH_SIGN_SIZES:-1 100 1000}"
RUNS="${BENCH_SIGN_RUNS:-3}"
COUNT="${BENCH_COUNT:-3}"
RUN_GO="${BENCH_GO:-1}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"
NOTARY="$TOOLS/notary"
STEP_TIMEOUT=600 # seconds, any one step
SERVER_PASSPHRASE="signet benchmark server passphrase"
ROOT_PASSPHRASE="bench-root-passphrase"
REPO_PASSPHRASE="bench-repository-passphrase"

log() { printf 'sign-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for n in $SIZES; do
	[[ "$n" =~ ^[1-9][0-9]*$ && "$n" -le 100000 ]] || die "BENCH_SIGN_SIZES: $n is not a number from 1 to 100000"
done
for v in RUNS COUNT; do
	[[ "${!v}" =~ ^[1-9][0-9]?$ ]] || die "$v=${!v}: want a number from 1 to 99"
done
[[ -x "$NOTARY" ]] || die "$NOTARY not found: run scripts/install-tools.sh (make tools) first"
for c in curl timeout awk; do
	command -v "$c" >/dev/null || die "$c is needed"
done

OUT="$REPO/bench/out/sign-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/signet-sign-bench.XXXXXX")"
mkdir -p "$TMP/bin" "$TMP/home" "$TMP/server" "$TMP/signet-trust" "$TMP/notary-trust" "$TMP/work"

# --- cleanup -----------------------------------------------------------------

PIDS=()
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
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- environment -------------------------------------------------------------

# Keep the tools away from the user's ~/.docker, ~/.notary and credentials,
# and never send loopback traffic through a proxy. go keeps its own
# settings and caches, which default to places under $HOME.
GOENV="$(go env GOENV)" GOPATH="$(go env GOPATH)" GOMODCACHE="$(go env GOMODCACHE)" GOCACHE="$(go env GOCACHE)"
export GOENV GOPATH GOMODCACHE GOCACHE
export HOME="$TMP/home" DOCKER_CONFIG="$TMP/home/.docker"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset SIGNET_TRUST_SERVER SIGNET_TRUST_DIR SIGNET_TRUST_USERNAME SIGNET_TRUST_PASSWORD DOCKER_CONTENT_TRUST_SERVER \
	DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE \
	NOTARY_ROOT_PASSPHRASE NOTARY_TARGETS_PASSPHRASE NOTARY_SNAPSHOT_PASSPHRASE NOTARY_DELEGATION_PASSPHRASE
export SIGNET_ROOT_PASSPHRASE="$ROOT_PASSPHRASE" SIGNET_REPOSITORY_PASSPHRASE="$REPO_PASSPHRASE"
NOTARY_ENV=(NOTARY_ROOT_PASSPHRASE="$ROOT_PASSPHRASE" NOTARY_TARGETS_PASSPHRASE="$REPO_PASSPHRASE" NOTARY_SNAPSHOT_PASSPHRASE="$REPO_PASSPHRASE")

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }

{
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
	echo "go:      $(go version)"
	echo "cpus:    $(nproc)"
	echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel:  $(uname -sr)"
	echo "load:    $(loadavg) (at start)"
	echo "params:  sizes=\"$SIZES\" runs=$RUNS go-count=$COUNT"
	echo "notary:  $("$NOTARY" version 2>&1 | awk '/Version:/ { print $2 }')"
} | tee "$OUT/env.txt"

# --- build -------------------------------------------------------------------

log "building signet and crane"
go build -o "$TMP/bin/signet" ./cmd/signet
# crane from the go-containerregistry version signet requires (go.mod).
go build -o "$TMP/bin/crane" github.com/google/go-containerregistry/cmd/crane
SIGNET="$TMP/bin/signet"
CRANE="$TMP/bin/crane"

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

# wait_up URL... waits up to 20 s until every URL answers 2xx.
wait_up() {
	local u ok
	for _ in $(seq 200); do
		ok=1
		for u in "$@"; do
			curl --noproxy '*' -fsS -o /dev/null --max-time 2 "$u" 2>/dev/null || { ok=0; break; }
		done
		((ok)) && return 0
		sleep 0.1
	done
	return 1
}

port="$(free_port)"
TRUST="http://127.0.0.1:$port"
SIGNET_SERVER_KEY_PASSPHRASE="$SERVER_PASSPHRASE" "$SIGNET" server --addr "127.0.0.1:$port" --data-dir "$TMP/server" --log-level error >"$OUT/server.log" 2>&1 &
PIDS+=("$!")
wait_up "$TRUST/_notary_server/health" "$TRUST/v2/" || die "signet server did not start; see $OUT/server.log"
log "signet server on $TRUST"

port="$(free_port)"
REG="127.0.0.1:$port"
"$CRANE" registry serve --address "$REG" >"$OUT/registry.log" 2>&1 &
PIDS+=("$!")
wait_up "http://$REG/v2/" || die "crane registry did not start; see $OUT/registry.log"
log "crane registry on $REG"

# --- helpers -----------------------------------------------------------------

signet_sign() { # args...
	timeout "$STEP_TIMEOUT" "$SIGNET" sign --trust-server "$TRUST" --trust-dir "$TMP/signet-trust" "$@"
}

notary_cmd() { # args...
	env "${NOTARY_ENV[@]}" timeout "$STEP_TIMEOUT" "$NOTARY" -s "$TRUST" -d "$TMP/notary-trust" "$@"
}

# digest_lines IMAGE N CASE-ID RUN-ID prints N lines "IMAGE:tI sha256:HEX SIZE",
# with a digest unique to the tag, case and run. The digests are made up:
# nothing checks them against content.
digest_lines() {
	awk -v img="$1" -v n="$2" -v c="$3" -v r="$4" 'BEGIN {
		for (i = 0; i < n; i++) printf "%s:t%d sha256:5e%06x%06x%050x %d\n", img, i, c, r, i, 1000 + i
	}'
}

# lines_to_notary GUN FILE MARK prints a bash script that stages every line
# of FILE with `notary addhash`, then publishes, noting the time before and
# after the publish in MARK.
lines_to_notary() {
	local gun="$1" file="$2" mark="$3"
	printf 'set -e\n'
	awk -v notary="$NOTARY" -v s="$TRUST" -v d="$TMP/notary-trust" -v gun="$gun" '{
		tag = $1; sub(/.*:/, "", tag); hex = $2; sub(/^sha256:/, "", hex)
		printf "%s -s %s -d %s addhash %s %s %s --sha256 %s >/dev/null\n", notary, s, d, gun, tag, $3, hex
	}' "$file"
	# shellcheck disable=SC2016 # expanded by the generated script
	printf 'echo "$EPOCHREALTIME" >%s\n' "$mark"
	printf '%s -s %s -d %s publish %s\n' "$NOTARY" "$TRUST" "$TMP/notary-trust" "$gun"
	# shellcheck disable=SC2016
	printf 'echo "$EPOCHREALTIME" >>%s\n' "$mark"
}

# check_published GUN N FILE: the trust server holds tags t0..t(N-1) with
# the digests of FILE (IMAGE:TAG sha256:HEX SIZE lines), plus the init tag.
check_published() {
	local gun="$1" n="$2" file="$3" got want
	got="$(notary_cmd list "$gun" | awk '$1 ~ /^t[0-9]+$/ { print $1, $2, $3 }' | sort)"
	want="$(awk '{ tag = $1; sub(/.*:/, "", tag); hex = $2; sub(/^sha256:/, "", hex); print tag, hex, $3 }' "$file" | sort)"
	if [[ "$got" != "$want" ]]; then
		log "$gun: published targets differ from what was signed ($(wc -l <<<"$got") tags published, $n expected)"
		return 1
	fi
}

# timed NAME LOG CMD... runs CMD, output to LOG, and prints its wall time in
# seconds.
timed() {
	local log="$1" t0 t1
	shift
	t0="$EPOCHREALTIME"
	if ! "$@" >"$log" 2>&1; then
		tail -n 5 "$log" >&2
		die "failed: $* (see $log)"
	fi
	t1="$EPOCHREALTIME"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

ZERO="sha256:$(printf '%064d' 0)"
CASES=(signet-digests notary signet-resolve)

# A one-layer image that every tag of the resolve case names.
mkdir -p "$TMP/layer"
echo "signet sign benchmark" >"$TMP/layer/hello.txt"
tar cf "$TMP/layer.tar" -C "$TMP/layer" hello.txt

# prepare N RUN: fresh repositories for one run of every case, initialised
# (one tag signed) outside the timing; the tags of the resolve case pushed.
prepare() {
	local n="$1" r="$2" w="$TMP/work/n$1-r$2" img mt
	mkdir -p "$w"

	# (a) signet, digests given.
	img="$REG/bench/signet-digests-n$n-r$r"
	signet_sign --digest "$ZERO" --size 1 "$img:init" >"$w/signet-digests-init.log" 2>&1 ||
		{ cat "$w/signet-digests-init.log" >&2; die "signet init of $img failed"; }
	digest_lines "$img" "$n" 1 "$r" >"$w/signet-digests.txt"

	# (b) notary: init (root, targets and snapshot keys in its trust dir,
	# timestamp key on the server), then the same init tag.
	img="$REG/bench/notary-n$n-r$r"
	{
		notary_cmd init "$img" -p &&
			notary_cmd addhash "$img" init 1 --sha256 "${ZERO#sha256:}" -p
	} >"$w/notary-init.log" 2>&1 || { cat "$w/notary-init.log" >&2; die "notary init of $img failed"; }
	digest_lines "$img" "$n" 2 "$r" >"$w/notary.txt"
	lines_to_notary "$img" "$w/notary.txt" "$w/notary-publish-times" >"$w/notary.sh"

	# (c) signet, resolving: push one image, tag it N times (one PUT of the
	# manifest per tag, one curl process), sign the init tag.
	img="$REG/bench/signet-resolve-n$n-r$r"
	timeout 120 "$CRANE" append --new_tag "$img:base" -f "$TMP/layer.tar" >"$w/signet-resolve-push.log" 2>&1 ||
		{ cat "$w/signet-resolve-push.log" >&2; die "crane append to $img failed"; }
	timeout 60 "$CRANE" manifest "$img:base" >"$w/manifest.json"
	mt="$(sed -n 's/.*"mediaType":"\([^"]*manifest[^"]*\)".*/\1/p' "$w/manifest.json" | head -n 1)"
	[[ -n "$mt" ]] || mt="application/vnd.docker.distribution.manifest.v2+json"
	timeout 300 curl --noproxy '*' -fsS -X PUT -H "Content-Type: $mt" --data-binary "@$w/manifest.json" \
		"http://$REG/v2/bench/signet-resolve-n$n-r$r/manifests/t[0-$((n - 1))]" >/dev/null ||
		die "tagging $img failed"
	signet_sign --digest "$ZERO" --size 1 "$img:init" >"$w/signet-resolve-init.log" 2>&1 ||
		{ cat "$w/signet-resolve-init.log" >&2; die "signet init of $img failed"; }
	awk -v img="$img" -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "%s:t%d\n", img, i }' >"$w/signet-resolve.txt"
	# What the registry serves, for checking the result.
	local d size
	d="$(timeout 60 "$CRANE" digest "$img:base")"
	size="$(wc -c <"$w/manifest.json")"
	awk -v img="$img" -v n="$n" -v d="$d" -v s="$size" 'BEGIN { for (i = 0; i < n; i++) printf "%s:t%d %s %d\n", img, i, d, s }' >"$w/signet-resolve.expect"
}

# run_case CASE N RUN: one timed run; appends "CASE N RUN SECONDS [PUBLISH]"
# to times.txt.
run_case() {
	local c="$1" n="$2" r="$3" w="$TMP/work/n$2-r$3" s extra="" img
	local logf="$OUT/$c-n$n-r$r.log"
	img="$REG/bench/$c-n$n-r$r"
	case "$c" in
	signet-digests)
		s="$(timed "$logf" signet_sign --file "$w/signet-digests.txt")"
		check_published "$img" "$n" "$w/signet-digests.txt"
		;;
	notary)
		s="$(timed "$logf" env "${NOTARY_ENV[@]}" timeout "$STEP_TIMEOUT" bash "$w/notary.sh")"
		# The publish alone: between the marks before and after it.
		extra="$(awk 'NR == 1 { a = $1 } NR == 2 { b = $1 } END { printf "%.3f", b - a }' "$w/notary-publish-times")"
		check_published "$img" "$n" "$w/notary.txt"
		;;
	signet-resolve)
		s="$(timed "$logf" signet_sign --file "$w/signet-resolve.txt")"
		check_published "$img" "$n" "$w/signet-resolve.expect"
		;;
	esac
	echo "$c $n $r $s $extra" >>"$OUT/times.txt"
	log "n=$n run $r/$RUNS $c: ${s}s${extra:+ (publish ${extra}s)}"
}

# --- runs --------------------------------------------------------------------

: >"$OUT/times.txt"
for n in $SIZES; do
	log "n=$n: preparing $RUNS x ${#CASES[@]} repositories (untimed)"
	for r in $(seq "$RUNS"); do
		prepare "$n" "$r"
	done
	echo "load:    $(loadavg) (n=$n, before the runs)" >>"$OUT/env.txt"
	for r in $(seq "$RUNS"); do
		if ((r % 2)); then
			order=(signet-digests notary signet-resolve)
		else
			order=(signet-resolve notary signet-digests)
		fi
		for c in "${order[@]}"; do
			run_case "$c" "$n" "$r"
		done
	done
	echo "load:    $(loadavg) (n=$n, after the runs)" >>"$OUT/env.txt"
done

# --- summary -----------------------------------------------------------------

# median CASE N [FIELD] prints the median of field FIELD (4: wall time,
# 5: notary's publish) of the runs of CASE with N tags.
median() {
	awk -v c="$1" -v n="$2" -v f="${3:-4}" '$1 == c && $2 == n && NF >= f { print $f }' "$OUT/times.txt" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.3f\n", v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}

all_runs() { # CASE N: the runs' times, comma-separated
	awk -v c="$1" -v n="$2" '$1 == c && $2 == n { printf "%s%s", sep, $4; sep = "," }' "$OUT/times.txt"
}

{
	echo
	echo "signet sign vs notary CLI: median wall time in seconds of $RUNS runs, $(nproc) CPUs, load $(loadavg) at the end"
	echo
	printf '%6s %15s %22s %14s %15s %16s\n' tags signet-digests "notary (publish)" notary/signet signet-resolve resolve/digests
	for n in $SIZES; do
		a="$(median signet-digests "$n")"
		b="$(median notary "$n")"
		bp="$(median notary "$n" 5)"
		c="$(median signet-resolve "$n")"
		printf '%6s %15s %22s %14s %15s %16s\n' "$n" "$a" "$b ($bp)" \
			"$(awk -v x="$b" -v y="$a" 'BEGIN { if (y + 0 > 0) printf "%.1f", x / y; else print "n/a" }')" "$c" \
			"$(awk -v x="$c" -v y="$a" 'BEGIN { if (y + 0 > 0) printf "%.1f", x / y; else print "n/a" }')"
	done
	echo
	echo "all runs (seconds):"
	for n in $SIZES; do
		for c in "${CASES[@]}"; do
			printf '  n=%-5s %-15s %s\n' "$n" "$c" "$(all_runs "$c" "$n")"
		done
	done
} | tee "$OUT/summary.txt"

# Stop the servers before the Go benchmark, which runs its own in process.
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done

# --- Go benchmark ------------------------------------------------------------

# BenchmarkSign starts its servers once and names its repositories per
# sub-benchmark; `go test -count N` calls a sub-benchmark again with a new
# trust dir against the same server and repository, which then fails for
# want of the first call's keys, and go test still says PASS. So: COUNT
# processes of -count 1 (the same samples for benchstat), and any FAIL line
# stops the script.
if [[ "$RUN_GO" == 1 ]]; then
	echo
	log "go test -run '^\$' -bench BenchmarkSign -count 1 ./internal/publish/, $COUNT times"
	: >"$OUT/gobench.txt"
	for _ in $(seq "$COUNT"); do
		go test -run '^$' -bench BenchmarkSign -count 1 -timeout 10m ./internal/publish/ | tee -a "$OUT/gobench.txt"
	done
	if grep -q -e '--- FAIL' -e '^FAIL' "$OUT/gobench.txt"; then
		die "BenchmarkSign failed; see $OUT/gobench.txt"
	fi
	if [[ -x "$TOOLS/benchstat" ]]; then
		echo
		"$TOOLS/benchstat" "$OUT/gobench.txt" | tee "$OUT/benchstat-go.txt"
	fi
	echo "load:    $(loadavg) (after go test)" | tee -a "$OUT/env.txt"
fi

log "raw output in ${OUT#"$REPO/"}/"
