#!/usr/bin/env bash
# The URL proxy, side by side in one run: fanzha's relaying of a shared host's pages
# against nginx as a reverse proxy and squid as a reverse proxy (accelerator, no
# cache), each on one core (taskset CPU 1); the origin (nginx serving the host) and
# wrk on the other (CPU 0).
#
# Each proxy relays plain HTTP to the same origin over kept-alive connections
# (wrk -c 50 keeps its own alive too). For each: requests per second, the proxy's
# CPU per request (utime + stime from /proc), and latency (wrk's mean, 50th and
# 99th percentiles); the origin straight, for the latency each proxy adds. fanzha
# also answers a listed page itself (the warning page): its rate on its own.
#
# Usage: benches/server/urlproxy.sh      (SECONDS_EACH=10, CLIENTS=50, PAGE=1024
# bytes; OUT=target/bench). Needs the Debian packages below (installed when
# missing) and a release build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
need_packages nginx-light squid wrk nsd curl
(cd "$repo" && cargo build --release -q)
secs=${SECONDS_EACH:-10}
clients=${CLIENTS:-50}
page=${PAGE:-1024}
out=${OUT:-$repo/target/bench}/urlproxy
rm -rf "$out"
mkdir -p "$out/www/shop-2" "$out/lists" "$out/squid"
cd "$out"
origin=127.0.0.20
port=8080
host=shared.bench.test
head -c "$page" /dev/urandom | base64 -w 76 | head -c "$page" > www/shop-2/page.html

# The origin: nginx serving the shared host, on CPU 0 with the load.
cat > origin.conf <<CONF
daemon off; master_process off; worker_processes 1; pid $out/origin.pid;
error_log $out/origin.err; user root root;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen $origin:$port; root $out/www; location / { } } }
CONF
# nginx as a reverse proxy to it, with kept-alive upstream connections.
cat > rproxy.conf <<CONF
daemon off; master_process off; worker_processes 1; pid $out/rproxy.pid;
error_log $out/rproxy.err; user root root;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream origin { server $origin:$port; keepalive 64; }
  server { listen 127.0.0.1:8081;
    location / { proxy_pass http://origin; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host; proxy_buffering off; } } }
CONF
# squid as a reverse proxy (accelerator), caching nothing.
cat > squid.conf <<CONF
http_port 127.0.0.1:8082 accel defaultsite=$host vhost
cache_peer $origin parent $port 0 no-query originserver name=origin
cache_peer_access origin allow all
http_access allow all
cache deny all
cache_mem 8 MB
workers 1
pid_filename $out/squid/squid.pid
cache_log $out/squid/cache.log
access_log none
coredump_dir $out/squid
max_filedescriptors 8192
CONF
chown -R proxy squid 2>/dev/null || true
# fanzha: the host has a path rule, so its other pages are relayed; the zone that
# names the origin comes from NSD.
cat > bench.zone <<CONF
\$ORIGIN bench.test.
\$TTL 3600
@ SOA ns hostmaster 1 3600 600 86400 3600
@ NS ns
ns A 127.0.0.1
shared A $origin
CONF
echo "http://$host/shop-1/pay" > lists/urls.txt
cat > fanzha.toml <<CONF
[server]
listen = ["127.0.0.1:5400"]
threads = 1
state_dir = "state"
[blocklist]
dirs = ["lists"]
allow_dirs = []
[resolver]
mode = "forward"
upstreams = ["udp://127.0.0.1:5390"]
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:9400"
[url]
listen = ["127.0.0.1:$port"]
relay_private = ["$origin/32"]
max_connections = 8192
per_client = 8192
CONF

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "squid.*$out/squid.conf" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
nsd_serve "$out" bench.test="$out/bench.zone"
taskset -c 0 nginx -c "$out/origin.conf" -p "$out" & pids+=($!)
taskset -c 1 nginx -c "$out/rproxy.conf" -p "$out" & pids+=($!)
rproxy_pid=$!
taskset -c 1 "$repo/target/release/fanzha" serve -c fanzha.toml > fanzha.log 2>&1 & pids+=($!)
fanzha_pid=$!
taskset -c 1 squid -N -f "$out/squid.conf" > squid/out.log 2>&1 & pids+=($!)
ready=
for _ in $(seq 100); do
  if curl -sf -H "Host: $host:$port" "http://127.0.0.1:$port/shop-2/page.html" -o /dev/null \
    && curl -sf -H "Host: $host" "http://127.0.0.1:8081/shop-2/page.html" -o /dev/null \
    && curl -sf -H "Host: $host" "http://127.0.0.1:8082/shop-2/page.html" -o /dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "a proxy does not relay" >&2
  cat fanzha.log squid/cache.log rproxy.err >&2 || true
  exit 1
fi

hz=$(getconf CLK_TCK)
ticks() {  # ticks PID...: utime + stime of the processes
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
run() {  # run NAME HOSTHEADER URL PID...: "rps cpu_us_per_request mean_ms p50_ms p99_ms"
  local name=$1 hh=$2 url=$3 before after
  shift 3
  before=$(ticks "$@")
  taskset -c 0 wrk -t1 -c "$clients" -d "${secs}s" --latency -H "Host: $hh" "$url" > "$name.txt"
  after=$(ticks "$@")
  python3 - "$name.txt" "$before" "$after" "$hz" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
mean = ms(re.search(r"Latency\s+(\S+)", t).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", t).group(1))
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4]) * 1e6 / max(n, 1)
print(f"{rps:.0f} {cpu:.1f} {mean:.3f} {p50:.3f} {p99:.3f} {bad.group(1) if bad else 0}")
PY
}
squid_pids() { pgrep -f "squid.*$out/squid.conf" | tr '\n' ' '; }
{
  echo "## The URL proxy, one core each ($(date -u +%F), $(nproc) cores; wrk -c $clients, ${secs} s per row, a ${page}-byte page)"
  echo
  echo "| relaying | requests/s | proxy CPU µs/request | mean ms | p50 ms | p99 ms | not 2xx |"
  echo "|---|---|---|---|---|---|---|"
} > table.md
row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |" >> table.md; }
origin_pid=$(pgrep -f "nginx -c $out/origin.conf" | head -1)
read -r r c m a b x < <(run origin "$host" "http://$origin:$port/shop-2/page.html" "$origin_pid")
row "the origin straight (its own CPU)" "$r" "$c" "$m" "$a" "$b" "$x"
read -r r c m a b x < <(run fanzha "$host:$port" "http://127.0.0.1:$port/shop-2/page.html" "$fanzha_pid")
row fanzha "$r" "$c" "$m" "$a" "$b" "$x"
read -r r c m a b x < <(run nginx "$host" "http://127.0.0.1:8081/shop-2/page.html" "$rproxy_pid")
row "nginx $(nginx -v 2>&1 | sed 's#.*/##') reverse proxy" "$r" "$c" "$m" "$a" "$b" "$x"
# shellcheck disable=SC2046
read -r r c m a b x < <(run squid "$host" "http://127.0.0.1:8082/shop-2/page.html" $(squid_pids))
row "squid $(squid -v | awk '/Version/ {print $4; exit}') reverse proxy" "$r" "$c" "$m" "$a" "$b" "$x"
read -r r c m a b x < <(run fanzha-listed "$host:$port" "http://127.0.0.1:$port/shop-1/pay" "$fanzha_pid")
row "fanzha, the listed page (the warning page, 403)" "$r" "$c" "$m" "$a" "$b" "$x"
cat table.md
