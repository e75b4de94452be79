#!/usr/bin/env python3
"""The ordinary client of the flood benchmark (benches/server/flood.sh).

Asks NAMES names (drawn from a Zipf law over a fixed set, so that some miss the
cache and most hit it) at RATE queries a second for SECONDS, from its own address,
one UDP socket, each query with its own ID; waits up to 2 s for each answer. Prints
one line: `asked answered noerror p50_ms p99_ms max_ms`.

Usage: bystander.py SERVER PORT RATE SECONDS ZONE [FROM]
"""
import random
import select
import socket
import struct
import sys
import time

server, port, rate, seconds, zone = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
source = sys.argv[6] if len(sys.argv) > 6 else "127.0.0.2"
rnd = random.Random(20261206)
universe = [f"b{i}.{zone}" for i in range(5000)]
weights = [1 / (i + 1) for i in range(len(universe))]


def query(qid, qname):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in qname.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", 1, 1)


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((source, 0))
s.setblocking(False)
sent = {}
latencies = []
noerror = 0
start = time.monotonic()
n = 0
total = int(rate * seconds)
while n < total or (sent and time.monotonic() < start + seconds + 2):
    now = time.monotonic()
    due = start + n / rate
    if n < total and now >= due:
        qid = n % 65536
        s.sendto(query(qid, rnd.choices(universe, weights)[0]), (server, port))
        sent[qid] = now
        n += 1
        continue
    wait = max(0.0, min(due - now, 0.01)) if n < total else 0.05
    r, _, _ = select.select([s], [], [], wait)
    while r:
        try:
            data = s.recv(4096)
        except BlockingIOError:
            break
        qid, flags = struct.unpack("!HH", data[:4])
        t0 = sent.pop(qid, None)
        if t0 is not None:
            latencies.append((time.monotonic() - t0) * 1000)
            noerror += (flags & 0xF) == 0
    # Queries older than 2 s are lost.
    for qid, t0 in list(sent.items()):
        if time.monotonic() - t0 > 2:
            del sent[qid]

latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")
print(f"{total} {len(latencies)} {noerror} {q(0.5):.1f} {q(0.99):.1f} {latencies[-1] if latencies else float('nan'):.1f}")
