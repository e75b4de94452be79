#!/usr/bin/env bash
# Run every test of fanzha: install what the tests need (Debian packages via apt-get
# when missing), then formatting, lints, unit, integration and CLI tests.
# Usage: scripts/test.sh        (CI calls this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: dig (the README's example), chromium and CJK fonts (the
# warning page in a real browser), prometheus and promtool (dashboard and rules),
# systemd (systemd-analyze for the unit), python3 (the layout check), iproute2 and
# util-linux (ip and unshare: tests in throw-away namespaces), fstrm-bin and
# dnstap-ldns (a real dnstap collector and decoder for the query log), nginx-light (the
# signed feed served over HTTPS), minisign (the feed's signatures checked by the tool)
# dnsdist (the balancer in front of three appliances), man-db (the packaged man
# pages read as `man fanzha.toml` would), postgresql (the district platform's store,
# started by its tests in a temporary directory), chromium-driver (the platform's
# pages driven in a real browser), and libsqlite3-dev with pkg-config (the platform
# links Debian's SQLite, as its package then depends on libsqlite3-0), and
# knot-dnsutils (kdig, a real DNS over TLS client).
packages=(dnsutils chromium fonts-noto-cjk prometheus systemd python3 iproute2 util-linux fstrm-bin dnstap-ldns nginx-light minisign dnsdist man-db postgresql chromium-driver libsqlite3-dev pkg-config knot-dnsutils libnss3-tools curl openssl)

# The suite leaves the host as it found it: no service enabled that was not, no
# process of its own left running, the working tree as it was. Taken now, checked
# at the end.
enabled_units() { systemctl list-unit-files --state=enabled --no-legend 2>/dev/null | awk '{print $1}' | sort; }
suite_procs() {
  ps -e -o pid=,comm= | awk '$2 ~ /^(nginx|dnsdist|prometheus|promtool|chrom|headless_shell|fstrm_capture|fanzha|hostile_auth|dnsperf|postgres)/ {print $1, $2}' | sort
}
installed_packages() { dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 2>/dev/null | awk '$1 == "ii" {print $2}' | sort; }
units_before=$(enabled_units)
procs_before=$(suite_procs)
tree_before=$(git status --porcelain)
packages_before=$(installed_packages)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"; }; then
    echo "ERROR: could not install ${missing[*]}; the tests need them" >&2
    exit 1
  fi
  # Debian enables (and under systemd starts) a package's services on install:
  # nginx on :80, dnsdist on 127.0.0.1:53, prometheus, postgresql. The tests start instances of
  # their own; the host keeps none of those it did not have.
  new_packages=$(comm -13 <(echo "$packages_before") <(installed_packages))
  units=$(for p in $new_packages; do dpkg-query -L "$p"; done |
    grep -E '/systemd/system/[^/]+\.(service|socket|timer)$' | xargs -r -n1 basename | sort -u)
  for unit in $units; do
    $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || $sudo systemctl disable "$unit" >/dev/null 2>&1 || true
  done
fi

# Each step is announced with the time spent so far, so a slow step shows itself.
# In CI (a fresh clone, built once), incremental compilation only costs time.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
step() { echo "== $* (at ${SECONDS}s)"; }

step "cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
# The fuzz crate depends on fanzha: a dependency change must come with its lock
# file, or the fuzz build rewrites a tracked file (found here, not at the end).
if ! (cd fuzz && cargo +nightly metadata --locked --format-version 1 >/dev/null); then
  echo "ERROR: fuzz/Cargo.lock is stale: run (cd fuzz && cargo +nightly tree) and commit it" >&2
  exit 1
fi
step "layout (lib.rs # Layout: no import back up, no circle, no 100-line function)"
python3 scripts/check-layout.py
python3 scripts/check-layout.py platform/src
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "the patched hickory-net's DNSSEC unit tests (vendor/hickory-net/PATCHES.md)"
CARGO_TARGET_DIR=$PWD/target cargo test -q --manifest-path vendor/hickory-net/Cargo.toml --features dnssec-ring --lib dnssec::
step "cargo test (the appliance: unit tests, tests/it, tests/alloc.rs, tests/cache_memory.rs, doc tests; the platform: unit tests, platform/tests/it)"
# Four at a time on two cores: most integration tests wait on sockets, timeouts and
# child processes (138 s at two, 84 s at four, user CPU 58 s either way).
cargo test --workspace --all-features -- --test-threads="${TEST_THREADS:-4}"

# One release build, which cargo deb finds up to date. The benches are not built
# here: clippy --all-targets has type-checked them, and building them (criterion in
# release) would take a quarter of the suite's time; the benchmark scripts build them.
step "release build"
cargo build --release --workspace -q

step "systemd units"
for unit in fanzha fanzha-platform; do
  systemd-analyze verify "systemd/$unit.service" 2>&1 | grep -v "Command /usr/bin/$unit is not executable" || true
  score=$(systemd-analyze security --offline=yes "systemd/$unit.service" 2>/dev/null | sed -n "s/.*Overall exposure level for $unit.service: \([0-9.]*\).*/\1/p")
  echo "$unit exposure level: ${score:-unknown}"
  if [ -z "$score" ] || awk -v s="$score" 'BEGIN{exit !(s > 2.0)}'; then
    echo "ERROR: systemd-analyze security exposure of $unit ${score:-unknown} is above 2.0" >&2
    exit 1
  fi
done

step "Debian package"
if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install cargo-deb --locked --quiet
fi
# --no-build: the release build above made both binaries in one workspace build; a
# build of one package alone would unify features differently and build again.
deb=$(cargo deb --no-build --quiet 2>/dev/null | tail -n 1)
[ -f "$deb" ] || { echo "ERROR: cargo deb built no package" >&2; exit 1; }
echo "built $deb"
# Checked without installing it: this script never changes the host it runs on (an
# operator may run it on an appliance), so the package is unpacked into a temporary
# root and its files, config and unit are checked there.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb --info "$deb" >/dev/null
for f in usr/bin/fanzha etc/fanzha/fanzha.toml usr/lib/systemd/system/fanzha.service \
         usr/share/fanzha/grafana/fanzha-dashboard.json usr/share/fanzha/prometheus/fanzha-rules.yml \
         usr/share/fanzha/dnsdist/dnsdist.conf; do
  [ -e "$root/$f" ] || { echo "ERROR: the package lacks /$f" >&2; exit 1; }
done
# The packaged config names /etc/fanzha paths and the example sinkhole 10.0.0.53 (an
# operator sets the appliance's own); check it and look a sample name up with those
# paths moved into the temporary root and the sinkhole on loopback (check-config
# refuses addresses this machine does not have).
sed -e "s#/etc/fanzha#$root/etc/fanzha#g" -e "s#/var/lib/fanzha#$root/var/lib/fanzha#g" \
  -e "s#10\.0\.0\.53#127.0.0.1#g" "$root/etc/fanzha/fanzha.toml" > "$root/fanzha.toml"
"$root/usr/bin/fanzha" check-config "$root/fanzha.toml"
# The packaged unit is the one verified and scored above.
cmp "$root/usr/lib/systemd/system/fanzha.service" systemd/fanzha.service
set +e
"$root/usr/bin/fanzha" lookup --config "$root/fanzha.toml" www.ezloantw.com >/dev/null
rc=$?
set -e
[ "$rc" -eq 1 ] || { echo "ERROR: the packaged config does not block a sample-list name (lookup exit $rc)" >&2; exit 1; }
# The man pages, found and rendered as `man fanzha.toml` finds them once installed.
for page in fanzha fanzha-ctl fanzha.toml; do
  MANPATH="$root/usr/share/man" man -P cat "$page" 2>/dev/null | grep -q "fanzha" ||
    { echo "ERROR: man $page does not render from the package" >&2; exit 1; }
done
MANPATH="$root/usr/share/man" man -P cat fanzha.toml 2>/dev/null | grep -q "tcp_idle_timeout" ||
  { echo "ERROR: man fanzha.toml lacks the keys" >&2; exit 1; }
scripts/check-deb-scripts.sh "$deb"
# The district platform's package, checked the same way: its files, its unit, and its
# config checked with the state directory moved into the temporary root.
pdeb=$(cargo deb -p fanzha-platform --no-build --quiet 2>/dev/null | tail -n 1)
[ -f "$pdeb" ] || { echo "ERROR: cargo deb built no fanzha-platform package" >&2; exit 1; }
echo "built $pdeb"
proot="$root/platform"
mkdir -p "$proot"
dpkg-deb -x "$pdeb" "$proot"
for f in usr/bin/fanzha-platform etc/fanzha-platform/platform.toml usr/lib/systemd/system/fanzha-platform.service \
         usr/share/doc/fanzha-platform/platform.md usr/share/fanzha-platform/grafana/fanzha-platform-postgres.json; do
  [ -e "$proot/$f" ] || { echo "ERROR: the platform package lacks /$f" >&2; exit 1; }
done
cmp "$proot/usr/lib/systemd/system/fanzha-platform.service" systemd/fanzha-platform.service
sed -e "s#/var/lib/fanzha-platform#$proot/var/lib/fanzha-platform#g" "$proot/etc/fanzha-platform/platform.toml" > "$proot/platform.toml"
"$proot/usr/bin/fanzha-platform" --config "$proot/platform.toml" check-config
scripts/check-deb-scripts.sh "$pdeb"
echo "== packages unpacked and checked in a temporary root"

# Every parser's fuzz target for a bounded time (FUZZ_SECONDS each; 10 by default, so
# that the whole suite stays well under CI's budget), built without a sanitizer
# (FUZZ_SANITIZER=none: the build takes 100 s instead of 140, and the targets are safe
# Rust over safe parsers; long runs use AddressSanitizer). A crash fails the run.
step "fuzzing"
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none} scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

step "the host as found"
left=0
units=$(comm -13 <(echo "$units_before") <(enabled_units))
if [ -n "$units" ]; then
  echo "ERROR: services enabled by the suite: $(echo $units)" >&2
  left=1
fi
sleep 1 # processes killed by the last test's clean-up are being reaped
procs=$(comm -13 <(echo "$procs_before") <(suite_procs))
if [ -n "$procs" ]; then
  echo "ERROR: processes the suite started are still running:" >&2
  echo "$procs" >&2
  left=1
fi
if [ "$(git status --porcelain)" != "$tree_before" ]; then
  echo "ERROR: the suite changed the working tree:" >&2
  git status --short >&2
  left=1
fi
[ "$left" -eq 0 ] || exit 1
echo "== all tests passed in ${SECONDS}s"
