#!/usr/bin/env bash
# The recursive benchmark (recursive.sh) ROUNDS times, the order of the resolvers
# turned around every round, and the median of each figure with its spread. On a
# shared or virtual machine a single run's CPU figures move by 20-30 % from one
# minute to the next (stolen time, the neighbours' load); a ratio is only worth
# quoting when it holds in the medians of interleaved rounds.
#
# Usage: benches/server/recursive-rounds.sh   (as root, like recursive.sh)
# Environment: ROUNDS (5), PEERS ("fanzha unbound"), RATES ("1000 2000"), and every
#   variable of recursive.sh (FANZHA_BIN for an A/B of two fanzha builds: name a
#   peer "fanzha@/path/to/binary"). Results: $OUT/rounds.md, $OUT/rounds.tsv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OUT:-$repo/target/bench/recursive-rounds}
ROUNDS=${ROUNDS:-5} PEERS=${PEERS:-"fanzha unbound"}
export RATES=${RATES:-"1000 2000"}
mkdir -p "$out"
all=$out/rounds.tsv; : > "$all"
read -r -a peers <<< "$PEERS"
for round in $(seq 1 "$ROUNDS"); do
  order=("${peers[@]}")
  if [ $((round % 2)) = 0 ]; then   # every other round, the other way round
    order=(); for ((i = ${#peers[@]} - 1; i >= 0; i--)); do order+=("${peers[i]}"); done
  fi
  for p in "${order[@]}"; do
    name=${p%%@*} bin=
    [ "$name" != "$p" ] && bin=${p#*@}
    # Two builds of fanzha are both called "fanzha": their directory names their path.
    log_out=$out/round$round-$name${bin:+-$(printf '%s' "$bin" | tr -c 'A-Za-z0-9._-' '_')}
    FANZHA_BIN=${bin:-${FANZHA_BIN:-}} PEERS=$name OUT=$log_out \
      bash "$here/recursive.sh" > "$log_out.log" 2>&1 || { echo "round $round $p failed: $log_out.log" >&2; exit 1; }
    awk -v p="$p" -v r="$round" -F'\t' '{print r "\t" p "\t" $2 "\t" $3 "\t" $4}' "$log_out/raw.tsv" >> "$all"
    echo "round $round $p done" >&2
  done
done
python3 - "$all" "$PEERS" > "$out/rounds.md" <<'PY'
import sys, collections, statistics
by_round = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, p, w, m, v = line.rstrip("\n").split("\t")
    try:
        by_round[(w, m, r)][p] = float(v)
    except ValueError:
        pass
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for (w, m, _), v in by_round.items():
    for p, x in v.items():
        rows[(w, m)][p].append(x)
peers = sys.argv[2].split()
print("Median of %d rounds (min-max); a ratio is the median of the rounds' own ratios\n"
      % max(len(v) for d in rows.values() for v in d.values()))
print("| workload | metric | " + " | ".join(peers) + " | " + " | ".join(f"{p}/{peers[-1]}" for p in peers[:-1]) + " |")
print("|---|---|" + "---|" * (2 * len(peers) - 1))
for (w, m) in sorted(rows):
    d = rows[(w, m)]
    med = {p: statistics.median(d[p]) for p in peers if d.get(p)}
    cells = [f"{med[p]:g} ({min(d[p]):g}-{max(d[p]):g})" if p in med else "-" for p in peers]
    def ratio(p):
        rs = [v[p] / v[peers[-1]] for (w2, m2, _), v in by_round.items()
              if (w2, m2) == (w, m) and p in v and v.get(peers[-1])]
        return f"{statistics.median(rs):.2f}" if rs else "-"
    ratios = [ratio(p) for p in peers[:-1]]
    print(f"| {w} | {m} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
PY
cat "$out/rounds.md"
