#!/usr/bin/env bash
# Run every fuzz target (fuzz/fuzz_targets/) for a bounded time each, from the seed
# corpus in fuzz/corpus/, on the nightly toolchain; a crash fails the run and leaves
# its input in fuzz/artifacts/TARGET/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 20; FUZZ_TARGETS to pick)
# Installs cargo-fuzz (cargo install) when it is missing. What a run finds beyond the
# seeds goes to a temporary directory, so the tree keeps only the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
# Debug-assertion builds at opt-level 1 (fuzz/Cargo.toml): a few minutes to build,
# fast enough for a short run. FUZZ_SANITIZER: cargo fuzz's -s (address by default;
# none builds faster).
san=(-s "${FUZZ_SANITIZER:-address}")
cargo +nightly fuzz build --dev "${san[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in $targets; do
  mkdir -p "$work/$t"
  echo "== fuzzing $t for ${secs}s"
  if ! cargo +nightly fuzz run --dev "${san[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log" >&2
    failed+=("$t")
  else
    grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' "$work/$t.log" | tail -2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz.sh: every target ran ${secs}s without a crash"
