#!/usr/bin/env bash
# Whole-server benchmark: fanzha against Unbound, Knot Resolver, PowerDNS Recursor
# and dnsmasq, side by side in one run of the shared harness (../shared/bench).
# Usage: benches/server/run.sh [BENCH_DIR]      (default: ../shared/bench)
# Environment: SIZES (default 1000000), MODES (default pinned), PEERS, OUT (default
# target/bench). Results: $OUT/results/summary.md. Needs root (network namespace)
# and the Debian packages below; installs them when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bench=${1:-$repo/../shared/bench}
out=${OUT:-$repo/target/bench}
[ -x "$bench/run_peers.sh" ] || { echo "no benchmark harness at $bench" >&2; exit 1; }
pkgs=(unbound knot-resolver pdns-recursor dnsmasq nsd dnsperf dnsutils)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; fi
(cd "$repo" && cargo build --release -q)
mkdir -p "$out/data"
export DATA=$out/data RESULTS=$out/results
export SIZES=${SIZES:-1000000} MODES=${MODES:-pinned}
export PEERS=${PEERS:-"unbound kresd pdns dnsmasq custom"}
export CUSTOM_CMD="$here/fanzha-peer.sh @RUN@ @PORT@ @THREADS@ @LIST_TXT@ @UPSTREAM_IP@ @UPSTREAM_PORT@ @SINK@"
export CUSTOM_RELOAD='kill -HUP @PID@'
[ -f "$DATA/blocklist-${SIZES%% *}.txt" ] || "$bench/run_peers.sh" gen
"$bench/run_peers.sh"
echo "summary: $RESULTS/summary.md"
