#!/usr/bin/env python3
"""What one write of a source's state costs the store, by layout.

Older versions kept each source's state in a document of its own (one
collection, a document per source: source_state, stats) and updated it by
_id; auditrelay now keeps a partition's sources in one document of a
collection of its own (fetch_state_*, deliver_state_*: lib/store/fstate.h)
and writes that document whole. On FerretDB 1.24 an update scans its
whole collection, so the first costs in proportion to the number of
sources and the second in proportion to the sources of one partition.

  bench/statewrite.py [--sources 1000 10000] [--partitions 64] [--writes 20]

Prints, for each number of sources, the mean and p90 time of an update by
_id among that many per-source documents and of a whole-document upsert
of one partition's entries, and the store time each layout spends per
source whose state it writes.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
import harness as h  # noqa: E402

ENTRY = {"status": "ok", "lastDeliveryAt": 1796667843840, "lastError": None,
         "consecutiveFailures": 0, "epoch": 3, "updatedAt": 1796667843840,
         "stats": {"deliveredLogs": 123456, "deliveredBatches": 789,
                   "failedAttempts": 2, "deadBatches": 0}}


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    out.sort()
    return sum(out) / len(out), out[int(len(out) * 0.9)]


def run(db, sources, partitions, writes):
    ids = ["%08x-0000-4000-8000-%012x" % (i, i) for i in range(sources)]
    db.drop_collection("bench_per_source")
    per = db["bench_per_source"]
    for k in range(0, sources, 1000):
        per.insert_many([dict(ENTRY, _id=i + ":deliver", sourceId=i) for i in ids[k:k + 1000]])
    k = [0]

    def per_source():
        i = ids[k[0] % sources]
        k[0] += 1
        per.update_one({"_id": i + ":deliver"}, {"$set": {"lastDeliveryAt": k[0], "status": "ok"}})

    old = timed(per_source, writes)
    db.drop_collection("bench_per_source")
    mine = ids[:max(1, sources // partitions)]
    doc = {"_id": "%d:0" % partitions, "count": partitions, "part": 0,
           "sources": {i: ENTRY for i in mine}}
    db.drop_collection("bench_partition")
    part = db["bench_partition"]
    part.insert_one(doc)

    def whole():
        doc["updatedAt"] = time.time()
        part.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    new = timed(whole, writes)
    db.drop_collection("bench_partition")
    return {"sources": sources, "partition_sources": len(mine),
            "partition_bytes": len(json.dumps(doc)),
            "per_source_update_ms": old[0] * 1000, "per_source_update_p90_ms": old[1] * 1000,
            "partition_write_ms": new[0] * 1000, "partition_write_p90_ms": new[1] * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--writes", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    wd = h.Workdir("bench-statewrite")
    try:
        store = h.Store(wd.path)
        db = store.db()
        for n in a.sources:
            rows.append(run(db, n, a.partitions, a.writes))
    finally:
        h.stop_all()
        wd.cleanup(True)
    print("%8s %10s %18s %20s %24s" % ("sources", "per part", "per-source update",
                                         "partition write", "store ms per source kept"))
    for r in rows:
        each = r["partition_write_ms"] / r["partition_sources"]
        print("%8d %10d %13.1f ms %15.1f ms %11.1f vs %.2f (%.0fx)" % (
            r["sources"], r["partition_sources"], r["per_source_update_ms"],
            r["partition_write_ms"], r["per_source_update_ms"], each,
            r["per_source_update_ms"] / each))
        print("%8s %10s p90 %9.1f ms  p90 %11.1f ms   (one partition document: %d KB)" % (
            "", "", r["per_source_update_p90_ms"], r["partition_write_p90_ms"],
            r["partition_bytes"] // 1024))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
