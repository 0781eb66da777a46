#!/usr/bin/env bash
# bench/proxy.sh: what signet's verifying proxy, with its blob cache, costs
# a pull, against pulling from the registry directly and through
# distribution's pull-through cache. See the "Proxy" section of
# bench/README.md.
#
#   1. builds `signet` and bench/proxyload, and distribution's `registry`
#      (BENCH_DIST_VERSION, in a temporary module; or BENCH_DIST_REGISTRY);
#   2. starts on loopback: `crane registry serve` (the upstream, in memory;
#      its log lists every request, which counts upstream fetches),
#      `signet server` (SQLite), `signet proxy --tofu` in front of the
#      upstream (blob cache in a temporary folder), and distribution's
#      registry as a pull-through cache of the same upstream (filesystem
#      storage in a temporary folder);
#   3. pushes with crane and signs with `signet sign`: a small image (4 KiB
#      layer), one with a BENCH_BLOB_MIB random layer, one with a
#      BENCH_HUGE_MIB layer, and BENCH_EVICT_N images of BENCH_EVICT_MIB;
#      warms both proxies (one pull of the small and the big image);
#   4. BENCH_ROUNDS times, interleaved and alternating the order of the
#      three targets (direct, signet, distribution), runs bench/proxyload:
#      - warm: manifest GET by tag (BENCH_MANIFEST_N, one at a time on one
#        keep-alive connection), small blob GETs, big blob GETs;
#      - cold: one GET of the big blob from a proxy just started on an
#        empty cache (restarted for each measure);
#      - concurrent cold: BENCH_CONC clients at once GET the big blob from
#        a proxy just started on an empty cache; the upstream's log counts
#        the GETs it saw for the blob;
#      - hits under load: BENCH_HITS_N GETs of the small blob from
#        BENCH_HITS_C clients at once (warm), latency p50 and p99;
#      the client hashes and checks every blob; the CPU time and peak RSS
#      of the serving process are recorded;
#   5. once: the peak RSS of each proxy during a cold and then a warm GET
#      of the BENCH_HUGE_MIB blob; and signet's evictions with a cache
#      bound of half the BENCH_EVICT_N images, pulled in turn
#      BENCH_EVICT_PASSES times;
#   6. prints the medians, the ratios to direct and the targets;
#   7. runs the Go benchmarks of registry/proxy (-count BENCH_COUNT).
#
# Raw output goes to bench/out/proxy-<UTC time>/ (git-ignored). Everything is
# stopped and temporary data removed on exit. Every wait and run is bounded.
#
# Usage: bash bench/proxy.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]          rounds over the three targets
#   BENCH_MANIFEST_N [500]    manifest GETs per measurement
#   BENCH_BLOB_MIB [64]       size of the big layer, MiB
#   BENCH_BLOB_N [5]          warm big blob GETs per measurement
#   BENCH_SMALL_N [200]       small blob GETs per measurement
#   BENCH_CONC [100]          clients of the concurrent cold pull
#   BENCH_HITS_C [200]        clients of the hits-under-load measure
#   BENCH_HITS_N [10000]      small blob GETs of the hits-under-load measure
#   BENCH_HUGE_MIB [1024]     size of the layer of the RSS measure, MiB (0: skip)
#   BENCH_EVICT_N [8]         images of the eviction measure (0: skip)
#   BENCH_EVICT_MIB [16]      size of their layers, MiB
#   BENCH_EVICT_PASSES [3]    passes over them
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
CONC="${BENCH_CONC:-100}"
HITS_C="${BENCH_HITS_C:-200}"
HITS_N="${BENCH_HITS_N:-10000}"
HUGE_MIB="${BENCH_HUGE_MIB:-1024}"
EVICT_N="${BENCH_EVICT_N:-8}"
EVICT_MIB="${BENCH_EVICT_MIB:-16}"
EVICT_PASSES="${BENCH_EVICT_PASSES:-3}"
COUNT="${BENCH_COUNT:-5}"
RUN_GO="${BENCH_GO:-1}"
DIST_VERSION="${BENCH_DIST_VERSION:-v3.1.2}"
DIST_BIN="${BENCH_DIST_REGISTRY:-}"
TOOLS="${SIGNET_TOOLS:-$REPO/.tools/bin}"
CRANE="$TOOLS/crane"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for v in ROUNDS MANIFEST_N BLOB_MIB BLOB_N SMALL_N CONC HITS_C HITS_N EVICT_MIB EVICT_PASSES COUNT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v=${!v}: want a positive integer"
done
for v in HUGE_MIB EVICT_N; do
	[[ "${!v}" =~ ^[0-9]+$ ]] || die "BENCH_$v=${!v}: want a number, 0 or more"
done
[[ -x "$CRANE" ]] || die "$CRANE not found: run scripts/install-tools.sh (make tools) first"
command -v curl >/dev/null || die "curl is needed to wait for the servers"
BENCHSTAT=""
[[ -x "$TOOLS/benchstat" ]] && BENCHSTAT="$TOOLS/benchstat"

OUT="$REPO/bench/out/proxy-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/signet-proxy-bench.XXXXXX")"
mkdir -p "$TMP/bin" "$TMP/trust" "$TMP/trustdir" "$TMP/img" "$TMP/cache"

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
	echo "params:  rounds=$ROUNDS manifest_n=$MANIFEST_N blob_mib=$BLOB_MIB blob_n=$BLOB_N small_n=$SMALL_N conc=$CONC hits_c=$HITS_C hits_n=$HITS_N huge_mib=$HUGE_MIB evict=${EVICT_N}x${EVICT_MIB}MiBx$EVICT_PASSES"
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

# free_port prints a loopback TCP port nobody listened on a moment ago,
# below the ephemeral range (where outgoing connections take theirs).
EPHEMERAL_LOW="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
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
# push TAG MIB|-KIB: push an image of one random layer (MiB, or KiB if
# negative) as bench/TAG.
push() {
	local tag="$1" size="$2" dir="$TMP/img/$1"
	mkdir -p "$dir"
	if ((size < 0)); then head -c "$((-size << 10))" /dev/urandom >"$dir/file"; else head -c "$((size << 20))" /dev/urandom >"$dir/file"; fi
	tar -C "$dir" -cf "$dir.tar" file
	rm -f "$dir/file"
	timeout 600 "$CRANE" append --insecure -f "$dir.tar" -t "$UPHOST/bench/$tag" >>"$OUT/push.log" 2>&1 || die "crane append failed; see $OUT/push.log"
	rm -rf "$dir" "$dir.tar"
}
log "pushing bench/small:v1 (4 KiB layer), bench/big:v1 (${BLOB_MIB} MiB), bench/huge:v1 (${HUGE_MIB} MiB), ${EVICT_N} x bench/set:N (${EVICT_MIB} MiB)"
push small:v1 -4
push big:v1 "$BLOB_MIB"
TAGS=("$UPHOST/bench/small:v1" "$UPHOST/bench/big:v1")
if ((HUGE_MIB > 0)); then push huge:v1 "$HUGE_MIB"; TAGS+=("$UPHOST/bench/huge:v1"); fi
for i in $(seq "$EVICT_N"); do push "set:$i" "$EVICT_MIB"; TAGS+=("$UPHOST/bench/set:$i"); done
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
if ((HUGE_MIB > 0)); then
	HUGE_DIGEST="$("$CRANE" digest --insecure "$UPHOST/bench/huge:v1")"
	HUGE_LAYER="$(layer "$UPHOST/bench/huge:v1" digest)"
	echo "huge:    bench/huge:v1 $HUGE_DIGEST, layer $HUGE_LAYER ($(layer "$UPHOST/bench/huge:v1" size) bytes)" | tee -a "$OUT/env.txt"
fi
declare -a SET_DIGEST SET_LAYER
for i in $(seq "$EVICT_N"); do
	SET_DIGEST[i]="$("$CRANE" digest --insecure "$UPHOST/bench/set:$i")"
	SET_LAYER[i]="$(layer "$UPHOST/bench/set:$i" digest)"
done

log "signing ${#TAGS[@]} tags"
SIGNET_ROOT_PASSPHRASE="root passphrase" SIGNET_REPOSITORY_PASSPHRASE="repo passphrase" \
	timeout 600 "$TMP/bin/signet" sign --trust-server "$TRUST" --trust-dir "$TMP/trustdir" \
	"${TAGS[@]}" >"$OUT/sign.log" 2>&1 || die "signet sign failed; see $OUT/sign.log"

# --- proxies -----------------------------------------------------------------

# stop NAME stops the server NAME started by start_signet or start_dist,
# waiting up to 10 s for it to exit (then SIGKILL).
stop() {
	local pid="${SPID[$1]:-}"
	[[ -n "$pid" ]] || return 0
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	SPID[$1]=""
}

# start_signet NAME [FLAGS...] (re)starts a signet proxy NAME on an empty
# cache folder, at the default log level: the audit log (one line per
# decision) is on, as in production; it goes to a file.
start_signet() {
	local name="$1" port
	shift
	stop "$name"
	rm -rf "$TMP/cache/$name"
	port="$(free_port)"
	"$TMP/bin/signet" proxy --addr "127.0.0.1:$port" --upstream "${URL[direct]}" --trust-server "$TRUST" --tofu \
		--cache-dir "$TMP/cache/$name" "$@" >>"$OUT/$name.log" 2>&1 &
	PIDS+=("$!")
	SPID[$name]="$!"
	URL[$name]="http://127.0.0.1:$port"
	wait_up "${URL[$name]}/healthz" || die "signet proxy $name did not start; see $OUT/$name.log"
}

# start_dist NAME (re)starts distribution as a pull-through cache NAME, on
# empty storage, with its default logging (info and the access log) going
# to a file.
start_dist() {
	local name="$1" port
	stop "$name"
	rm -rf "$TMP/dist-$name"
	mkdir -p "$TMP/dist-$name"
	port="$(free_port)"
	cat >"$TMP/dist-$name.yml" <<-EOF
		version: 0.1
		log:
		  level: info
		storage:
		  filesystem:
		    rootdirectory: $TMP/dist-$name
		  cache:
		    blobdescriptor: inmemory
		  delete:
		    enabled: false
		http:
		  addr: 127.0.0.1:$port
		proxy:
		  remoteurl: ${URL[direct]}
		health:
		  storagedriver:
		    enabled: false
	EOF
	cp "$TMP/dist-$name.yml" "$OUT/distribution.yml"
	OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none "$DIST_BIN" serve "$TMP/dist-$name.yml" >>"$OUT/$name.log" 2>&1 &
	PIDS+=("$!")
	SPID[$name]="$!"
	URL[$name]="http://127.0.0.1:$port"
	wait_up "${URL[$name]}/v2/" || die "distribution $name did not start; see $OUT/$name.log"
}

# fresh TARGET sets SRV to the name of a server of TARGET started just
# now on an empty cache (direct: the upstream itself).
fresh() {
	case "$1" in
	direct) SRV=direct ;;
	signet) start_signet signet-cold; SRV=signet-cold ;;
	distribution) start_dist distribution-cold; SRV=distribution-cold ;;
	esac
}

start_signet signet
log "signet proxy on ${URL[signet]} (cache in $TMP/cache/signet)"
start_dist distribution
log "distribution pull-through cache on ${URL[distribution]}"

TARGETS=(direct signet distribution)

# load TARGET SERVER OP LABEL REPO REF WANT N [PROXYLOAD FLAGS...]: one
# proxyload run against SERVER, reported as TARGET, with the peak RSS and
# CPU time of SERVER's process.
load() {
	local t="$1" srv="$2" op="$3" label="$4" repo="$5" ref="$6" want="$7" n="$8"
	shift 8
	timeout 900 "$TMP/bin/proxyload" -url "${URL[$srv]}" -target "$t" -op "$op" -label "$label" \
		-repo "$repo" -ref "$ref" -want "$want" -n "$n" -pid "${SPID[$srv]}" -timeout 14m "$@" \
		>>"$OUT/proxyload.txt" 2>>"$OUT/proxyload.log" ||
		die "proxyload $op ($label) against $srv failed; see $OUT/proxyload.log"
}

# prime SERVER REPO TAG DIGEST: GET the manifest once (untimed), so the
# proxy has the trust data and allows the image's blobs.
prime() {
	timeout 600 "$TMP/bin/proxyload" -url "${URL[$1]}" -target "$1" -op manifest -repo "$2" -ref "$3" -want "$4" -n 1 -warm 0 >/dev/null 2>>"$OUT/proxyload.log" ||
		die "pull of $2:$3 through $1 failed; see $OUT/proxyload.log"
}

# upstream_gets DIGEST: the GETs of the blob the upstream logged so far.
upstream_gets() { grep -c "GET /v2/bench/[a-z]*/blobs/$1" "$OUT/upstream.log" || true; }

# Warm the proxies: trust data, verified manifests, cached blobs.
log "warming the proxies"
for t in signet distribution; do
	for img in "bench/small v1 $SMALL_DIGEST $SMALL_LAYER" "bench/big v1 $BIG_DIGEST $BIG_LAYER"; do
		read -r repo tag dg ly <<<"$img"
		prime "$t" "$repo" "$tag" "$dg"
		timeout 600 "$TMP/bin/proxyload" -url "${URL[$t]}" -target "$t" -op blob -repo "$repo" -ref "$ly" -n 1 -warm 0 >/dev/null 2>>"$OUT/proxyload.log" ||
			die "warm-up pull of $repo@$ly through $t failed; see $OUT/proxyload.log"
	done
done
sleep 1 # both write their cached copy after the first GET

# --- rounds ------------------------------------------------------------------

BIG="blob-${BLOB_MIB}MiB"
for r in $(seq "$ROUNDS"); do
	order=("${TARGETS[@]}")
	if ((r % 2 == 0)); then order=(distribution signet direct); fi
	for t in "${order[@]}"; do
		log "round $r/$ROUNDS: $t warm"
		load "$t" "$t" manifest manifest bench/small v1 "$SMALL_DIGEST" "$MANIFEST_N"
		load "$t" "$t" blob blob-small bench/small "$SMALL_LAYER" "" "$SMALL_N"
		load "$t" "$t" blob "$BIG" bench/big "$BIG_LAYER" "" "$BLOB_N"
	done
	for t in "${order[@]}"; do
		log "round $r/$ROUNDS: $t cold"
		fresh "$t"
		[[ "$t" == direct ]] || prime "$SRV" bench/big v1 "$BIG_DIGEST"
		load "$t" "$SRV" blob "$BIG-cold" bench/big "$BIG_LAYER" "" 1 -warm 0
		log "round $r/$ROUNDS: $t cold, $CONC clients at once"
		fresh "$t"
		[[ "$t" == direct ]] || prime "$SRV" bench/big v1 "$BIG_DIGEST"
		before="$(upstream_gets "$BIG_LAYER")"
		load "$t" "$SRV" blob "$BIG-cold-c$CONC" bench/big "$BIG_LAYER" "" "$CONC" -warm 0 -c "$CONC"
		echo "$r $t $(($(upstream_gets "$BIG_LAYER") - before))" >>"$OUT/upstream-fetches.txt"
	done
	for t in "${order[@]}"; do
		log "round $r/$ROUNDS: $t hits, $HITS_C clients at once"
		load "$t" "$t" blob "blob-small-c$HITS_C" bench/small "$SMALL_LAYER" "" "$HITS_N" -c "$HITS_C"
	done
done
stop signet-cold
stop distribution-cold

# --- once: RSS with a huge blob, evictions ------------------------------------

if ((HUGE_MIB > 0)); then
	HUGE="blob-${HUGE_MIB}MiB"
	for t in direct signet distribution; do
		log "$t: ${HUGE_MIB} MiB blob, cold then warm"
		fresh "$t"
		[[ "$t" == direct ]] || prime "$SRV" bench/huge v1 "$HUGE_DIGEST"
		load "$t" "$SRV" blob "$HUGE-cold" bench/huge "$HUGE_LAYER" "" 1 -warm 0
		sleep 2 # the cached copy is written after the first GET
		load "$t" "$SRV" blob "$HUGE-warm" bench/huge "$HUGE_LAYER" "" 1 -warm 0
	done
	stop signet-cold
	stop distribution-cold
fi

if ((EVICT_N > 0)); then
	EVICT_BOUND=$((EVICT_N * EVICT_MIB / 2))
	log "evictions: ${EVICT_N} x ${EVICT_MIB} MiB through a ${EVICT_BOUND} MiB cache, ${EVICT_PASSES} passes"
	start_signet signet-evict --cache-size "${EVICT_BOUND}MiB"
	for i in $(seq "$EVICT_N"); do prime signet-evict bench/set "$i" "${SET_DIGEST[i]}"; done
	before="$(for i in $(seq "$EVICT_N"); do upstream_gets "${SET_LAYER[i]}"; done | awk '{ s += $1 } END { print s + 0 }')"
	maxdisk=0
	for p in $(seq "$EVICT_PASSES"); do
		for i in $(seq "$EVICT_N"); do
			load signet signet-evict blob "evict-${EVICT_MIB}MiB" bench/set "${SET_LAYER[i]}" "" 1 -warm 0
			d="$(du -sb "$TMP/cache/signet-evict/sha256" | cut -f1)"
			((d > maxdisk)) && maxdisk="$d"
		done
	done
	after="$(for i in $(seq "$EVICT_N"); do upstream_gets "${SET_LAYER[i]}"; done | awk '{ s += $1 } END { print s + 0 }')"
	curl -fsS "${URL[signet-evict]}/metrics" | grep '^signet_proxy_blobcache_' >"$OUT/evict-metrics.txt" || true
	metric() { awk -v m="signet_proxy_blobcache_$1" '$1 == m { printf "%.0f", $2 }' "$OUT/evict-metrics.txt"; }
	{
		echo "pulls:            $((EVICT_N * EVICT_PASSES)) of ${EVICT_N} blobs of ${EVICT_MIB} MiB (working set $((EVICT_N * EVICT_MIB)) MiB), in turn, ${EVICT_PASSES} passes"
		echo "cache bound:      ${EVICT_BOUND} MiB"
		echo "upstream GETs:    $((after - before))"
		echo "evictions:        $(metric evictions_total)"
		echo "hits, misses:     $(metric hits_total), $(metric misses_total) (manifests included)"
		echo "cache size now:   $(metric size_bytes) bytes in $(metric objects) files"
		echo "largest on disk:  $maxdisk bytes (du -sb after each pull)"
	} | tee "$OUT/evictions.txt"
	stop signet-evict
fi
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
us() { awk -v x="$1" 'BEGIN { if (x == "n/a") print x; else printf "%.1f", x / 1000 }'; }
# row LABEL D S X S/D X/D TARGET prints one line of the table.
row() { printf '%-38s %11s %11s %13s %14s %16s  %s\n' "$@"; }
# line OP UNIT LABEL CMP LIMIT [SCALE]: a row of the medians of OP in UNIT
# for the three targets, and the verdict of signet/direct CMP LIMIT.
line() {
	local op="$1" unit="$2" label="$3" cmp="$4" limit="$5" scale="${6:-}" d s x rs tgt=""
	d="$(median "$op" direct "$unit")"; s="$(median "$op" signet "$unit")"; x="$(median "$op" distribution "$unit")"
	rs="$(ratio "$s" "$d")"
	[[ -n "$cmp" ]] && tgt="$cmp $limit: $(verdict "$rs" "$cmp" "$limit")"
	if [[ "$scale" == us ]]; then d="$(us "$d")"; s="$(us "$s")"; x="$(us "$x")"; fi
	row "$label" "$d" "$s" "$x" "$rs" "$(ratio "$x" "$d")" "$tgt"
}
{
	echo
	echo "signet proxy (blob cache) vs direct vs distribution pull-through cache: medians of $ROUNDS rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	row measure direct signet distribution signet/direct distrib./direct "target (signet)"
	line manifest ns/op "manifest by tag, warm, mean us" "<=" 1.0 us
	line manifest p50-us "manifest by tag, warm, p50 us" "" ""
	line manifest p99-us "manifest by tag, warm, p99 us" "" ""
	line blob-small ns/op "blob ${SMALL_SIZE} B, warm, mean us" "<=" 1.2 us
	line "$BIG" MB/s "blob ${BLOB_MIB} MiB, warm, MB/s" ">=" 1.0
	line "$BIG-cold" MB/s "blob ${BLOB_MIB} MiB, cold, MB/s" ">=" 0.8
	line "$BIG-cold-c$CONC" wall-ms "${CONC} clients, cold ${BLOB_MIB} MiB, wall ms" "" ""
	line "blob-small-c$HITS_C" p50-us "${HITS_C} clients, warm ${SMALL_SIZE} B, p50 us" "" ""
	line "blob-small-c$HITS_C" p99-us "${HITS_C} clients, warm ${SMALL_SIZE} B, p99 us" "" ""
	line "blob-small-c$HITS_C" ns/op "${HITS_C} clients, warm ${SMALL_SIZE} B, us/req" "" "" us
	echo "(time rows: lower is better; MB/s: higher is better; ratios are signet or distribution over direct)"
	echo
	echo "${CONC} clients at once, cold ${BLOB_MIB} MiB blob: upstream GETs of the blob per round, and the wall time over one cold pull's:"
	for t in signet distribution direct; do
		fetches="$(awk -v t="$t" '$2 == t { printf "%s%s", sep, $3; sep = " " }' "$OUT/upstream-fetches.txt")"
		c="$(median "$BIG-cold-c$CONC" "$t" wall-ms)"; one="$(median "$BIG-cold" "$t" wall-ms)"
		rc="$(ratio "$c" "$one")"
		tgt=""
		[[ "$t" == signet ]] && tgt="  (target: 1 GET, <= 1.5x: $(awk -v f="$fetches" 'BEGIN { n = split(f, a, " "); ok = n > 0; for (i = 1; i <= n; i++) if (a[i] != 1) ok = 0; print ok ? "1 GET met" : "1 GET MISSED" }'), $(verdict "$rc" "<=" 1.5))"
		printf '%-14s upstream GETs [%s], %s ms vs %s ms for one pull: %sx%s\n' "$t" "$fetches" "$c" "$one" "$rc" "$tgt"
	done
	echo "(direct: the upstream serves all ${CONC} itself)"
	echo
	echo "Peak RSS (VmHWM, MiB) of the serving process (median over rounds; target for signet <= 64 MiB):"
	printf '%-14s %12s %12s %12s %14s %14s %14s\n' process blob-small "$BIG" "$BIG-cold" "c$CONC-cold" "${HUGE_MIB}MiB-cold" "${HUGE_MIB}MiB-warm"
	for t in signet distribution direct; do
		printf '%-14s %12s %12s %12s %14s %14s %14s\n' "$t" "$(median blob-small "$t" peak-rss-MiB)" "$(median "$BIG" "$t" peak-rss-MiB)" \
			"$(median "$BIG-cold" "$t" peak-rss-MiB)" "$(median "$BIG-cold-c$CONC" "$t" peak-rss-MiB)" \
			"$(median "blob-${HUGE_MIB}MiB-cold" "$t" peak-rss-MiB)" "$(median "blob-${HUGE_MIB}MiB-warm" "$t" peak-rss-MiB)"
	done
	echo "(direct is crane's in-memory registry: its RSS holds every pushed blob)"
	if ((HUGE_MIB > 0)); then
		echo
		echo "${HUGE_MIB} MiB blob, MB/s (one GET each):"
		for t in direct signet distribution; do
			printf '%-14s cold %10s   warm %10s\n' "$t" "$(median "blob-${HUGE_MIB}MiB-cold" "$t" MB/s)" "$(median "blob-${HUGE_MIB}MiB-warm" "$t" MB/s)"
		done
	fi
	echo
	echo "CPU time of the serving process per request, ms (median over rounds; 10 ms ticks; a proxy's upstream is not included):"
	printf '%-14s %12s %12s %12s %12s\n' process manifest blob-small "$BIG" "$BIG-cold"
	for t in direct signet distribution; do
		printf '%-14s %12s %12s %12s %12s\n' "$t" "$(median manifest "$t" srv-cpu-ms/op)" "$(median blob-small "$t" srv-cpu-ms/op)" "$(median "$BIG" "$t" srv-cpu-ms/op)" "$(median "$BIG-cold" "$t" srv-cpu-ms/op)"
	done
	if ((EVICT_N > 0)); then
		echo
		echo "Evictions (signet, once):"
		cat "$OUT/evictions.txt"
	fi
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
