#!/usr/bin/env bash
# Run every test of fanzha: install what the tests need (Debian packages via apt-get
# when missing), then formatting, lints, unit, integration and CLI tests.
# Usage: scripts/test.sh        (CI calls this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: dig (README checks), chromium and CJK fonts (the
# warning page in a real browser), prometheus and promtool (dashboard and rules),
# systemd (systemd-analyze for the unit), python3 (the layout check), iproute2 and
# util-linux (ip and unshare: tests in throw-away namespaces), fstrm-bin and
# dnstap-ldns (a real dnstap collector and decoder for the query log), nginx-light (the
# signed feed served over HTTPS), minisign (the feed's signatures checked by the tool)
# and dnsdist (the balancer in front of three appliances).
packages=(dnsutils chromium fonts-noto-cjk prometheus systemd python3 iproute2 util-linux fstrm-bin dnstap-ldns nginx-light minisign dnsdist)
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
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
echo "== layout (lib.rs # Layout: no import back up, no circle, no 100-line function)"
python3 scripts/check-layout.py
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== benches build"
cargo bench --no-run -q
echo "== the patched hickory-net's DNSSEC unit tests (vendor/hickory-net/PATCHES.md)"
CARGO_TARGET_DIR=$PWD/target cargo test -q --manifest-path vendor/hickory-net/Cargo.toml --features dnssec-ring --lib dnssec::
echo "== cargo test"
cargo test --all-features -- --test-threads="${TEST_THREADS:-2}"

echo "== systemd unit"
systemd-analyze verify systemd/fanzha.service 2>&1 | grep -v "Command /usr/bin/fanzha is not executable" || true
score=$(systemd-analyze security --offline=yes systemd/fanzha.service 2>/dev/null | sed -n 's/.*Overall exposure level for fanzha.service: \([0-9.]*\).*/\1/p')
echo "exposure level: ${score:-unknown}"
if [ -z "$score" ] || awk -v s="$score" 'BEGIN{exit !(s > 2.0)}'; then
  echo "ERROR: systemd-analyze security exposure ${score:-unknown} is above 2.0" >&2
  exit 1
fi

echo "== Debian package"
if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install cargo-deb --locked --quiet
fi
deb=$(cargo deb --quiet 2>/dev/null | tail -n 1)
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
scripts/check-deb-scripts.sh "$deb"
echo "== package unpacked and checked in a temporary root"

# Every parser's fuzz target for a bounded time (FUZZ_SECONDS each; 20 by default, so
# that the whole suite stays well under CI's budget). A crash fails the run.
echo "== fuzzing"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
echo "== all tests passed"
