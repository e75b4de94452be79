#!/usr/bin/env python3
"""One table of ratios fanzha / peer from the harness's raw.tsv (medians of repeats).

Usage: ratios.py RAW_TSV [FANZHA_NAME]   (FANZHA_NAME: the harness peer name, default custom)
Higher is better for qps; lower is better for latency, RSS, startup, CPU and losses,
so each row says which way fanzha wins.
"""
import statistics
import sys
from collections import defaultdict

raw = sys.argv[1]
me = sys.argv[2] if len(sys.argv) > 2 else "custom"
vals = defaultdict(list)  # (peer, metric) -> [float]
for line in open(raw):
    f = line.rstrip("\n").split("\t")
    if len(f) != 5 or f[2] != "pinned":
        continue
    try:
        vals[(f[0], f[3])].append(float(f[4]))
    except ValueError:
        pass

def med(peer, metric):
    v = vals.get((peer, metric))
    return statistics.median(v) if v else None

ROWS = [  # metric, label, better ("higher"/"lower")
    ("qps_blocked", "blocked qps", "higher"),
    ("qps_allowed", "cached-allowed qps", "higher"),
    ("qps_mix", "mix qps", "higher"),
    ("uspq_blocked", "CPU µs per blocked query", "lower"),
    ("uspq_allowed", "CPU µs per allowed query", "lower"),
    ("avglat_mix", "avg latency at saturation, mix (ms)", "lower"),
    ("lat_p99_ms", "p99 latency at 10k qps, mix (ms)", "lower"),
    ("rss_after_load_mb", "RSS after load (MB)", "lower"),
    ("startup_s", "first blocked answer after start (s)", "lower"),
    ("reload_unanswered", "unanswered across a reload", "lower"),
]
peers = [p for p in dict.fromkeys(k[0] for k in vals) if p not in (me, "null-reflector")]
shown = "fanzha" if me == "custom" else me
print(f"### Ratios {shown} / peer (pinned, medians of repeats; ×: how many times better {shown} is)\n")
print("| metric | " + f"{shown} | " + " | ".join(peers) + " |")
print("|---|---|" + "---|" * len(peers))
for metric, label, better in ROWS:
    mine = med(me, metric)
    if mine is None:
        continue
    cells = []
    for p in peers:
        theirs = med(p, metric)
        if theirs is None:
            cells.append("–")
        elif better == "higher":
            cells.append(f"{theirs:g} ({mine / theirs:.2f}×)" if theirs else f"{theirs:g}")
        elif mine == 0 and theirs == 0:
            cells.append("0 (=)")
        elif mine == 0:
            cells.append(f"{theirs:g} (fanzha 0)")
        else:
            cells.append(f"{theirs:g} ({theirs / mine:.2f}×)")
    print(f"| {label} ({better} is better) | {mine:g} | " + " | ".join(cells) + " |")
