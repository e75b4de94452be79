#!/usr/bin/env bash
# Encrypted DNS, side by side in one run: fanzha's DNS over TLS and DNS over HTTPS
# against Unbound's (DoT, DoH) and dnsdist's (DoT, DoH), each server on one core
# (taskset CPU 1), dnsperf on the other (CPU 0).
#
# The workload is the transport's own cost: blocked names, which every server
# answers itself (fanzha from its list, Unbound from a local zone, dnsdist with a
# spoof rule), over long-lived connections: DoT with dnsperf (-c 50, 1,000 names),
# DoH with h2load (HTTP/2, 50 connections, 20 streams each, GET of 20 names;
# dnsperf 2.10's DoH keeps one answer per read and loses the rest, so it measures
# itself). For each server and transport: queries per second, and the server's CPU
# per query (its utime + stime from /proc over the queries answered). Then the TLS
# handshake on each DoT port with `openssl s_time`: full TLS 1.3 handshakes, and
# resumed ones (TLS 1.2 session ids: s_time closes before a TLS 1.3 ticket comes),
# per second and the server's CPU per handshake.
#
# Usage: benches/server/encrypted.sh      (SECONDS=10, CLIENTS=50; OUT=target/bench)
# Needs the Debian packages below (installed when missing) and a release build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/common.sh"
need_packages unbound dnsdist dnsperf nghttp2-client openssl knot-dnsutils
(cd "$repo" && cargo build --release -q)
secs=${SECONDS_EACH:-10}
clients=${CLIENTS:-50}
out=${OUT:-$repo/target/bench}/encrypted
rm -rf "$out"
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout key.pem -out cert.pem -subj /CN=dns.bench.test \
  -addext "subjectAltName=DNS:dns.bench.test,DNS:*.dns.bench.test,IP:127.0.0.1" 2>/dev/null
chmod 644 key.pem
mkdir -p lists
{ echo "# category: loan"; for i in $(seq 0 999); do echo "b$i.bench-scam.test"; done; } > lists/bench.txt
for i in $(seq 0 999); do echo "b$(( (i * 7919) % 1000 )).bench-scam.test A"; done > queries.txt
# DoH GET paths of 20 of them (ID 0, RFC 8484 §4.1).
python3 - > doh-paths.txt <<'PY'
import base64, struct
for i in range(20):
    name = f"b{i * 37}.bench-scam.test"
    q = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    print("/dns-query?dns=" + base64.urlsafe_b64encode(q).decode().rstrip("="))
PY

cat > fanzha.toml <<EOF
[server]
listen = ["127.0.0.1:5400"]
listen_tls = ["127.0.0.1:8853"]
listen_https = ["127.0.0.1:8443"]
tls_cert = "cert.pem"
tls_key = "key.pem"
acl = ["127.0.0.0/8"]
threads = 1
tcp_max_connections = 4096
tcp_per_client = 4096
place_rate_limit = 0
state_dir = "state"
[blocklist]
dirs = ["lists"]
allow_dirs = []
[resolver]
mode = "forward"
upstreams = ["udp://127.0.0.1:9"]
[sinkhole]
ipv4 = "10.53.53.53"
ipv6 = "none"
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:9400"
EOF

cat > unbound.conf <<EOF
server:
    username: ""
    chroot: ""
    directory: "$out"
    pidfile: "$out/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    interface: 127.0.0.1@9853
    interface: 127.0.0.1@9443
    tls-port: 9853
    https-port: 9443
    tls-service-key: "$out/key.pem"
    tls-service-pem: "$out/cert.pem"
    access-control: 127.0.0.0/8 allow
    incoming-num-tcp: 4096
    do-not-query-localhost: yes
    local-zone: "bench-scam.test." redirect
    local-data: "bench-scam.test. 60 IN A 10.53.53.53"
remote-control:
    control-enable: no
EOF

cat > dnsdist.conf <<EOF
setSecurityPollSuffix("")
setLocal("127.0.0.1:10053")
addTLSLocal("127.0.0.1:10853", "$out/cert.pem", "$out/key.pem")
addDOHLocal("127.0.0.1:10443", "$out/cert.pem", "$out/key.pem", "/dns-query")
newServer({address = "127.0.0.1:9", healthCheckMode = "down"})
addAction(AllRule(), SpoofAction("10.53.53.53"))
EOF

pid=
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
stop() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }; pid=; }
trap stop EXIT
start() {  # start NAME: the server on CPU 1, waiting for its DoT port
  case $1 in
    fanzha) taskset -c 1 "$repo/target/release/fanzha" serve -c fanzha.toml > fanzha.log 2>&1 & pid=$!; dot=8853 doh=8443 ;;
    unbound) taskset -c 1 unbound -d -c unbound.conf > unbound.log 2>&1 & pid=$!; dot=9853 doh=9443 ;;
    dnsdist) taskset -c 1 dnsdist --supervised --disable-syslog -C dnsdist.conf > dnsdist.log 2>&1 & pid=$!; dot=10853 doh=10443 ;;
  esac
  for _ in $(seq 100); do
    if kdig +tls +tls-ca=cert.pem +tls-hostname=dns.bench.test @127.0.0.1 -p "$dot" b1.bench-scam.test +short 2>/dev/null | grep -q 10.53.53.53; then
      return
    fi
    sleep 0.1
  done
  echo "$1 did not answer on its DoT port" >&2; cat "$1.log" >&2; exit 1
}
hz=$(getconf CLK_TCK)
run() {  # run NAME MODE PORT: "qps cpu_us_per_query"
  local before after done qps
  before=$(cpu_ticks)
  if [ "$2" = dot ]; then
    taskset -c 0 dnsperf -m dot -s 127.0.0.1 -p "$3" -d queries.txt -c "$clients" -l "$secs" -q 1000 -t 5 \
      > "$1-$2.txt" 2>&1
    after=$(cpu_ticks)
    done=$(awk '/Queries completed:/ {print $3}' "$1-$2.txt")
    qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$1-$2.txt")
  else
    taskset -c 0 h2load -c "$clients" -m 20 -D "$secs" $(sed "s#^#https://127.0.0.1:$3#" doh-paths.txt) \
      > "$1-$2.txt" 2>&1
    after=$(cpu_ticks)
    done=$(awk '/^status codes:/ {print $3}' "$1-$2.txt")
    qps=$(python3 -c "print(round(${done:-0} / $secs))")
  fi
  python3 -c "print('$qps', round(($after - $before) / $hz * 1e6 / max(1, ${done:-0}), 2))"
}
handshakes() {  # handshakes NAME PORT MODE...: "per_second cpu_us_per_handshake"
  local before after n port=$2
  shift 2
  before=$(cpu_ticks)
  n=$(taskset -c 0 openssl s_time -connect "127.0.0.1:$port" "$@" -time 5 2>/dev/null \
      | awk '/connections in .* real seconds/ {print $1; exit}')
  after=$(cpu_ticks)
  python3 -c "print(round(${n:-0} / 5), round(($after - $before) / $hz * 1e6 / max(1, ${n:-0}), 1))"
}

{
  echo "## Encrypted DNS, one core each ($(date -u +%F), $(nproc) cores; dnsperf -c $clients, ${secs} s per cell)"
  echo
  echo "| server | DoT qps | DoT CPU µs/query | DoH qps | DoH CPU µs/query | full TLS 1.3 handshakes/s | CPU µs/full | resumed (1.2)/s | CPU µs/resumed |"
  echo "|---|---|---|---|---|---|---|---|---|"
} > table.md
for s in fanzha unbound dnsdist; do
  start "$s"
  read -r dq dc < <(run "$s" dot "$dot")
  read -r hq hc < <(run "$s" doh "$doh")
  read -r fn fc < <(handshakes "$s" "$dot" -new -tls1_3)
  read -r rn rc < <(handshakes "$s" "$dot" -reuse -tls1_2)
  stop
  echo "| $s | $dq | $dc | $hq | $hc | $fn | $fc | $rn | $rc |" >> table.md
done
cat table.md
