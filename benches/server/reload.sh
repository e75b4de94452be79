#!/usr/bin/env bash
# The shared harness's reload step alone, for fanzha (the "custom" peer) and, with
# PEERS, its peers: the 1M-name list is swapped and reloaded (SIGHUP for fanzha)
# while dnsperf sends the mix workload at a fixed rate, one pinned core, one thread.
# Usage: benches/server/reload.sh [BENCH_DIR]
# Environment: RATES (default "10000 50000"), RUNS per rate (default 3), SIZES
# (default 1000000), PEERS (default custom), OUT (default target/bench).
# RELOAD_PRE (seconds of load before the reload, default 4: dnsperf's first seconds
# at a high rate are a ramp of their own) and CUSTOM_RELOAD go to the harness.
# Result: $OUT/reload/reload.md, one row per run: queries lost (no answer within
# dnsperf's 5 s), still in flight when dnsperf was stopped, sent, SERVFAIL, answered
# later than 1 s, the slowest second's answers, seconds until the new list was live.
# Needs root (the harness's private network namespace).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${1:-$repo/../shared/bench}
out=${OUT:-$repo/target/bench}
[ -x "$bench/run_peers.sh" ] || { echo "no benchmark harness at $bench" >&2; exit 1; }
source "$here/common.sh"
need_packages dnsperf nsd dnsutils
(cd "$repo" && cargo build --release -q)
export DATA=${DATA:-$out/data} SIZES=${SIZES:-1000000} PEERS=${PEERS:-custom}
# WORKLOADS is a space: the harness takes an empty one as its default, all three.
export MODES=pinned WORKLOADS=" " CALIBRATE=0 RELOAD_PRE=${RELOAD_PRE:-4}
export CUSTOM_CMD="$here/fanzha-peer.sh @RUN@ @PORT@ @THREADS@ @LIST_TXT@ @UPSTREAM_IP@ @UPSTREAM_PORT@ @SINK@"
# CUSTOM_RELOAD=true: the same run without a reload (the load alone, for comparison).
export CUSTOM_RELOAD=${CUSTOM_RELOAD:-'kill -HUP @PID@'}
mkdir -p "$DATA" "$out/reload"
[ -f "$DATA/blocklist-${SIZES%% *}.txt" ] || "$bench/run_peers.sh" gen
table=$out/reload/reload.md
{
  echo "## List reload under a fixed load ($(date -u +%F), N=$SIZES, $(git -C "$repo" rev-parse --short HEAD), reload: $CUSTOM_RELOAD)"
  echo
  echo "| peer | offered qps | run | lost | in flight at the stop | sent | SERVFAIL | answered > 1 s | slowest second (answers) | new list live after s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$table"
for rate in ${RATES:-10000 50000}; do
  for run in $(seq 1 "${RUNS:-3}"); do
    res=$out/reload/q$rate-$run
    rm -rf "$res"
    RESULTS=$res RELOAD_QPS=$rate "$bench/run_peers.sh" > "$res.log" 2>&1 || { echo "run failed: $res.log" >&2; exit 1; }
    awk -F'\t' -v rate="$rate" -v run="$run" '
      {v[$1, $4] = $5; peers[$1] = 1}
      END {for (p in peers) if ((p, "reload_sent") in v)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p, rate, run, v[p, "reload_lost"],
          v[p, "reload_unanswered"] - v[p, "reload_lost"], v[p, "reload_sent"], v[p, "reload_servfail"],
          v[p, "reload_late1s"], v[p, "reload_min1s_qps"], v[p, "reload_s"]}
    ' "$res/raw.tsv" | tee -a "$table"
  done
done
echo "table: $table"
