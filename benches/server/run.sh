#!/usr/bin/env bash
# Whole-server benchmark: fanzha against Unbound, Knot Resolver, PowerDNS Recursor
# and dnsmasq, side by side in one run of the shared harness (../shared/bench).
# Usage: benches/server/run.sh [BENCH_DIR]      (default: ../shared/bench)
# Environment: SIZES (default 1000000), MODES (default pinned), PEERS, OUT (default
# target/bench), BIG (default 10000000; 0 skips the big-list step), EXTRA_ONLY=1
# (only the fanzha-alone figures, reusing the last peers run). Results:
# $OUT/results/ratios.md (fanzha / peer), summary.md and fanzha-extra.md. Needs root (network namespace)
# and the Debian packages below; installs them when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${1:-$repo/../shared/bench}
out=${OUT:-$repo/target/bench}
[ -x "$bench/run_peers.sh" ] || { echo "no benchmark harness at $bench" >&2; exit 1; }
pkgs=(unbound knot-resolver pdns-recursor dnsmasq nsd dnsperf dnsutils)
source "$here/common.sh"
need_packages "${pkgs[@]}"
(cd "$repo" && cargo build --release -q)
mkdir -p "$out/data"
export DATA=$out/data RESULTS=$out/results
export SIZES=${SIZES:-1000000} MODES=${MODES:-pinned}
export PEERS=${PEERS:-"unbound kresd pdns dnsmasq custom"}
export CUSTOM_CMD="$here/fanzha-peer.sh @RUN@ @PORT@ @THREADS@ @LIST_TXT@ @UPSTREAM_IP@ @UPSTREAM_PORT@ @SINK@"
export CUSTOM_RELOAD='kill -HUP @PID@'
[ -f "$DATA/blocklist-${SIZES%% *}.txt" ] || "$bench/run_peers.sh" gen
# EXTRA_ONLY=1: only the fanzha-alone figures below, reusing the last peers run.
[ "${EXTRA_ONLY:-0}" = 1 ] || "$bench/run_peers.sh"
python3 "$here/ratios.py" "$RESULTS/raw.tsv" | tee "$RESULTS/ratios.md"

# ---- fanzha alone, beyond what the shared harness measures ---------------------------
# Figures go to $RESULTS/fanzha-extra.md:
#  1. mix latency percentiles at half of fanzha's own saturation qps (from the run above);
#  2. restart with the 1M list (the snapshot of the last compile serves at once);
#  3. a 10M-name list: compile time and peak memory, then start with it precompiled.
n=${SIZES%% *}
extra=$RESULTS/fanzha-extra.md
port=5311
bin=$repo/target/release/fanzha
source "$DATA/spot-$n.txt"   # LAST_BLOCKED: the last name of the list
probe() {   # seconds from $1 (epoch) until LAST_BLOCKED answers the sink
  local ts
  ts=$(python3 "$bench/dnsprobe.py" 127.0.0.1 "$port" "$LAST_BLOCKED" --wait 0.0.0.0 --max 120 --consecutive 8 --print-ts)
  python3 -c "print(f'{$ts - $1:.3f}')"
}
start_fanzha() {   # start_fanzha RUNDIR  (pinned like the harness's server)
  taskset -c "${SERVER_CPU:-1}" "$here/fanzha-peer.sh" "$1" "$port" 1 "$DATA/blocklist-$n.txt" 127.0.0.1 5300 0.0.0.0 \
    > "$1.log" 2>&1 &
  pid=$!
}
stop_fanzha() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$pid/status"; }
run=$out/fanzha-extra; rm -rf "$run" "$run".log; mkdir -p "$run"
{
  echo "## fanzha: further figures ($(date -u +%F), N=$n)"
  echo
  max=$(awk -F'\t' '$1=="custom" && $3=="pinned" && $4=="qps_mix" {print $5}' "$RESULTS/raw.tsv" | sort -g \
        | awk '{v[NR]=$1} END {if (NR) print int(v[int((NR+1)/2)])}')
  start_fanzha "$run"; cold=$(probe "$(date +%s.%N)")
  if [ -n "$max" ]; then
    half=$((max / 2))
    # The harness's target mode: spot checks, warm-up, then the latency run at -Q $half.
    RESULTS=$run/half-load WORKLOADS="" MODES=pinned LAT_QPS=$half TARGET_N=$n TARGET_PID=$pid \
      "$bench/run_peers.sh" target fanzha-half-load "$port" > "$run/half-load.log" 2>&1
    p=$(awk -F'\t' '$4 ~ /^lat_p(50|99|999)_ms$/ {printf "%s / ", $5}' "$run/half-load/raw.tsv")
    echo "- mix latency at half of fanzha's saturation ($max qps -> -Q $half): p50 / p99 / p99.9 = ${p% / } ms"
  fi
  stop_fanzha
  start_fanzha "$run"; t=$(date +%s.%N); warm=$(probe "$t")
  echo "- first blocked answer: first start ${cold} s (reads the text list; an interim index serves while it compiles), restart ${warm} s (last good compile), RSS $(rss) MB"
  stop_fanzha
  if [ "${BIG:-10000000}" != 0 ]; then
    big=${BIG:-10000000}
    # The harness's generator (same seed), for $big names (about 70 s, kept in $DATA).
    [ -s "$DATA/blocklist-big-$big.txt" ] || python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import gen_blocklist as g; open(sys.argv[3], "w").write("\n".join(g.gen_list(int(sys.argv[2]), 20240601)) + "\n")' "$bench" "$big" "$DATA/blocklist-big-$big.txt"
    mkdir -p "$run/big-in"; ln -sf "$DATA/blocklist-big-$big.txt" "$run/big-in/list.txt"
    /usr/bin/time -f "%e %M" -o "$run/big-time.txt" "$bin" compile -o "$run/big.fst" "$run/big-in" > "$run/big-compile.log" 2>&1 || true
    read -r secs kb < "$run/big-time.txt"
    size=$(stat -c %s "$run/big.fst")
    echo "- $big names: compile ${secs} s, peak memory $((kb / 1024)) MB, file $((size / 1048576)) MB ($(python3 -c "print(round($size/$big,1))") bytes/name)"
    LAST_BLOCKED=$(sed -n '$p' "$DATA/blocklist-big-$big.txt")
    rm -rf "$run-big"; mkdir -p "$run-big"
    FANZHA_COMPILED=$run/big.fst start_fanzha "$run-big"; t=$(date +%s.%N); b=$(probe "$t")
    echo "- start with the precompiled $big-name list: first blocked answer ${b} s, RSS $(rss) MB"
    stop_fanzha
  fi
} | tee "$extra"
echo "summary: $RESULTS/ratios.md, $RESULTS/summary.md and $extra"
