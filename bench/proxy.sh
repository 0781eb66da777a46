#!/usr/bin/env bash
# bench/proxy.sh: what signet's verifying proxy costs a pull, against pulling
# from the registry directly and through distribution's pull-through cache.
# See the "Proxy" section of bench/README.md.
#
#   1. builds `signet` and bench/proxyload, and distribution's `registry`
#      (BENCH_DIST_VERSION, in a temporary module; or BENCH_DIST_REGISTRY);
#   2. starts on loopback: `crane registry serve` (the upstream, in memory),
#      `signet server` (SQLite), `signet proxy --tofu` in front of the
#      upstream, and distribution's registry as a pull-through cache of the
#      same upstream (filesystem storage in a temporary folder);
#   3. pushes a small image and one with a BENCH_BLOB_MIB random layer with
#      crane, signs both with `signet sign`, and warms both proxies (one pull
#      of each);
#   4. BENCH_ROUNDS times, interleaved and alternating the order of the
#      three targets (direct, signet, distribution), runs bench/proxyload:
#      manifest GET by tag (BENCH_MANIFEST_N requests, one at a time, on one
#      keep-alive connection), small blob GETs and large blob GETs (the
#      client hashes and checks every blob), recording the CPU time and the
#      peak RSS of the serving process;
#   5. prints the medians, the ratios to direct and the targets (manifest by
#      tag within 1.5x of direct, blobs at 0.9x of direct or better);
#   6. runs the Go benchmarks of registry/proxy (-count BENCH_COUNT).
#
# Raw output goes to bench/out/proxy-<UTC time>/ (git-ignored). Everything is
# stopped and temporary data removed on exit. Every wait and run is bounded.
#
# Usage: bash bench/proxy.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]          rounds over the three targets
#   BENCH_MANIFEST_N [500]    manifest GETs per measurement
#   BENCH_BLOB_MIB [64]       size of the large layer, MiB
#   BENCH_BLOB_N [5]          large blob GETs per measurement
#   BENCH_SMALL_N [200]       small blob GETs per measurement
#   BENCH_COUNT [5]           go test -count of the Go benchmarks
#   BENCH_GO [1]              0 skips the Go benchmarks
#   BENCH_DIST_VERSION [v3.1.2]  distribution/distribution/v3 version to build
#   BENCH_DIST_REGISTRY       a distribution `registry` binary to use instead
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

ROUNDS="${BENCH_ROUNDS:-5}"
MANIFEST_N="${BENCH_MANIFEST_N:-500}"
BLOB_MIB="${BENCH_BLOB_MIB:-64}"
BLOB_N="${BENCH_BLOB_N:-5}"
SMALL_N="${BENCH_SMALL_N:-200}"
COUNT="${BENCH_COUNT:-5}"
RUN_GO="${BENCH_GO:-1}"
DIST_VERSION="${BENCH_DIST_VERSION:-v3.1.2}"
DIST_BIN="${BENCH_DIST_REGISTRY:-}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"
CRANE="$TOOLS/crane"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in ROUNDS MANIFEST_N BLOB_MIB BLOB_N SMALL_N COUNT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v=${!v}: want a positive integer"
done
[[ -x "$CRANE" ]] || die "$CRANE not found: run scripts/install-tools.sh (make tools) first"
command -v curl >/dev/null || die "curl is needed to wait for the servers"
BENCHSTAT=""
[[ -x "$TOOLS/benchstat" ]] && BENCHSTAT="$TOOLS/benchstat"

OUT="$REPO/bench/out/proxy-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/signet-proxy-bench.XXXXXX")"
mkdir -p "$TMP/bin" "$TMP/trust" "$TMP/trustdir" "$TMP/dist" "$TMP/img"

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

{
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
	echo "go:      $(go version)"
	echo "cpus:    $(nproc)"
	echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
	echo "kernel:  $(uname -sr)"
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (at start)"
	echo "params:  rounds=$ROUNDS manifest_n=$MANIFEST_N blob_mib=$BLOB_MIB blob_n=$BLOB_N small_n=$SMALL_N"
	echo "crane:   $("$CRANE" version 2>&1 | head -n 1)"
} | tee "$OUT/env.txt"

# --- build -------------------------------------------------------------------

log "building signet and proxyload"
go build -o "$TMP/bin/signet" ./cmd/signet
go build -o "$TMP/bin/proxyload" ./bench/proxyload
if [[ -z "$DIST_BIN" ]]; then
	log "building distribution $DIST_VERSION cmd/registry (in a temporary module)"
	mkdir -p "$TMP/distbuild"
	(
		cd "$TMP/distbuild"
		printf 'module distbuild\n\ngo 1.26\n' >go.mod
		timeout 900 go get "github.com/distribution/distribution/v3/cmd/registry@$DIST_VERSION" >"$OUT/distbuild.log" 2>&1
		timeout 900 go build -o "$TMP/bin/registry" github.com/distribution/distribution/v3/cmd/registry >>"$OUT/distbuild.log" 2>&1
	) || die "building distribution failed; see $OUT/distbuild.log"
	DIST_BIN="$TMP/bin/registry"
fi
echo "distribution: $("$DIST_BIN" --version 2>&1 | head -n 1)" | tee -a "$OUT/env.txt"

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

# wait_up URL waits up to 20 s for URL to answer 2xx.
wait_up() {
	for _ in $(seq 200); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

declare -A URL SPID

UP_PORT="$(free_port)"
"$CRANE" registry serve --address "127.0.0.1:$UP_PORT" >"$OUT/upstream.log" 2>&1 &
PIDS+=("$!")
SPID[direct]="$!"
URL[direct]="http://127.0.0.1:$UP_PORT"
wait_up "${URL[direct]}/v2/" || die "crane registry serve did not start; see $OUT/upstream.log"
log "upstream (crane registry serve, in memory) on ${URL[direct]}"

TRUST_PORT="$(free_port)"
TRUST="http://127.0.0.1:$TRUST_PORT"
SIGNET_SERVER_KEY_PASSPHRASE="signet proxy benchmark passphrase" \
	"$TMP/bin/signet" server --addr "127.0.0.1:$TRUST_PORT" --data-dir "$TMP/trust" --log-level error >"$OUT/trust-server.log" 2>&1 &
PIDS+=("$!")
wait_up "$TRUST/_notary_server/health" || die "signet server did not start; see $OUT/trust-server.log"
log "trust server on $TRUST"

# --- images --------------------------------------------------------------------

UPHOST="127.0.0.1:$UP_PORT"
log "pushing bench/small:v1 (4 KiB layer) and bench/big:v1 (${BLOB_MIB} MiB random layer)"
mkdir -p "$TMP/img/small" "$TMP/img/big"
head -c 4096 /dev/urandom >"$TMP/img/small/file"
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$TMP/img/big/file"
tar -C "$TMP/img/small" -cf "$TMP/img/small.tar" file
tar -C "$TMP/img/big" -cf "$TMP/img/big.tar" file
timeout 300 "$CRANE" append --insecure -f "$TMP/img/small.tar" -t "$UPHOST/bench/small:v1" >>"$OUT/push.log" 2>&1 || die "crane append failed; see $OUT/push.log"
timeout 300 "$CRANE" append --insecure -f "$TMP/img/big.tar" -t "$UPHOST/bench/big:v1" >>"$OUT/push.log" 2>&1 || die "crane append failed; see $OUT/push.log"
rm -rf "$TMP/img"

# layer REF FIELD prints the digest or the size of the image's (only) layer.
layer() {
	"$CRANE" manifest --insecure "$1" | tr -d ' \n' | sed -e 's/.*"layers":\[{//' -e 's/}.*//' | tr ',' '\n' |
		sed -n "s/^\"$2\":\"*\([^\"]*\)\"*\$/\1/p"
}
SMALL_DIGEST="$("$CRANE" digest --insecure "$UPHOST/bench/small:v1")"
BIG_DIGEST="$("$CRANE" digest --insecure "$UPHOST/bench/big:v1")"
SMALL_LAYER="$(layer "$UPHOST/bench/small:v1" digest)"
SMALL_SIZE="$(layer "$UPHOST/bench/small:v1" size)"
BIG_LAYER="$(layer "$UPHOST/bench/big:v1" digest)"
BIG_SIZE="$(layer "$UPHOST/bench/big:v1" size)"
[[ "$SMALL_LAYER" == sha256:* && "$BIG_LAYER" == sha256:* ]] || die "could not read the layer digests"
{
	echo "small:   bench/small:v1 $SMALL_DIGEST, layer $SMALL_LAYER ($SMALL_SIZE bytes)"
	echo "big:     bench/big:v1 $BIG_DIGEST, layer $BIG_LAYER ($BIG_SIZE bytes)"
} | tee -a "$OUT/env.txt"

log "signing both tags"
SIGNET_ROOT_PASSPHRASE="root passphrase" SIGNET_REPOSITORY_PASSPHRASE="repo passphrase" \
	timeout 300 "$TMP/bin/signet" sign --trust-server "$TRUST" --trust-dir "$TMP/trustdir" \
	"$UPHOST/bench/small:v1" "$UPHOST/bench/big:v1" >"$OUT/sign.log" 2>&1 || die "signet sign failed; see $OUT/sign.log"

# --- proxies -----------------------------------------------------------------

# signet proxy at the default log level: the audit log (one line per
# decision) is on, as in production; it goes to a file.
SP_PORT="$(free_port)"
"$TMP/bin/signet" proxy --addr "127.0.0.1:$SP_PORT" --upstream "${URL[direct]}" --trust-server "$TRUST" --tofu \
	>"$OUT/signet-proxy.log" 2>&1 &
PIDS+=("$!")
SPID[signet]="$!"
URL[signet]="http://127.0.0.1:$SP_PORT"
wait_up "${URL[signet]}/healthz" || die "signet proxy did not start; see $OUT/signet-proxy.log"
log "signet proxy on ${URL[signet]}"

# distribution as a pull-through cache, with its default logging (info and
# the access log) going to a file.
DIST_PORT="$(free_port)"
cat >"$TMP/dist.yml" <<-EOF
	version: 0.1
	log:
	  level: info
	storage:
	  filesystem:
	    rootdirectory: $TMP/dist
	  cache:
	    blobdescriptor: inmemory
	  delete:
	    enabled: false
	http:
	  addr: 127.0.0.1:$DIST_PORT
	proxy:
	  remoteurl: ${URL[direct]}
	health:
	  storagedriver:
	    enabled: false
EOF
cp "$TMP/dist.yml" "$OUT/distribution.yml"
OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none "$DIST_BIN" serve "$TMP/dist.yml" >"$OUT/distribution.log" 2>&1 &
PIDS+=("$!")
SPID[distribution]="$!"
URL[distribution]="http://127.0.0.1:$DIST_PORT"
wait_up "${URL[distribution]}/v2/" || die "distribution did not start; see $OUT/distribution.log"
log "distribution pull-through cache on ${URL[distribution]}"

TARGETS=(direct signet distribution)

# load TARGET OP LABEL REPO REF WANT N [PID]
load() {
	local t="$1" op="$2" label="$3" repo="$4" ref="$5" want="$6" n="$7" pid="${8:-0}"
	timeout 600 "$TMP/bin/proxyload" -url "${URL[$t]}" -target "$t" -op "$op" -label "$label" \
		-repo "$repo" -ref "$ref" -want "$want" -n "$n" -pid "$pid" -timeout 9m \
		>>"$OUT/proxyload.txt" 2>>"$OUT/proxyload.log" ||
		die "proxyload $op against $t failed; see $OUT/proxyload.log"
}

# Warm the proxies: trust data, verified manifests, distribution's storage.
log "warming the proxies"
for t in signet distribution; do
	for img in "bench/small v1 $SMALL_DIGEST $SMALL_LAYER" "bench/big v1 $BIG_DIGEST $BIG_LAYER"; do
		read -r repo tag dg ly <<<"$img"
		timeout 600 "$TMP/bin/proxyload" -url "${URL[$t]}" -target "$t" -op manifest -repo "$repo" -ref "$tag" -want "$dg" -n 1 -warm 0 >/dev/null 2>>"$OUT/proxyload.log" ||
			die "warm-up pull of $repo:$tag through $t failed; see $OUT/proxyload.log"
		timeout 600 "$TMP/bin/proxyload" -url "${URL[$t]}" -target "$t" -op blob -repo "$repo" -ref "$ly" -n 1 -warm 0 >/dev/null 2>>"$OUT/proxyload.log" ||
			die "warm-up pull of $repo@$ly through $t failed; see $OUT/proxyload.log"
	done
done
sleep 1 # distribution finishes writing its cached copy after the first GET

# --- rounds ------------------------------------------------------------------

for r in $(seq "$ROUNDS"); do
	order=("${TARGETS[@]}")
	if ((r % 2 == 0)); then order=(distribution signet direct); fi
	for t in "${order[@]}"; do
		log "round $r/$ROUNDS: $t"
		load "$t" manifest manifest bench/small v1 "$SMALL_DIGEST" "$MANIFEST_N" "${SPID[$t]}"
		load "$t" blob blob-small bench/small "$SMALL_LAYER" "" "$SMALL_N" "${SPID[$t]}"
		load "$t" blob "blob-${BLOB_MIB}MiB" bench/big "$BIG_LAYER" "" "$BLOB_N" "${SPID[$t]}"
	done
done
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (after the rounds)" | tee -a "$OUT/env.txt"

# --- summary -----------------------------------------------------------------

# median OP TARGET UNIT prints the median of UNIT for OP and TARGET.
median() {
	awk -v name="BenchmarkProxy/op=$1/target=$2" -v unit="$3" '$1 == name { for (i = 3; i < NF; i++) if ($(i+1) == unit) print $i }' "$OUT/proxyload.txt" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y + 0 > 0 && x + 0 > 0) printf "%.2f", x / y; else print "n/a" }'; }
# verdict RATIO OP LIMIT: "met" if RATIO OP LIMIT holds (OP is <= or >=).
verdict() { awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN { if (r == "n/a") print "n/a"; else if ((op == "<=" && r + 0 <= l + 0) || (op == ">=" && r + 0 >= l + 0)) print "met"; else print "MISSED" }'; }

BIG="blob-${BLOB_MIB}MiB"
us() { awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else printf "%.1f", x / 1000 }'; }
# row LABEL D S X TARGET-TEXT prints one line of the table.
row() { printf '%-30s %11s %11s %13s %14s %16s  %s\n' "$@"; }
{
	echo
	echo "signet proxy vs direct vs distribution pull-through cache: medians of $ROUNDS rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	row measure direct signet distribution signet/direct distrib./direct "target (signet)"
	for unit in ns/op p50-us p99-us; do
		d="$(median manifest direct "$unit")"; s="$(median manifest signet "$unit")"; x="$(median manifest distribution "$unit")"
		rs="$(ratio "$s" "$d")"; tgt=""; label="manifest by tag, ${unit%-us} us"
		if [[ "$unit" == ns/op ]]; then
			tgt="<= 1.5x: $(verdict "$rs" "<=" 1.5)"; label="manifest by tag, mean us"
			d="$(us "$d")"; s="$(us "$s")"; x="$(us "$x")"
		fi
		row "$label" "$d" "$s" "$x" "$rs" "$(ratio "$x" "$d")" "$tgt"
	done
	d="$(median blob-small direct ns/op)"; s="$(median blob-small signet ns/op)"; x="$(median blob-small distribution ns/op)"
	row "blob ${SMALL_SIZE} B, mean us" "$(us "$d")" "$(us "$s")" "$(us "$x")" "$(ratio "$s" "$d")" "$(ratio "$x" "$d")" ""
	d="$(median "$BIG" direct MB/s)"; s="$(median "$BIG" signet MB/s)"; x="$(median "$BIG" distribution MB/s)"
	rs="$(ratio "$s" "$d")"
	row "blob ${BLOB_MIB} MiB, MB/s" "$d" "$s" "$x" "$rs" "$(ratio "$x" "$d")" ">= 0.9x: $(verdict "$rs" ">=" 0.9)"
	echo "(latency rows: lower is better, ratio <= 1.5 meets the target; MB/s: higher is better, ratio >= 0.9 meets it)"
	echo
	echo "Peak RSS (VmHWM, MiB) of the serving process during the blob GETs (median over rounds):"
	printf '%-14s %12s %12s\n' process blob-small "$BIG"
	for t in signet distribution direct; do
		printf '%-14s %12s %12s\n' "$t" "$(median blob-small "$t" peak-rss-MiB)" "$(median "$BIG" "$t" peak-rss-MiB)"
	done
	echo "(direct is crane's in-memory registry: its RSS holds every pushed blob)"
	echo
	echo "CPU time of the serving process per request, ms (median over rounds; 10 ms ticks; a proxy's upstream is not included):"
	printf '%-14s %12s %12s %12s\n' process manifest blob-small "$BIG"
	for t in direct signet distribution; do
		printf '%-14s %12s %12s %12s\n' "$t" "$(median manifest "$t" srv-cpu-ms/op)" "$(median blob-small "$t" srv-cpu-ms/op)" "$(median "$BIG" "$t" srv-cpu-ms/op)"
	done
} | tee "$OUT/summary.txt"

if [[ -n "$BENCHSTAT" ]]; then
	echo
	"$BENCHSTAT" -col /target "$OUT/proxyload.txt" | tee "$OUT/benchstat-proxyload.txt"
fi

# Stop the servers before the Go benchmarks, which run their own.
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done

# --- Go benchmarks -----------------------------------------------------------

if [[ "$RUN_GO" == 1 ]]; then
	log "go test -bench . -count $COUNT ./registry/proxy/"
	go test -run '^$' -bench . -count "$COUNT" -timeout 20m ./registry/proxy/ | tee "$OUT/gobench.txt"
	# Ratios proxy/direct of the medians, per benchmark.
	{
		echo
		echo "Go benchmarks (in process), medians of $COUNT: proxy/direct"
		awk '$1 ~ /^Benchmark.*\/(direct|proxy)(-[0-9]+)?$/ {
				name = $1; sub(/-[0-9]+$/, "", name); k = name; sub(/\/(direct|proxy)$/, "", k); side = (name ~ /\/proxy$/) ? "proxy" : "direct"
				for (i = 3; i < NF; i++) if ($(i+1) == "ns/op") print k, side, $i
			}' "$OUT/gobench.txt" | sort -k1,1 -k2,2 -k3,3g |
			awk '{ key = $1 " " $2; v[key, ++n[key]] = $3; names[$1] = 1 }
				function med(key,   c) { c = n[key]; if (c == 0) return 0; return (c % 2) ? v[key, (c+1)/2] : (v[key, c/2] + v[key, c/2+1]) / 2 }
				END { for (k in names) { d = med(k " direct"); p = med(k " proxy"); printf "%-28s direct %12.0f ns/op  proxy %12.0f ns/op  ratio %.2f\n", k, d, p, (d > 0 ? p / d : 0) } }' | sort
	} | tee -a "$OUT/summary.txt"
	echo "load:    $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (after go test)" | tee -a "$OUT/env.txt"
fi

log "raw output in ${OUT#"$REPO/"}/"
