#!/usr/bin/env bash
# Flood benchmark: random subdomains under hostile zones, with an ordinary client
# alongside. fanzha runs on its defaults, recursive, against hostile_auth.rs (an
# offline hierarchy on 127.3.0.x, unprivileged port): a dead zone (ten servers that
# never answer), a slow zone (every answer SLOW_MS late) and a huge-referral zone
# (every name delegated to 1,500 name servers, over TCP).
#
# Usage: benches/server/flood.sh
# Environment: DURATION (600 s per zone), RATE (2000 hostile qps, from one address),
#   BYSTANDER_RATE (200 qps, from another), SLOW_MS (300), CAL_SECONDS (60: the
#   ordinary misses CPU is compared with), ZONES ("dead slow huge"),
#   RESOLVER (fanzha, or unbound: the same flood against Unbound, for reference),
#   FANZHA_BIN (target/release/fanzha), OUT (target/bench/flood/RESOLVER).
# It runs in a network namespace of its own (unshare -n, as root), where the hostile
# hierarchy answers on port 53: Unbound asks name servers on port 53 only.
# Per zone it reports RSS every 10 s, CPU per hostile query (and its ratio to an
# ordinary miss: unique names under a healthy zone at the same rate), the hostile
# queries' answers, and the ordinary client's answered share and p99.
# Targets (issue 27): RSS ends within 32 MB of where it started; CPU per hostile
# query at most 2x an ordinary miss; the ordinary client 100 % answered, p99 < 100 ms.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RESOLVER=${RESOLVER:-fanzha}
out=${OUT:-$repo/target/bench/flood/$RESOLVER}
if [ "${IN_NETNS:-0}" != 1 ]; then
  source "$here/common.sh"
  pkgs=(dnsperf dnsutils python3 curl iproute2)
  [ "$RESOLVER" = unbound ] && pkgs+=(unbound)
  need_packages "${pkgs[@]}"
  (cd "$repo" && cargo build --release -q && cargo build --release -q --example hostile_auth)
  mkdir -p "$out"
  exec unshare -n env IN_NETNS=1 OUT="$out" bash "$0" "$@"
fi
ip link set lo up
DURATION=${DURATION:-600} RATE=${RATE:-2000} BYSTANDER_RATE=${BYSTANDER_RATE:-200}
SLOW_MS=${SLOW_MS:-300} CAL_SECONDS=${CAL_SECONDS:-60} ZONES=${ZONES:-"dead slow huge"}
PORT=53
bin=${FANZHA_BIN:-$repo/target/release/fanzha}
run=$out/run; rm -rf "$run"; mkdir -p "$run/lists"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$repo/target/release/examples/hostile_auth" "$PORT" "$SLOW_MS" > "$run/auth.log" 2>&1 & pids+=($!)
case $RESOLVER in
  fanzha)
    cat > "$run/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:5391"]
state_dir = "$run/state"
[ops]
listen = "127.0.0.1:5392"
[resolver]
mode = "recursive"
root_hints = ["127.3.0.1:$PORT"]
allow_nameservers = ["127.0.0.0/8"]
[blocklist]
dirs = ["$run/lists"]
allow_dirs = []
[warnpage]
listen = []
TOML
    "$bin" serve --config "$run/fanzha.toml" > "$run/fanzha.log" 2>&1 & fpid=$! ;;
  unbound)
    # Its defaults but for what a test bed needs: the hostile root, loopback name
    # servers, no privilege drop.
    printf '. 3600000 IN NS ns.root.\nns.root. 3600000 IN A 127.3.0.1\n' > "$run/root.hints"
    cat > "$run/unbound.conf" <<CONF
server:
    interface: 127.0.0.1
    port: 5391
    do-ip6: no
    username: ""
    chroot: ""
    directory: "$run"
    pidfile: "$run/unbound.pid"
    logfile: "$run/unbound.log"
    use-syslog: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    root-hints: "$run/root.hints"
    do-not-query-localhost: no
CONF
    unbound -d -c "$run/unbound.conf" > "$run/unbound.out" 2>&1 & fpid=$! ;;
  *) log "RESOLVER is fanzha or unbound, not $RESOLVER"; exit 2 ;;
esac
pids+=($fpid)
for _ in $(seq 50); do
  dig +short +time=1 +tries=1 @127.0.0.1 -p 5391 www.ok. A 2>/dev/null | grep -q 192.0.2.1 && break
  sleep 0.2
done
dig +short +time=1 +tries=1 @127.0.0.1 -p 5391 www.ok. A | grep -q 192.0.2.1 || { log "$RESOLVER does not resolve"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$fpid/stat"; }
# fanzha_upstream_queries_total by result, as "result=N ..." (sorted).
upstream() {
  [ "$RESOLVER" = fanzha ] || return 0
  curl -s http://127.0.0.1:5392/metrics | awk -F'[{}"]' '/^fanzha_upstream_queries_total\{/ {split($NF, v, " "); print $3 "=" v[1]}' | sort
}
# The difference of two upstream() snapshots, per hostile query: "answer 1.00, truncated 0.50, ...".
upstream_per() { # upstream_per BEFORE AFTER QUERIES
  join -t= -a2 -e0 -o 0,1.2,2.2 <(echo "$1") <(echo "$2") |
    awk -F= -v n="$3" '{d = $3 - $2; if (d > 0) printf "%s%s %.2f", sep, $1, d / n; sep = ", "} END {print ""}'
}
# The answer cache (fanzha only): "ANSWERS BYTES".
cache_now() {
  [ "$RESOLVER" = fanzha ] || return 0
  "$bin" ctl --config "$run/fanzha.toml" status --json 2>/dev/null |
    python3 -c 'import json, sys; c = json.load(sys.stdin)["cache"]; print(c["entries"], c["bytes"])' || true
}
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$fpid/status"; }
hz=$(getconf CLK_TCK)
queries() { # queries FILE PREFIX ZONE COUNT
  awk -v p="$2" -v z="$3" -v n="$4" 'BEGIN {for (i = 0; i < n; i++) printf "%s%d.%s A\n", p, i, z}' > "$1"
}
# dnsperf from 127.0.0.3, one client address; prints "sent completed noerror servfail".
perf() { # perf FILE SECONDS
  dnsperf -s 127.0.0.1 -p 5391 -a 127.0.0.3 -d "$1" -Q "$RATE" -l "$2" -c 1 -q 10000 -t 5 > "$1.out" 2>&1 || true
  awk '/Queries sent:/ {s=$3} /Queries completed:/ {c=$3}
       /Response codes:/ {for (i = 3; i <= NF; i += 2) {g=$i; sub(",", "", g); v=$(i+1); sub(",", "", v); r[g]=v}}
       END {printf "%d %d %d %d\n", s, c, r["NOERROR"] + 0, r["SERVFAIL"] + 0}' "$1.out"
}

log "calibration: unique names under ok. at $RATE qps for ${CAL_SECONDS}s"
queries "$run/q-cal.txt" c ok. $((RATE * CAL_SECONDS + RATE))
t0=$(cpu_ticks)
read -r cs cc cn cf < <(perf "$run/q-cal.txt" "$CAL_SECONDS")
t1=$(cpu_ticks)
cal_us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$cc" 'BEGIN {printf "%.1f", n ? d / hz * 1e6 / n : 0}')
log "ordinary miss: $cal_us us CPU ($cc of $cs answered, $cf SERVFAIL)"

{
  echo "# Flood benchmark, $(date -u +%F)"
  echo
  echo "$RESOLVER on its defaults, recursive; hostile names at $RATE qps from one address for ${DURATION}s per zone;"
  echo "an ordinary client at $BYSTANDER_RATE qps from another. Ordinary miss: $cal_us us CPU."
  echo
  echo "| zone | RSS start → end (peak) MB | CPU per hostile query | × ordinary miss | hostile answered (SERVFAIL) | upstream exchanges per hostile query | ordinary answered | ordinary p50 / p99 ms |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$out/results.md"
: > "$out/rss.tsv"
for zone in $ZONES; do
  queries "$run/q-$zone.txt" "r" "$zone." $((RATE * DURATION + RATE))
  start_rss=$(rss_mb)
  ( while :; do printf '%s\t%s\t%s\t%s\n' "$zone" "$(date +%s)" "$(rss_mb)" "$(cache_now)" >> "$out/rss.tsv"; sleep 10; done ) & sampler=$!
  python3 "$here/bystander.py" 127.0.0.1 5391 "$BYSTANDER_RATE" "$DURATION" ok. 127.0.0.2 > "$run/by-$zone.txt" &
  by=$!
  log "$zone: ${DURATION}s of random subdomains"
  up0=$(upstream)
  t0=$(cpu_ticks)
  read -r hs hc hn hf < <(perf "$run/q-$zone.txt" "$DURATION")
  t1=$(cpu_ticks)
  up=$(upstream_per "$up0" "$(upstream)" "$hs")
  wait "$by"
  kill "$sampler" 2>/dev/null || true
  end_rss=$(rss_mb)
  peak=$(awk -v z="$zone" '$1 == z && $3 > m {m = $3} END {print m + 0}' "$out/rss.tsv")
  read -r asked answered ok p50 p99 max < "$run/by-$zone.txt"
  us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$hs" 'BEGIN {printf "%.1f", n ? d / hz * 1e6 / n : 0}')
  ratio=$(awk -v a="$us" -v b="$cal_us" 'BEGIN {printf "%.2f", b ? a / b : 0}')
  share=$(awk -v a="$answered" -v n="$asked" 'BEGIN {printf "%.2f", n ? 100 * a / n : 0}')
  log "$zone: RSS $start_rss -> $end_rss (peak $peak) MB; $us us/query (${ratio}x); ordinary $answered/$asked, p99 $p99 ms"
  echo "| $zone | $start_rss → $end_rss ($peak) | $us µs | $ratio | $hc of $hs ($hf) | $up | $share % ($answered of $asked, $ok NOERROR) | $p50 / $p99 |" >> "$out/results.md"
done
echo >> "$out/results.md"
echo "RSS every 10 s: $out/rss.tsv. Command: \`RESOLVER=$RESOLVER DURATION=$DURATION RATE=$RATE benches/server/flood.sh\`" >> "$out/results.md"
cat "$out/results.md"
