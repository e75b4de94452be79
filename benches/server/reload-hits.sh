#!/usr/bin/env bash
# The answer cache's hit ratio, second by second, across a list reload: fanzha
# (forward mode, one thread) blocks a big list and answers a steady stream of names
# it has cached; at RELOAD_AT seconds it gets SIGHUP and recompiles the list. Before
# the cache kept its entries across list swaps, every swap made them all misses.
#
# Usage: benches/server/reload-hits.sh [FANZHA_BIN]   (default target/release/fanzha;
#   give an older build for the "before" figures). It re-runs itself in a throw-away
#   user and network namespace. Environment: LIST (a big list, default the shared
#   harness's 1M names in target/bench/data), NAMES (5000 names asked in turn),
#   RATE (20000 qps), SECONDS_TOTAL (30), RELOAD_AT (10), OUT
#   (target/bench/reload-hits). Result: $OUT/hits.tsv (second, answers, cache hits,
#   ratio) and a summary line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
out=${OUT:-$repo/target/bench/reload-hits}
bin=${1:-$repo/target/release/fanzha}
if [ "${IN_NETNS:-0}" != 1 ]; then
  need_packages nsd dnsperf curl
  rm -rf "$out"; mkdir -p "$out"
  exec unshare -Urn env IN_NETNS=1 OUT="$out" bash "$0" "$bin"
fi
ip link set lo up
LIST=${LIST:-$repo/target/bench/data/blocklist-1000000.txt}
NAMES=${NAMES:-5000} RATE=${RATE:-20000} SECONDS_TOTAL=${SECONDS_TOTAL:-30} RELOAD_AT=${RELOAD_AT:-10}
[ -f "$LIST" ] || { echo "no list at $LIST (run benches/server/run.sh once, or set LIST)" >&2; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# The upstream: a wildcard zone on NSD.
printf '$ORIGIN hits.test.\n$TTL 3600\n@ SOA ns host 1 3600 600 86400 3600\n@ NS ns\nns A 127.0.0.1\n* A 192.0.2.1\n' \
  > "$out/hits.zone"
nsd_serve "$out" "hits.test=$out/hits.zone"

mkdir -p "$out/lists" "$out/state"
ln -s "$LIST" "$out/lists/big.txt"
cat > "$out/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:5391"]
state_dir = "$out/state"
threads = 1
[resolver]
mode = "forward"
upstreams = ["udp://127.0.0.1:5390"]
allow_nameservers = ["127.0.0.0/8"]
[blocklist]
dirs = ["$out/lists"]
allow_dirs = []
max_drop = 1.0
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:5392"
TOML
RUST_LOG=warn taskset -c 1 "$bin" serve --config "$out/fanzha.toml" > "$out/fanzha.log" 2>&1 & fz=$!; pids+=("$fz")
for _ in $(seq 1 300); do
  curl -sf http://127.0.0.1:5392/readyz > /dev/null 2>&1 && break
  sleep 0.2
done
metric() { curl -s http://127.0.0.1:5392/metrics | awk -v k="$1" '$1 == k {print $2}'; }
# The same NAMES names over and over: once warm, every answer comes from the cache.
awk -v n="$NAMES" 'BEGIN {for (i = 0; i < 400000; i++) print "n" (i % n) ".hits.test A"}' > "$out/names.txt"
taskset -c 0 dnsperf -s 127.0.0.1 -p 5391 -d "$out/names.txt" -l 5 -Q "$RATE" > /dev/null 2>&1 || true
taskset -c 0 dnsperf -s 127.0.0.1 -p 5391 -d "$out/names.txt" -l "$SECONDS_TOTAL" -Q "$RATE" > "$out/dnsperf.txt" 2>&1 &
dp=$!
echo -e "second\tanswers\tcache_hits\tratio" > "$out/hits.tsv"
a0=$(metric 'fanzha_queries_total{result="allowed"}'); h0=$(metric fanzha_cache_hits_total)
for s in $(seq 1 "$SECONDS_TOTAL"); do
  [ "$s" = "$RELOAD_AT" ] && kill -HUP "$fz"
  sleep 1
  a1=$(metric 'fanzha_queries_total{result="allowed"}'); h1=$(metric fanzha_cache_hits_total)
  awk -v s="$s" -v a=$((${a1%.*} - ${a0%.*})) -v h=$((${h1%.*} - ${h0%.*})) \
    'BEGIN {printf "%d\t%d\t%d\t%.3f\n", s, a, h, (a ? h / a : 0)}' >> "$out/hits.tsv"
  a0=$a1; h0=$h1
done
wait "$dp" || true
awk -F'\t' -v r="$RELOAD_AT" 'NR > 1 {if ($1 < r) {ba += $2; bh += $3} else if ($1 <= r + 10) {aa += $2; ah += $3; if (min == "" || $4 < min) min = $4}}
  END {printf "hit ratio: %.3f before the reload, %.3f over the 10 s after it (lowest second %.3f)\n", bh / ba, ah / aa, min}' \
  "$out/hits.tsv" | tee "$out/summary.txt"
