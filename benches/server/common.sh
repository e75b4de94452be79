# Sourced by the benchmark scripts: the Debian packages they need, and an NSD
# authoritative server for their zones.

# need_packages PKG... : install the missing ones with apt-get (one update, one install).
need_packages() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}
#
# nsd_serve DIR ZONE=FILE... : NSD on 127.0.0.1:5390 (one process, no rate limit,
# no privilege drop), its files in DIR, serving each ZONE from FILE; pinned to CPU 0
# beside the load generator. Its PID is added to the caller's `pids` array.
nsd_serve() {
  local dir=$1 z
  shift
  {
    cat <<CONF
server:
    ip-address: 127.0.0.1@5390
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "$dir/nsd.zonelist"
    xfrdfile: "$dir/nsd.xfrd"
    xfrdir: "$dir"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 0
    rrl-ratelimit: 0
    zonesdir: "$dir"
remote-control:
    control-enable: no
CONF
    for z in "$@"; do
      printf 'zone:\n    name: "%s"\n    zonefile: "%s"\n' "${z%%=*}" "${z#*=}"
    done
  } > "$dir/nsd.conf"
  taskset -c 0 nsd -d -c "$dir/nsd.conf" > "$dir/nsd.out" 2>&1 &
  pids+=($!)
}
