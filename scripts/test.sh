#!/usr/bin/env bash
# Run every test of fanzha: install what the tests need (Debian packages via apt-get
# when missing), then formatting, lints, unit, integration and CLI tests.
# Usage: scripts/test.sh        (CI calls this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: dig (README checks), chromium and CJK fonts (the
# warning page in a real browser).
packages=(dnsutils chromium fonts-noto-cjk)
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
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== benches build"
cargo bench --no-run -q
echo "== cargo test"
cargo test --all-features -- --test-threads="${TEST_THREADS:-2}"
