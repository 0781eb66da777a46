#!/usr/bin/env bash
# bench/mirror.sh: time `signet mirror` copying many repositories from the
# original notary-server v0.7.0 into a fresh signet trust server, and how the
# time grows with the number of repositories. See bench/README.md
# ("Mirror") for what is measured.
#
#   1. builds `signet`;
#   2. starts notary-server v0.7.0 (memory storage) on a free loopback port;
#   3. fills it with the largest of BENCH_MIRROR_SIZES repositories of
#      BENCH_MIRROR_TAGS tags each: one `signet sign --file` run, one
#      publish per repository (made-up digests), untimed;
#   4. for each size N, BENCH_MIRROR_RUNS times: starts a fresh
#      `signet server --allow-import` (SQLite in a temporary folder) and
#      times `signet mirror --from NOTARY --to SIGNET --file LIST` of the
#      first N repositories (the "copy" run), then the same command again
#      (the "again" run: everything unchanged). Each run must report N
#      copied (or N unchanged) and 0 failed; the source's request count is
#      read from the summary line. After the copy, one repository's files
#      are compared byte for byte with notary-server's (untimed);
#   5. prints the median wall time per size, per repository, the growth
#      against the smallest size, the source's request rate, and the CPU
#      time per repository of the mirror, notary-server and signet server
#      (from bash's time and /proc/<pid>/stat).
#
# Raw output goes to bench/out/mirror-<UTC time>/ (git-ignored). Servers are
# stopped and temporary data removed on exit. Every step has a timeout.
#
# Usage: bash bench/mirror.sh
# Environment (defaults in brackets):
#   BENCH_MIRROR_SIZES ["20 50 100 200"]  repositories per mirror run
#   BENCH_MIRROR_TAGS [50]                tags per repository
#   BENCH_MIRROR_RUNS [3]                 timed runs per size
#   BENCH_MIRROR_PARALLEL [4]             signet mirror --parallel
#   BENCH_MIRROR_MAX_REQUESTS [8]         signet mirror --max-requests
#   SIGNET_TOOLS [.tools/bin]             where notary-server (v0.7.0) is
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

SIZES="${BENCH_MIRROR_SIZES:-20 50 100 200}"
TAGS="${BENCH_MIRROR_TAGS:-50}"
RUNS="${BENCH_MIRROR_RUNS:-3}"
PARALLEL="${BENCH_MIRROR_PARALLEL:-4}"
MAX_REQUESTS="${BENCH_MIRROR_MAX_REQUESTS:-8}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"
STEP_TIMEOUT=900 # seconds, any one step
SERVER_PASSPHRASE="signet benchmark server passphrase"

log() { printf 'mirror-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

MAX=0
for n in $SIZES; do
	[[ "$n" =~ ^[1-9][0-9]*$ && "$n" -le 10000 ]] || die "BENCH_MIRROR_SIZES: $n is not a number from 1 to 10000"
	((n > MAX)) && MAX=$n
done
for v in TAGS RUNS PARALLEL MAX_REQUESTS; do
	[[ "${!v}" =~ ^[1-9][0-9]{0,3}$ ]] || die "$v=${!v}: want a number from 1 to 9999"
done
[[ -x "$TOOLS/notary-server" ]] || die "$TOOLS/notary-server not found: run scripts/install-tools.sh (make tools) first"
for c in curl timeout awk sort cmp; do
	command -v "$c" >/dev/null || die "$c is needed"
done

OUT="$REPO/bench/out/mirror-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/signet-mirror-bench.XXXXXX")"
mkdir -p "$TMP/bin" "$TMP/home" "$TMP/trust" "$TMP/servers"

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

# stop PID stops one server this script started and waits for it (10 s).
stop() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
}

# --- environment -------------------------------------------------------------

# Keep the tools away from the user's ~/.docker and credentials, and never
# send loopback traffic through a proxy.
GOENV="$(go env GOENV)" GOPATH="$(go env GOPATH)" GOMODCACHE="$(go env GOMODCACHE)" GOCACHE="$(go env GOCACHE)"
export GOENV GOPATH GOMODCACHE GOCACHE
export HOME="$TMP/home" DOCKER_CONFIG="$TMP/home/.docker"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset SIGNET_TRUST_SERVER SIGNET_TRUST_USERNAME SIGNET_TRUST_PASSWORD DOCKER_CONTENT_TRUST_SERVER \
	SIGNET_MIRROR_FROM_USERNAME SIGNET_MIRROR_FROM_PASSWORD
export SIGNET_TRUST_DIR="$TMP/trust"
export SIGNET_ROOT_PASSPHRASE="bench-root-passphrase" SIGNET_REPOSITORY_PASSPHRASE="bench-repository-passphrase"

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }

{
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)$([[ -z "$(git status --porcelain 2>/dev/null)" ]] || echo ' (dirty tree)')"
	echo "go:      $(go version)"
	echo "cpus:    $(nproc)"
	echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel:  $(uname -sr)"
	echo "load:    $(loadavg) (at start)"
	echo "params:  sizes=\"$SIZES\" tags=$TAGS runs=$RUNS parallel=$PARALLEL max-requests=$MAX_REQUESTS"
	echo "notary-server: $("$TOOLS/notary-server" -version 2>&1 | head -n 1)"
} | tee "$OUT/env.txt"

# --- build -------------------------------------------------------------------

log "building signet"
go build -tags nopcsc -o "$TMP/bin/signet" ./cmd/signet
SIGNET="$TMP/bin/signet"

# --- servers -----------------------------------------------------------------

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

# wait_up URL waits up to 20 s for URL/_notary_server/health.
wait_up() {
	for _ in $(seq 200); do
		curl -fsS -o /dev/null "$1/_notary_server/health" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

NOTARY_PORT="$(free_port)"
NOTARY_URL="http://127.0.0.1:$NOTARY_PORT"
cat >"$TMP/notary-server.json" <<-EOF
	{"server":{"http_addr":"127.0.0.1:$NOTARY_PORT"},
	 "trust_service":{"type":"local","hostname":"","port":"","key_algorithm":"ecdsa"},
	 "logging":{"level":"error"},
	 "storage":{"backend":"memory"}}
EOF
"$TOOLS/notary-server" -config "$TMP/notary-server.json" >"$OUT/notary-server.log" 2>&1 &
PIDS+=("$!")
NOTARY_PID="$!"
wait_up "$NOTARY_URL" || die "notary-server did not start; see $OUT/notary-server.log"
log "notary-server on $NOTARY_URL"

# start_signet starts a fresh signet server taking imports; sets SIGNET_URL
# and SIGNET_PID. A port taken between free_port and the server's listen
# (client connections use the same range) is retried with another.
start_signet() {
	local port dir
	for _ in 1 2 3 4 5; do
		port="$(free_port)"
		dir="$(mktemp -d "$TMP/servers/s.XXXXXX")"
		SIGNET_SERVER_KEY_PASSPHRASE="$SERVER_PASSPHRASE" "$SIGNET" server --allow-import --addr "127.0.0.1:$port" \
			--data-dir "$dir" --log-level error >>"$OUT/signet-server.log" 2>&1 &
		PIDS+=("$!")
		SIGNET_PID="$!"
		SIGNET_URL="http://127.0.0.1:$port"
		wait_up "$SIGNET_URL" && return 0
		kill -0 "$SIGNET_PID" 2>/dev/null && break
		log "signet server on port $port exited; trying another port"
	done
	die "signet server did not start; see $OUT/signet-server.log"
}

# --- populate notary-server ----------------------------------------------------

guns() { # N: the first N repository names
	seq -f "localhost:5000/bench/repo%04g" 0 $(($1 - 1))
}

log "filling notary-server: $MAX repositories of $TAGS tags"
guns "$MAX" | awk -v tags="$TAGS" '{
	for (t = 1; t <= tags; t++) {
		hex = sprintf("%08x%08x", NR, t); while (length(hex) < 64) hex = hex "0"
		printf "%s:tag%d sha256:%s %d\n", $1, t, hex, 1000 + t
	}
}' >"$TMP/sign.txt"
start=$(date +%s.%N)
timeout "$STEP_TIMEOUT" "$SIGNET" sign --trust-server "$NOTARY_URL" --file "$TMP/sign.txt" >"$OUT/populate.log" 2>&1 ||
	{ tail -n 5 "$OUT/populate.log" >&2; die "signet sign against notary-server failed; see $OUT/populate.log"; }
log "filled in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"

# --- mirror runs ---------------------------------------------------------------

# cpu_ms PID prints the CPU time (user + system) PID has used, in ms.
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%d\n", ($12 + $13) * 1000 / hz }' "/proc/$1/stat"
}

# one_run KIND N RUN: time a mirror of the first N repositories into
# $SIGNET_URL; append "KIND N RUN seconds requests mirror-cpu-ms
# notary-cpu-ms signet-cpu-ms" to results.txt.
one_run() {
	local kind="$1" n="$2" r="$3" out="$OUT/mirror-$1-$2-$3.txt" start end want ncpu scpu mcpu
	guns "$n" >"$TMP/list.txt"
	ncpu=$(cpu_ms "$NOTARY_PID") scpu=$(cpu_ms "$SIGNET_PID")
	start=$(date +%s.%N)
	# bash's time keyword gives the mirror process's own CPU time.
	{ TIMEFORMAT='%U %S'; time timeout "$STEP_TIMEOUT" "$SIGNET" mirror --from "$NOTARY_URL" --to "$SIGNET_URL" --file "$TMP/list.txt" \
		--parallel "$PARALLEL" --max-requests "$MAX_REQUESTS" >"$out" 2>"$out.stderr"; } 2>"$out.time" ||
		{ tail -n 5 "$out" "$out.stderr" >&2; die "signet mirror ($kind, $n repositories) failed; see $out"; }
	end=$(date +%s.%N)
	mcpu=$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$out.time")
	ncpu=$(($(cpu_ms "$NOTARY_PID") - ncpu)) scpu=$(($(cpu_ms "$SIGNET_PID") - scpu))
	if [[ "$kind" == copy ]]; then want="$n repositories: $n copied, 0 unchanged, 0 failed"; else want="$n repositories: 0 copied, $n unchanged, 0 failed"; fi
	grep -q "^$want" "$out" || die "signet mirror ($kind, $n): the summary does not say \"$want\"; see $out"
	awk -v k="$kind" -v n="$n" -v r="$r" -v s="$start" -v e="$end" -v m="$mcpu" -v nc="$ncpu" -v sc="$scpu" \
		'/ requests to the source / { for (i = 1; i <= NF; i++) if ($(i+1) == "requests") q = $i } END { printf "%s %d %d %.3f %d %d %d %d\n", k, n, r, e - s, q, m, nc, sc }' \
		"$out" >>"$OUT/results.txt"
}

: >"$OUT/results.txt"
for n in $SIZES; do
	for r in $(seq "$RUNS"); do
		start_signet
		log "size $n, run $r/$RUNS: copy into $SIGNET_URL"
		one_run copy "$n" "$r"
		# Byte for byte: the last repository's files (untimed).
		g="$(guns "$n" | tail -n 1)"
		for f in 1.root.json root.json timestamp.json snapshot.json targets.json; do
			curl -fsS "$NOTARY_URL/v2/$g/_trust/tuf/$f" -o "$TMP/a.json" && curl -fsS "$SIGNET_URL/v2/$g/_trust/tuf/$f" -o "$TMP/b.json" &&
				cmp -s "$TMP/a.json" "$TMP/b.json" || die "$f of $g differs between notary-server and signet"
		done
		log "size $n, run $r/$RUNS: again (unchanged)"
		one_run again "$n" "$r"
		stop "$SIGNET_PID"
	done
done
echo "load:    $(loadavg) (at the end)" | tee -a "$OUT/env.txt"

# --- summary -------------------------------------------------------------------

{
	echo
	echo "signet mirror from notary-server v0.7.0 (memory) into a fresh signet server (SQLite);"
	echo "$TAGS tags per repository, --parallel $PARALLEL --max-requests $MAX_REQUESTS, $(nproc) CPUs; medians of $RUNS runs"
	echo
	printf '%-6s %6s %8s %8s %7s %9s %7s %23s\n' run repos wall-s ms/repo growth req/repo req/s "CPU ms/repo: mirror notary signet"
	for kind in copy again; do
		base=""
		for n in $SIZES; do
			read -r wall req m nc sc < <(awk -v k="$kind" -v n="$n" '$1 == k && $2 == n { print $4, $5, $6, $7, $8 }' "$OUT/results.txt" |
				sort -g | awk '{ w[NR] = $1; q[NR] = $2; m[NR] = $3; nc[NR] = $4; sc[NR] = $5 } END { i = int((NR + 1) / 2); print w[i], q[i], m[i], nc[i], sc[i] }')
			per=$(awk -v w="$wall" -v n="$n" 'BEGIN { printf "%.1f", 1000 * w / n }')
			[[ -z "$base" ]] && base="$per"
			printf '%-6s %6d %8.2f %8s %7s %9s %7s %10s %6s %6s\n' "$kind" "$n" "$wall" "$per" \
				"$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.2f", p / b }')" \
				"$(awk -v q="$req" -v n="$n" 'BEGIN { printf "%.1f", q / n }')" \
				"$(awk -v q="$req" -v w="$wall" 'BEGIN { printf "%.0f", q / w }')" \
				"$(awk -v c="$m" -v n="$n" 'BEGIN { printf "%.1f", c / n }')" \
				"$(awk -v c="$nc" -v n="$n" 'BEGIN { printf "%.1f", c / n }')" \
				"$(awk -v c="$sc" -v n="$n" 'BEGIN { printf "%.1f", c / n }')"
		done
	done
	echo
	echo "growth: ms per repository relative to the smallest size (1.00 = linear in the number of repositories)"
} | tee "$OUT/summary.txt"
