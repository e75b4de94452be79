#!/usr/bin/env bash
# Recursive benchmark, side by side: fanzha, Unbound, Knot Resolver and PowerDNS
# Recursor, one thread each, iterating from a fake root over an offline hierarchy of
# ZONES zones (wildcards, two name servers each) on NSD, with DELAY_MS added in each
# direction between the resolvers and the servers.
#
# Usage: benches/server/recursive.sh        (as root: it re-runs itself in a private
#                                           network namespace that has only "lo")
# Environment: ZONES (300), DELAY_MS (10), NAMES (20000 unique names per rate),
#   RATES ("500 1000 2000"), ZIPF (20000 queries), PEERS ("fanzha unbound kresd pdns"),
#   OUT (target/bench/recursive), FANZHA_RESOLVER (extra [resolver] lines for fanzha,
#   e.g. "cache_size = 20000"), FANZHA_BIN (target/release/fanzha; another build, for an
#   A/B run), PERF (a resolver's name: record its CPU profile per workload with perf, in
#   $OUT/run/NAME/perf-WORKLOAD.data), CALLGRIND (resolvers' names: run them under
#   valgrind's callgrind and record user-space instructions per query, a count that the
#   machine's noise does not move; profiles in $OUT/run/NAME/cg.out.N; use a low rate,
#   e.g. RATES=50 NAMES=1000 ZIPF=2000). Results: $OUT/results.md and $OUT/raw.tsv.
#
# Workloads, per resolver, from a cold start:
#   unique  NAMES names never asked before (every query a cache miss), offered at
#           each of RATES qps; answered qps, SERVFAIL, lost, p50/p99, CPU per
#           resolution, upstream queries per resolution (counted by the relay);
#   zipf    ZIPF queries drawn from a Zipf law (s = 1) over 100k names, at the
#           first rate: the same figures, with a realistic hit ratio;
#   RSS after the unique-name runs.
# The latency is added by delay_relay.rs (this machine has no netem): NSD listens on
# 127.2.x.y, the relay on 127.1.x.y forwards after DELAY_MS each way, and the zones
# name only 127.1.x.y. Servers and relay run on CPU 0 with dnsperf, resolvers on CPU 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OUT:-$repo/target/bench/recursive}
if [ "${IN_NETNS:-0}" != 1 ]; then
  pkgs=(unbound knot-resolver pdns-recursor nsd dnsperf dnsutils iproute2)
  [ -n "${CALLGRIND:-}" ] && pkgs+=(valgrind)
  source "$here/common.sh"
  need_packages "${pkgs[@]}"
  (cd "$repo" && cargo build --release -q && cargo build --release -q --example delay_relay)
  mkdir -p "$out"
  exec unshare -n env IN_NETNS=1 OUT="$out" bash "$0" "$@"
fi
ip link set lo up
ZONES=${ZONES:-300} DELAY_MS=${DELAY_MS:-10} NAMES=${NAMES:-20000} ZIPF=${ZIPF:-20000}
RATES=${RATES:-"500 1000 2000"} PEERS=${PEERS:-"fanzha unbound kresd pdns"}
TLDS=(com net org cn top vip xyz info shop site)
run=$out/run; rm -rf "$run"; mkdir -p "$run/zones"
raw=$out/raw.tsv; : > "$raw"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
record() { printf '%s\t%s\t%s\t%s\n' "$@" >> "$raw"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# ---- the hierarchy: root on .1.0.1, TLDs on .1.1.1, zones on .1.2.1-4 (two each) ----------
python3 - "$run/zones" "$ZONES" "${TLDS[@]}" <<'PY'
import sys, os
d, n, tlds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
soa = lambda o: f"{o} 3600 IN SOA ns.root. h.root. 1 3600 600 86400 300\n"
servers = {("root",): [], ("tld",): [], **{("sld", i): [] for i in range(1, 5)}}
root = soa(".") + ". 86400 IN NS ns.root.\nns.root. 86400 IN A 127.1.0.1\nns.nic.root. 86400 IN A 127.1.1.1\n"
for t in tlds:
    root += f"{t}. 86400 IN NS ns.nic.root.\n"
open(f"{d}/root.zone", "w").write(root)
servers[("root",)].append((".", "root.zone"))
per_tld = {t: soa(f"{t}.") + f"{t}. 86400 IN NS ns.nic.root.\n" for t in tlds}
for k in range(n):
    t = tlds[k % len(tlds)]
    z = f"zone{k}.{t}."
    a, b = 1 + k % 4, 1 + (k + 1) % 4
    per_tld[t] += f"{z} 86400 IN NS ns1.{z}\n{z} 86400 IN NS ns2.{z}\n"
    per_tld[t] += f"ns1.{z} 86400 IN A 127.1.2.{a}\nns2.{z} 86400 IN A 127.1.2.{b}\n"
    body = soa(z) + f"{z} 86400 IN NS ns1.{z}\n{z} 86400 IN NS ns2.{z}\n"
    body += f"ns1.{z} 86400 IN A 127.1.2.{a}\nns2.{z} 86400 IN A 127.1.2.{b}\n"
    body += f"www.{z} 3600 IN A 192.0.2.1\n*.{z} 3600 IN A 192.0.2.2\n*.{z} 3600 IN AAAA 2001:db8::2\n"
    f = f"zone{k}.{t}.zone"
    open(f"{d}/{f}", "w").write(body)
    servers[("sld", a)].append((z, f)); servers[("sld", b)].append((z, f))
for t in tlds:
    open(f"{d}/{t}.zone", "w").write(per_tld[t])
    servers[("tld",)].append((f"{t}.", f"{t}.zone"))
addr = {("root",): "127.2.0.1", ("tld",): "127.2.1.1", **{("sld", i): f"127.2.2.{i}" for i in range(1, 5)}}
for key, zones in servers.items():
    name = "-".join(map(str, key))
    conf = f"""server:
    ip-address: {addr[key]}@53
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "{d}/{name}.zonelist"
    xfrdfile: "{d}/{name}.xfrd"
    xfrdir: "{d}"
    pidfile: "{d}/{name}.pid"
    logfile: "{d}/{name}.log"
    verbosity: 0
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    zonesdir: "{d}"
remote-control:
    control-enable: no
"""
    for z, f in zones:
        conf += f"zone:\n    name: \"{z}\"\n    zonefile: \"{f}\"\n"
    open(f"{d}/{name}.conf", "w").write(conf)
PY
for c in "$run"/zones/*.conf; do
  taskset -c 0 nsd -d -c "$c" > "${c%.conf}.out" 2>&1 & pids+=($!)
done
relay_pairs=(127.1.0.1:53=127.2.0.1:53 127.1.1.1:53=127.2.1.1:53)
for i in 1 2 3 4; do relay_pairs+=("127.1.2.$i:53=127.2.2.$i:53"); done
taskset -c 0 "$repo/target/release/examples/delay_relay" "$DELAY_MS" "$run/relay.count" "${relay_pairs[@]}" \
  > "$run/relay.log" 2>&1 & pids+=($!)
sleep 2
dig +short +time=2 +tries=1 @127.1.0.1 ns.root. A | grep -q 127.1.0.1 || { log "the hierarchy does not answer"; exit 1; }

# ---- the query files ------------------------------------------------------------------------
python3 - "$run" "$ZONES" "$NAMES" "$ZIPF" "$RATES" "${TLDS[@]}" <<'PY'
import sys, random
run, zones, names, zipf, rates, tlds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(), sys.argv[6:]
rnd = random.Random(20261130)
zone = lambda k: f"zone{k}.{tlds[k % len(tlds)]}."
for r in rates:
    with open(f"{run}/q-unique-{r}.txt", "w") as f:
        for i in range(names):
            f.write(f"u{r}x{i}.{zone(rnd.randrange(zones))} A\n")
universe = [f"z{i}.{zone(i % zones)}" for i in range(100000)]
weights = [1 / (i + 1) for i in range(len(universe))]
with open(f"{run}/q-zipf.txt", "w") as f:
    for n in rnd.choices(universe, weights, k=zipf):
        f.write(f"{n} A\n")
PY

upstream() { awk '{s += $2} END {print s + 0}' "$run/relay.count"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

under_callgrind() { [[ " ${CALLGRIND:-} " == *" $1 "* ]]; }

start_peer() {   # start_peer NAME PORT -> PEER_PID
  local name=$1 port=$2 dir=$run/$1; mkdir -p "$dir"
  local cg=()
  under_callgrind "$name" && cg=(valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out")
  case $name in
    fanzha)
      mkdir -p "$dir/lists"
      cat > "$dir/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
state_dir = "$dir/state"
threads = 1
# As many resolutions in flight as Unbound's num-queries-per-thread below. dnsperf is
# one client standing for a whole district: below the cap it may hold them all.
max_inflight = 4096
[resolver]
mode = "recursive"
root_hints = ["127.1.0.1"]
allow_nameservers = ["127.0.0.0/8"]
${FANZHA_RESOLVER:-}
[blocklist]
dirs = ["$dir/lists"]
allow_dirs = []
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:0"
TOML
      RUST_LOG=warn taskset -c 1 "${cg[@]}" "${FANZHA_BIN:-$repo/target/release/fanzha}" serve --config "$dir/fanzha.toml" > "$dir/log" 2>&1 & ;;
    unbound)
      printf '. 3600000 IN NS ns.root.\nns.root. 3600000 IN A 127.1.0.1\n' > "$dir/root.hints"
      cat > "$dir/unbound.conf" <<CONF
server:
    interface: 127.0.0.1
    port: $port
    do-ip6: no
    num-threads: 1
    username: ""
    chroot: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    logfile: "$dir/unbound.log"
    use-syslog: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    root-hints: "$dir/root.hints"
    do-not-query-localhost: no
    num-queries-per-thread: 4096
    outgoing-range: 8192
CONF
      taskset -c 1 "${cg[@]}" unbound -d -c "$dir/unbound.conf" > "$dir/log" 2>&1 & ;;
    kresd)
      cat > "$dir/kresd.conf" <<CONF
net.ipv6 = false
net.listen('127.0.0.1', $port, { kind = 'dns' })
cache.open(256 * MB, 'lmdb://$dir/cache')
trust_anchors.remove('.')
modules.load('hints > iterate')
hints.root({ ['ns.root.'] = '127.1.0.1' })
CONF
      taskset -c 1 "${cg[@]}" kresd -n -c "$dir/kresd.conf" "$dir" > "$dir/log" 2>&1 & ;;
    pdns)
      printf '. 3600000 IN NS ns.root.\nns.root. 3600000 IN A 127.1.0.1\n' > "$dir/root.hints"
      cat > "$dir/recursor.conf" <<CONF
local-address=127.0.0.1
local-port=$port
threads=1
socket-dir=$dir
hint-file=$dir/root.hints
dnssec=off
dont-query=
daemon=no
write-pid=no
quiet=yes
allow-from=127.0.0.0/8
security-poll-suffix=
CONF
      taskset -c 1 "${cg[@]}" pdns_recursor --config-dir="$dir" > "$dir/log" 2>&1 & ;;
  esac
  PEER_PID=$!
  pids+=("$PEER_PID")
  for _ in $(seq 1 300); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.zone1.net. A 2>/dev/null | grep -q 192.0.2.1 && return 0
    sleep 0.2
  done
  log "$name did not answer"; return 1
}

measure() {   # measure PEER PID PORT WORKLOAD FILE RATE
  local peer=$1 pid=$2 port=$3 w=$4 file=$5 rate=$6 o=$run/$1/$4.txt
  local up0 t0 up1 t1 n
  up0=$(upstream); t0=$(cpu_ticks "$pid")
  local perf_pid=
  if [ "${PERF:-}" = "$peer" ]; then   # PERF=NAME: a flat CPU profile of that resolver per workload
    perf record -q -F 1999 -p "$pid" -o "$run/$peer/perf-$w.data" > /dev/null 2>&1 & perf_pid=$!
  fi
  if under_callgrind "$peer"; then callgrind_control -z "$pid" > /dev/null; fi
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$file" -n 1 -Q "$rate" -t 5 -c 10 -q 10000 -v > "$o" 2>&1 || true
  up1=$(upstream); t1=$(cpu_ticks "$pid")
  local ir=
  if under_callgrind "$peer"; then   # dump the counts of this workload: cg.out.N
    local before; before=$(find "$run/$peer" -maxdepth 1 -name 'cg.out.*' | wc -l)
    callgrind_control -d "$w" "$pid" > /dev/null
    local dump=$run/$peer/cg.out.$((before + 1))
    for _ in $(seq 1 50); do grep -q '^summary:' "$dump" 2> /dev/null && break; sleep 0.2; done
    ir=$(awk '/^summary:/ {print $2; exit}' "$dump")
  fi
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
  n=$(awk '/Queries completed:/ {print $3}' "$o")
  read -r qps lost sf <<< "$(awk '/Queries per second:/ {q=$4} /Queries lost:/ {l=$3}
     /Response codes:/ {if (match($0, /SERVFAIL [0-9]+/)) s=substr($0, RSTART+9, RLENGTH-9)}
     END {print q+0, l+0, s+0}' "$o")"
  read -r p50 p99 <<< "$(awk '$1==">" && NF==5 && $5 ~ /^[0-9.]+$/ {print $5*1000}' "$o" | sort -g |
     awk '{v[NR]=$1} END {if (!NR) {print "nan nan"; exit}; a=int(NR*.5); b=int(NR*.99); if (a<1) a=1; if (b<1) b=1; printf "%.1f %.1f\n", v[a], v[b]}')"
  local hz; hz=$(getconf CLK_TCK)
  record "$peer" "$w" qps "$qps"; record "$peer" "$w" lost "$lost"; record "$peer" "$w" servfail "$sf"
  record "$peer" "$w" p50_ms "$p50"; record "$peer" "$w" p99_ms "$p99"
  record "$peer" "$w" cpu_s_per_1000 "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${n:-0}" 'BEGIN{printf "%.3f", n ? t/hz/n*1000 : 0}')"
  if [ -n "$ir" ]; then
    record "$peer" "$w" instructions_per_query "$(awk -v i="$ir" -v n="${n:-0}" 'BEGIN{printf "%.0f", n ? i/n : 0}')"
  fi
  record "$peer" "$w" upstream_per_query "$(awk -v u=$((up1 - up0)) -v n="${n:-0}" 'BEGIN{printf "%.2f", n ? u/n : 0}')"
  log "  $peer $w: $qps qps, lost $lost, SERVFAIL $sf, p50 $p50 ms, p99 $p99 ms"
}

port=5400
for peer in $PEERS; do
  port=$((port + 1))
  log "$peer on 127.0.0.1:$port"
  start_peer "$peer" "$port" || continue
  for r in $RATES; do measure "$peer" "$PEER_PID" "$port" "unique-$r" "$run/q-unique-$r.txt" "$r"; done
  record "$peer" all rss_mb "$(rss_mb "$PEER_PID")"
  measure "$peer" "$PEER_PID" "$port" zipf "$run/q-zipf.txt" "${RATES%% *}"
  kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true
done

python3 - "$raw" "$PEERS" > "$out/results.md" <<'PY'
import sys, collections
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    p, w, m, v = line.rstrip("\n").split("\t")
    rows[(w, m)][p] = v
peers = sys.argv[2].split()
print("| workload | metric | " + " | ".join(peers) + " |")
print("|---|---|" + "---|" * len(peers))
for (w, m) in sorted(rows):
    print(f"| {w} | {m} | " + " | ".join(rows[(w, m)].get(p, "-") for p in peers) + " |")
PY
cat "$out/results.md"
