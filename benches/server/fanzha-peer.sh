#!/usr/bin/env bash
# Start fanzha as the "custom" peer of the shared side-by-side benchmark
# (../shared/bench/run_peers.sh): forward mode to the benchmark's upstream, blocking
# the benchmark's list, answering A SINK. Usage (run_peers.sh fills the placeholders):
#   fanzha-peer.sh @RUN@ @PORT@ @THREADS@ @LIST_TXT@ @UPSTREAM_IP@ @UPSTREAM_PORT@ @SINK@
# FANZHA_COMPILED=FILE serves that precompiled list instead of compiling @LIST_TXT@.
set -euo pipefail
run=$1 port=$2 threads=$3 list=$4 up_ip=$5 up_port=$6 sink=$7
bin=${FANZHA_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/fanzha}
mkdir -p "$run/lists" "$run/state"
# The list directory holds only a link to the benchmark's list file, so that the
# other files of $run are not read as lists; SIGHUP re-reads it through the link.
ln -sf "$list" "$run/lists/blocklist.txt"
cat > "$run/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
state_dir = "$run/state"
threads = $threads
[resolver]
mode = "forward"
upstreams = ["udp://$up_ip:$up_port"]
allow_nameservers = ["127.0.0.0/8"]
[blocklist]
$(if [ -n "${FANZHA_COMPILED:-}" ]; then echo "compiled = \"$FANZHA_COMPILED\""; else echo "dirs = [\"$run/lists\"]"; fi)
allow_dirs = []
max_drop = 1.0
[sinkhole]
ipv4 = "${sink:-0.0.0.0}"
ipv6 = "none"
[ops]
listen = "127.0.0.1:0"
TOML
RUST_LOG=${RUST_LOG:-warn} exec "$bin" serve --config "$run/fanzha.toml"
