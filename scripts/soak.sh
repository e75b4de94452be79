#!/usr/bin/env bash
# Soak: fanzha under mixed load for a bounded time, on loopback only, in a
# throw-away user + mount namespace (the spool is a small tmpfs that fills up).
#
# Usage: scripts/soak.sh [MINUTES]        (default 15; OUT=target/soak)
#
# Load, all at once: dnsperf at RATE qps (blocked, cached, uncached names), a
# sender of malformed packets, TCP clients that connect and drip frames that get no
# answer, a list change every 10 s, SIGHUP every 30 s, and a platform that cycles
# up → 500 → 401 → hanging → up every 20 s. Recorded every 5 s: RSS, open files,
# answered and unanswered queries, events queued / sent / dropped, spool bytes.
#
# Passes when: RSS and open files are flat after warm-up (the last third within 10 %
# of the second third's mean), dnsperf lost no query, the process never restarted,
# and after the platform is left up, every hit fanzha queued arrived at the platform
# (events by id, each standing for its `count` of hits) or is counted as dropped. RSS grows until the events kept in
# memory while the spool's disk is full reach their cap (100,000): a soak shorter
# than about 10 minutes measures that warm-up, not a leak. Writes OUT/soak.tsv, OUT/soak.md and
# OUT/soak.png.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
minutes=${1:-15}
out=${OUT:-$repo/target/soak}
rate=${RATE:-2000}
if [ "${IN_SOAK_NS:-0}" != 1 ]; then
  pkgs=(dnsperf python3 python3-matplotlib util-linux)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi
  (cd "$repo" && cargo build --release -q)
  rm -rf "$out"; mkdir -p "$out"
  exec unshare -Urm env IN_SOAK_NS=1 OUT="$out" bash "$0" "$minutes"
fi

run=$out/run; mkdir -p "$run/lists" "$run/spool"
mount -t tmpfs -o size=2m tmpfs "$run/spool"
bin=$repo/target/release/fanzha
secs=$((minutes * 60))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- the upstream (answers everything, A 192.0.2.1) and the flapping platform ----
python3 - "$run" <<'PY' &
import socket, struct, sys, threading, time, http.server, json, gzip, os
run = sys.argv[1]
def upstream():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 5395))
    while True:
        q, a = s.recvfrom(4096)
        if len(q) < 12: continue
        i = 12
        while i < len(q) and q[i]: i += q[i] + 1
        qend = i + 5
        r = q[:2] + b'\x81\x80' + q[4:6] + b'\x00\x01\x00\x00\x00\x00' + q[12:qend]
        r += b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01'
        s.sendto(r, a)
threading.Thread(target=upstream, daemon=True).start()
ids, lock = {}, threading.Lock()
modes = [200, 500, 401, 0]
start = time.time()
def mode():
    if os.path.exists(f'{run}/platform-up'): return 200
    return modes[int((time.time() - start) // 20) % len(modes)]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        m = mode()
        if m == 0:
            time.sleep(40); return
        if m == 200:
            # An event stands for `count` hits (the same client and rule within one
            # flush are folded, even with dedup_window = 0): hits are what fanzha
            # counts as queued.
            with lock:
                for e in json.loads(gzip.decompress(body)):
                    if e['id'] not in ids:
                        ids[e['id']] = e.get('count', 1)
                hits = sum(ids.values())
            with open(f'{run}/platform-ids.tmp', 'w') as f: f.write(str(hits))
            os.replace(f'{run}/platform-ids.tmp', f'{run}/platform-ids')
        self.send_response(m); self.send_header('content-length', '0'); self.end_headers()
http.server.ThreadingHTTPServer(('127.0.0.1', 5398), H).serve_forever()
PY
pids+=($!)

# ---- fanzha ----
cp "$repo"/blocklists/*.txt "$run/lists/"
cat > "$run/fanzha.toml" <<TOML
[server]
listen = ["127.0.0.1:5397"]
state_dir = "$run/state"
threads = 1
tcp_idle_timeout = 5
[resolver]
mode = "forward"
upstreams = ["udp://127.0.0.1:5395"]
[blocklist]
dirs = ["$run/lists"]
allow_dirs = []
debounce_ms = 500
[warnpage]
listen = []
[ops]
listen = "127.0.0.1:5396"
[report]
url = "http://127.0.0.1:5398/hits"
secret = "soak-secret-0123456789"
appliance = "soak"
spool_dir = "$run/spool"
spool_max_bytes = 8388608
dedup_window = 0
max_backoff = 5
TOML
RUST_LOG=warn "$bin" serve --config "$run/fanzha.toml" > "$run/fanzha.log" 2>&1 &
fpid=$!; pids+=($fpid)
for _ in $(seq 1 100); do curl -sf 127.0.0.1:5396/readyz >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf 127.0.0.1:5396/readyz >/dev/null || { log "fanzha did not start"; cat "$run/fanzha.log"; exit 1; }

# ---- queries: blocked (from the lists), cached (a few names), uncached (unique) ----
python3 - "$run" "$repo/blocklists" <<'PY'
import sys, glob, random
run, lists = sys.argv[1], sys.argv[2]
blocked = [l.split()[-1] for f in glob.glob(lists + '/*.txt') for l in open(f)
           if l.strip() and not l.startswith(('#', '!'))]
rnd = random.Random(7)
with open(run + '/queries.txt', 'w') as f:
    for i in range(200000):
        r = rnd.random()
        if r < 0.3: f.write(f'{rnd.choice(blocked)} A\n')
        elif r < 0.8: f.write(f'cached{rnd.randrange(50)}.example A\n')
        else: f.write(f'u{i}.uncached.example A\n')
PY
dnsperf -s 127.0.0.1 -p 5397 -d "$run/queries.txt" -Q "$rate" -l "$secs" -c 20 -q 500 -t 5 -S 5 \
  > "$run/dnsperf.txt" 2>&1 &
dpid=$!; pids+=($dpid)

# ---- malformed packets and dripping TCP clients ----
python3 - "$secs" <<'PY' &
import socket, struct, sys, time, random, threading
end = time.time() + int(sys.argv[1])
def malformed():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r = random.Random(1)
    while time.time() < end:
        s.sendto(bytes(r.randrange(256) for _ in range(r.randrange(1, 80))), ('127.0.0.1', 5397))
        time.sleep(0.01)
def drip():
    resp = struct.pack('>HHHHHH', 7, 0x8180, 0, 0, 0, 0)
    frame = struct.pack('>H', len(resp)) + resp
    while time.time() < end:
        try:
            c = socket.create_connection(('127.0.0.1', 5397), timeout=2)
            while time.time() < end:
                c.sendall(frame); time.sleep(1)
        except OSError:
            time.sleep(0.5)
threading.Thread(target=malformed, daemon=True).start()
for _ in range(40): threading.Thread(target=drip, daemon=True).start()
while time.time() < end: time.sleep(1)
PY
pids+=($!)

# ---- list changes every 10 s, SIGHUP every 30 s, samples every 5 s ----
metric() { curl -s 127.0.0.1:5396/metrics | awk -v k="$1" '$1==k {print $2; f=1} END {if (!f) print 0}'; }
printf 't\trss_kb\tfds\tqueued\tsent\tdropped\tspool_bytes\n' > "$out/soak.tsv"
t0=$(date +%s)
while kill -0 "$dpid" 2>/dev/null; do
  t=$(( $(date +%s) - t0 ))
  if (( t % 10 == 0 )); then echo "soak$t.example.invalid" >> "$run/lists/loan.txt"; fi
  if (( t % 30 == 0 && t > 0 )); then kill -HUP "$fpid"; fi
  if (( t % 5 == 0 )); then
    kill -0 "$fpid" || { log "fanzha died"; exit 1; }
    dropped=0
    for o in dropped_cap dropped_full dropped_spool dead_letter; do
      d=$(metric "fanzha_report_events_total{outcome=\"$o\"}"); dropped=$((dropped + ${d%.*}))
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$(awk '/VmRSS/ {print $2}' /proc/$fpid/status)" \
      "$(ls /proc/$fpid/fd | wc -l)" "$(metric 'fanzha_report_events_total{outcome="queued"}')" \
      "$(metric 'fanzha_report_events_total{outcome="sent"}')" "$dropped" \
      "$(metric fanzha_report_spool_bytes)" >> "$out/soak.tsv"
  fi
  sleep 1
done
wait "$dpid" || true

# ---- drain: the platform stays up; everything queued must arrive or be counted ----
touch "$run/platform-up"
counted() {   # events queued, arrived at the platform, counted as dropped
  queued=$(metric 'fanzha_report_events_total{outcome="queued"}'); queued=${queued%.*}
  dropped=0
  for o in dropped_cap dropped_full dropped_spool dead_letter; do
    d=$(metric "fanzha_report_events_total{outcome=\"$o\"}"); dropped=$((dropped + ${d%.*}))
  done
  arrived=$(cat "$run/platform-ids" 2>/dev/null || echo 0)
}
for _ in $(seq 1 300); do
  counted
  (( arrived + dropped >= queued )) && break
  sleep 1
done
lost=$(awk '/Queries lost:/ {print $3}' "$run/dnsperf.txt")
completed=$(awk '/Queries completed:/ {print $3}' "$run/dnsperf.txt")

# Debian's python3 (its matplotlib draws the plot), whatever python3 is first on PATH.
py=/usr/bin/python3; [ -x "$py" ] || py=python3
"$py" - "$out" "$queued" "$arrived" "$dropped" "${lost:-?}" "${completed:-?}" "$minutes" <<'PY'
import sys, csv
out, queued, arrived, dropped, lost, completed, minutes = sys.argv[1:]
rows = list(csv.DictReader(open(out + '/soak.tsv'), delimiter='\t'))
t = [int(r['t']) for r in rows]
def flat(key, slack=0.0):
    # The last third within 10 % (or `slack` units) of the second third's mean.
    v = [float(r[key]) for r in rows]
    n = len(v) // 3
    mid, last = v[n:2 * n], v[2 * n:]
    if not mid or not last: return True, 0.0
    m = sum(mid) / len(mid)
    worst = max(abs(x - m) for x in last)
    return worst <= max(0.10 * m, slack), (worst / m if m else 0.0)
# A few dozen files, with TCP clients reconnecting: 8 either way is flat.
ok_rss, d_rss = flat('rss_kb'); ok_fds, d_fds = flat('fds', 8)
queued, arrived, dropped = int(float(queued)), int(arrived), int(dropped)
ok_events = arrived + dropped >= queued
ok_lost = lost == '0'
try:
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    ax[0].plot(t, [float(r['rss_kb']) / 1024 for r in rows]); ax[0].set_ylabel('RSS MB')
    ax[1].plot(t, [int(r['fds']) for r in rows]); ax[1].set_ylabel('open files')
    ax[2].plot(t, [float(r['queued']) for r in rows], label='queued')
    ax[2].plot(t, [float(r['sent']) for r in rows], label='sent')
    ax[2].plot(t, [float(r['spool_bytes']) / 1024 for r in rows], label='spool KiB')
    ax[2].legend(); ax[2].set_xlabel('seconds'); ax[2].set_ylabel('events')
    fig.suptitle(f'fanzha soak, {minutes} min'); fig.tight_layout(); fig.savefig(out + '/soak.png', dpi=80)
except ImportError:
    pass
with open(out + '/soak.md', 'w') as f:
    f.write('| check | result |\n|---|---|\n')
    f.write(f'| RSS flat after warm-up (last third vs second third) | {"yes" if ok_rss else "NO"}, max deviation {d_rss:.1%} |\n')
    f.write(f'| open files flat | {"yes" if ok_fds else "NO"}, max deviation {d_fds:.1%} |\n')
    f.write(f'| queries completed / lost (dnsperf) | {completed} / {lost} |\n')
    f.write(f'| events queued / arrived by id / counted dropped | {queued} / {arrived} / {dropped} |\n')
print(open(out + '/soak.md').read())
sys.exit(0 if ok_rss and ok_fds and ok_events and ok_lost else 1)
PY
