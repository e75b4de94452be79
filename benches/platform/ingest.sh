#!/usr/bin/env bash
# The platform's ingest benchmark on both stores: starts a throw-away PostgreSQL
# (Debian's postgresql, in a temporary directory, on a loopback port, as `nobody`
# when run as root), then runs `cargo bench -p fanzha-platform --bench ingest` with
# PLATFORM_BENCH_PG set. Nothing of the host changes; the server stops at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "ERROR: PostgreSQL's server is not installed (apt-get install postgresql)" >&2; exit 1; }
dir=$(mktemp -d /tmp/fanzha-pgbench.XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then chown nobody:nogroup "$dir"; as=(runuser -u nobody --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
"${as[@]}" "$bin/initdb" -D "$dir/data" -U fanzha --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" -w start >/dev/null
"${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U fanzha fanzha
PLATFORM_BENCH_PG="postgresql://fanzha@127.0.0.1:$port/fanzha" cargo bench -p fanzha-platform --bench ingest "$@"
