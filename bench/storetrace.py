#!/usr/bin/env python3
"""What the daemons ask of the store: a MongoDB wire-protocol proxy that
counts every command by (command, collection) with its time (mean, p99,
max, how many took a second or more) and bytes.

Starts FerretDB 1.24 (auditrelay-test-ferretdb) in a temp dir, listens
in front of it, and runs COMMAND with AUDITRELAY_TEST_MONGODB_URI naming
the proxy (the system tests' and benchmarks' harness then uses it as the
store). When COMMAND exits, prints one line per (command, collection),
sorted by total time. Collections with a time suffix (seen_20261202,
bodies_202612021530) are folded into seen_*, bodies_*.

usage: AR_BIN_DIR=build/bin python3 bench/storetrace.py [--json F] [--slow F] -- \\
           python3 bench/throughput.py --events 200000
"""
import argparse
import collections
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import bson  # pymongo's

BIN = os.environ.get("AR_BIN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                "..", "build", "bin"))
OP_MSG, OP_QUERY = 2013, 2004

stats = collections.defaultdict(lambda: [0, 0.0, 0, 0, []])  # calls, s, in, out, each s
lock = threading.Lock()
slow = []  # (wall start, seconds, command, collection) of each call >= SLOW_S
SLOW_S = 0.25


def fold(coll):
    return re.sub(r"_(\d{8,12}|dead)$", "_*", coll) if isinstance(coll, str) else "-"


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except OSError:  # the other side closed it
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def read_msg(s):
    hdr = recv_exact(s, 16)
    if hdr is None:
        return None
    length, req, resp, op = struct.unpack("<iiii", hdr)
    body = recv_exact(s, length - 16)
    if body is None:
        return None
    return req, resp, op, hdr + body


def command_of(op, msg):
    """(command, collection) of a request, ('?', '-') when unknown."""
    try:
        if op == OP_MSG:
            pos = 20
            while pos < len(msg):
                kind = msg[pos]
                pos += 1
                if kind == 0:
                    n = struct.unpack_from("<i", msg, pos)[0]
                    doc = bson.decode(msg[pos:pos + n])
                    name = next(iter(doc))
                    return name, fold(doc[name])
                n = struct.unpack_from("<i", msg, pos)[0]
                pos += n
        elif op == OP_QUERY:
            return "legacy", "-"
    except Exception:  # noqa: BLE001 (a trace must not stop the proxy)
        pass
    return "?", "-"


def serve(client, upstream_port):
    up = socket.create_connection(("127.0.0.1", upstream_port))
    pending = {}

    def down():
        while True:
            m = read_msg(up)
            if m is None:
                break
            _, resp, _, raw = m
            t = pending.pop(resp, None)
            if t:
                key, t0, nin = t
                with lock:
                    st = stats[key]
                    dt = time.monotonic() - t0
                    st[0] += 1
                    st[1] += dt
                    st[4].append(dt)
                    st[2] += nin
                    st[3] += len(raw)
                    if dt >= SLOW_S:
                        slow.append((time.time() - dt, dt, key[0], key[1]))
            try:
                client.sendall(raw)
            except OSError:
                break
        client.close()

    threading.Thread(target=down, daemon=True).start()
    while True:
        m = read_msg(client)
        if m is None:
            break
        req, _, op, raw = m
        pending[req] = (command_of(op, raw), time.monotonic(), len(raw))
        try:
            up.sendall(raw)
        except OSError:
            break
    up.close()


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0


def report(out):
    rows = sorted(stats.items(), key=lambda kv: -kv[1][1])
    total = sum(v[1] for v in stats.values()) or 1
    print("%-16s %-18s %7s %8s %7s %7s %7s %6s %5s %8s %8s" % (
        "command", "collection", "calls", "total_s", "mean_ms", "p99_ms", "max_ms", ">=1s",
        "share", "in_MB", "out_MB"))
    for (cmd, coll), (n, sec, bi, bo, each) in rows:
        print("%-16s %-18s %7d %8.2f %7.1f %7.0f %7.0f %6d %4.1f%% %8.1f %8.1f" % (
            cmd, coll, n, sec, 1000 * sec / n, 1000 * pct(each, 0.99), 1000 * max(each),
            sum(1 for x in each if x >= 1.0), 100 * sec / total, bi / 1e6, bo / 1e6))
    if out:
        with open(out, "w") as f:
            json.dump([{"command": c, "collection": k, "calls": v[0], "seconds": v[1],
                        "p99_s": pct(v[4], 0.99), "max_s": max(v[4]),
                        "bytes_in": v[2], "bytes_out": v[3]} for (c, k), v in rows], f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--slow", help="write every call of %d ms or more here (wall start, s, "
                    "command, collection), to line up with a latency tail" % (SLOW_S * 1000))
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("a command to run is required")
    d = tempfile.mkdtemp(prefix="ar-storetrace-")
    store = subprocess.Popen([os.path.join(BIN, "auditrelay-test-ferretdb"), "-listen",
                              "127.0.0.1:0", "-dir", d], stdout=subprocess.PIPE,
                             stderr=open(os.path.join(d, "ferretdb.log"), "w"), text=True)
    line = store.stdout.readline()
    up = int(re.search(r":(\d+)", line).group(1))
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(256)
    port = ls.getsockname()[1]

    def accept():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=serve, args=(c, up), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    env = dict(os.environ, AUDITRELAY_TEST_MONGODB_URI="mongodb://127.0.0.1:%d" % port)
    rc = subprocess.call(cmd, env=env)
    with lock:
        report(a.json)
        if a.slow:
            with open(a.slow, "w") as f:
                for t, dt, c, k in sorted(slow):
                    f.write("%.3f %.3f %s %s\n" % (t, dt, c, k))
    store.terminate()
    store.wait()
    return rc


if __name__ == "__main__":
    sys.exit(main())
