#!/usr/bin/env bash
# A flood of unique names through a running fanzha, to show that its caches stay
# within [cache] max_bytes and that a name asked often stays cached throughout.
#
# Usage: benches/server/cache-flood.sh   (it re-runs itself in a throw-away user and
#                                        network namespace that has only "lo":
#                                        needs unprivileged user namespaces, or root)
# Environment: NAMES (1000000 unique names), RATE (20000 qps), MAX_BYTES (16 MiB),
#   MODE (forward; or recursive, from a fake root on the same NSD), OUT
#   (target/bench/cache-flood), FANZHA_BIN (target/release/fanzha).
#
# NSD serves a wildcard zone on 127.0.0.1:5390 (TTL 3600). fanzha answers on
# 127.0.0.1:5391. While dnsperf sends NAMES names under that zone, once each, a probe
# asks hot.flood.test every 100 ms and reads the TTL of its answer: a cached answer's
# TTL only goes down, so a TTL that goes up again means the name was evicted and asked
# upstream anew. RSS is sampled every 500 ms.
# Passes when the peak RSS stays below the RSS before the flood (after a warm-up at
# the same rate and concurrency) plus MAX_BYTES plus SLACK_MB (16), and the hot name
# was never asked upstream again.
# Results: $OUT/result.md (and rss.tsv, hot.tsv, dnsperf.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
out=${OUT:-$repo/target/bench/cache-flood}
if [ "${IN_NETNS:-0}" != 1 ]; then
  need_packages nsd dnsperf
  [ -n "${FANZHA_BIN:-}" ] || (cd "$repo" && cargo build --release -q)
  rm -rf "$out"; mkdir -p "$out"
  exec unshare -Urn env IN_NETNS=1 OUT="$out" bash "$0" "$@"
fi
ip link set lo up
NAMES=${NAMES:-1000000} RATE=${RATE:-20000} MAX_BYTES=${MAX_BYTES:-16777216}
MODE=${MODE:-forward} SLACK_MB=${SLACK_MB:-16}
bin=${FANZHA_BIN:-$repo/target/release/fanzha}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# The zone: a wildcard, and a root that delegates it (for MODE=recursive).
cat > "$out/flood.zone" <<'ZONE'
$ORIGIN flood.test.
$TTL 3600
@ SOA ns.flood.test. host.flood.test. 1 3600 600 86400 3600
@ NS ns.flood.test.
ns A 127.0.0.1
* A 192.0.2.1
ZONE
cat > "$out/root.zone" <<'ZONE'
$ORIGIN .
$TTL 86400
. SOA ns.root. host.root. 1 3600 600 86400 3600
. NS ns.root.
ns.root. A 127.0.0.1
flood.test. NS ns.flood.test.
ns.flood.test. A 127.0.0.1
ZONE
nsd_serve "$out" "flood.test=$out/flood.zone" ".=$out/root.zone"

mkdir -p "$out/state" "$out/lists"
ports=
if [ "$MODE" = recursive ]; then
  resolver="mode = \"recursive\"
root_hints = [\"127.0.0.1:5390\"]"
  ports="[[resolver.nameserver_ports]]
cidr = \"127.0.0.0/8\"
port = 5390"
else
  resolver="mode = \"forward\"
upstreams = [\"udp://127.0.0.1:5390\"]"
fi
cat > "$out/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:5391"]
state_dir = "$out/state"
threads = 1
max_inflight = 10000
[resolver]
$resolver
allow_nameservers = ["127.0.0.0/8"]
cache_size = 100000000
$ports
[cache]
max_bytes = $MAX_BYTES
[blocklist]
dirs = ["$out/lists"]
allow_dirs = []
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:5392"
TOML
RUST_LOG=warn taskset -c 1 "$bin" serve --config "$out/fanzha.toml" > "$out/fanzha.log" 2>&1 &
fz=$!; pids+=("$fz")
for _ in $(seq 1 100); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 5391 hot.flood.test A 2>/dev/null | grep -q 192.0.2.1 && break
  sleep 0.2
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$fz/status"; }
# Warm up with 50,000 other names sent the same way as the flood: the memory of the
# resolutions in flight at that rate (up to dnsperf's 2,000) and the allocator's first
# growth are part of the baseline, so what the flood adds is what the caches keep.
seq 1 50000 | awk '{print "warm" $1 ".flood.test A"}' > "$out/warm.txt"
flood() { taskset -c 0 dnsperf -s 127.0.0.1 -p 5391 -n 1 -Q "$RATE" -c 10 -q 2000 -t 5 "$@"; }
flood -d "$out/warm.txt" > "$out/warm.out" 2>&1 || true
sleep 2
base=$(rss)
seq 1 "$NAMES" | awk '{print "n" $1 ".flood.test A"}' > "$out/names.txt"

# The hot name's TTL every 100 ms, and RSS every 500 ms, until told to stop.
python3 - "$out/hot.tsv" <<'PY' & hot=$!
import socket, struct, sys, time, signal
stop = False
def done(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, done)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x03hot\x05flood\x04test\x00" + struct.pack(">HH", 1, 1)
with open(sys.argv[1], "w") as f:
    while not stop:
        t = time.time()
        try:
            s.sendto(q, ("127.0.0.1", 5391)); r = s.recv(512)
            # the answer follows the question, with a compressed name (2 bytes)
            off = len(q) + 2 + 4
            f.write(f"{t:.3f}\t{struct.unpack('>I', r[off:off + 4])[0]}\n")
        except Exception as e:
            f.write(f"{t:.3f}\tlost\n")
        f.flush(); time.sleep(0.1)
PY
(while kill -0 "$fz" 2>/dev/null; do echo "$(date +%s.%N | cut -c1-14)	$(rss)"; sleep 0.5; done) > "$out/rss.tsv" & sampler=$!
t0=$(date +%s.%N)
flood -d "$out/names.txt" > "$out/dnsperf.txt" 2>&1 || true
t1=$(date +%s.%N)
sleep 2
kill "$hot" "$sampler" 2>/dev/null || true; wait "$hot" "$sampler" 2>/dev/null || true
after=$(rss)
curl -s http://127.0.0.1:5392/metrics > "$out/metrics.txt" || true
grep -E '^(fanzha_cache|process_resident)' "$out/metrics.txt" || true
peak=$(awk -F'\t' '$2 > m {m = $2} END {print m + 0}' "$out/rss.tsv")
read -r probes lost resets <<< "$(awk -F'\t' '$2 == "lost" {l++; next} {n++; if (prev != "" && $2 > prev) r++; prev = $2}
  END {print n + 0, l + 0, r + 0}' "$out/hot.tsv")"
completed=$(awk '/Queries completed:/ {print $3}' "$out/dnsperf.txt")
qps=$(awk '/Queries per second:/ {print $4}' "$out/dnsperf.txt")
bound=$((base + MAX_BYTES / 1024 + SLACK_MB * 1024))
verdict=pass
[ "$peak" -le "$bound" ] || verdict="FAIL: peak RSS above the bound"
[ "$resets" -eq 0 ] && [ "$lost" -eq 0 ] || verdict="FAIL: the hot name was evicted or unanswered"
{
  echo "## Cache flood ($(date -u +%F), $(git -C "$repo" rev-parse --short HEAD 2>/dev/null), $MODE mode)"
  echo
  echo "$NAMES unique names at $RATE qps offered ($qps answered per second, $completed answered, $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}') s),"
  echo "[cache] max_bytes = $((MAX_BYTES / 1048576)) MiB."
  echo
  echo "| RSS before the flood | peak RSS | RSS after | bound (before + max_bytes + $SLACK_MB MiB) | hot name: probes, unanswered, asked upstream again | verdict |"
  echo "|---|---|---|---|---|---|"
  echo "| $((base / 1024)) MB | $((peak / 1024)) MB | $((after / 1024)) MB | $((bound / 1024)) MB | $probes, $lost, $resets | $verdict |"
} | tee "$out/result.md"
[ "$verdict" = pass ]
