#!/usr/bin/env python3
"""Flow and store-stall benchmark: S sources, each publishing R events/s
(no lag), polled every I seconds, for T seconds; optionally the store is
stopped (SIGSTOP) for STALL seconds half-way. Prints delivered/lost/new-id
duplicates, latency from the event's time to the receiver's 2xx (p50, p99,
max), child restarts, CPU % and peak RSS per process, time until
deliveries resumed after the stall.

usage: AR_BIN_DIR=build/bin python3 bench/flow.py [--sources 50] [--rate 10]
       [--interval 1] [--seconds 300] [--stall 0] [--json out.json]
"""
import argparse
import calendar
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
import harness as h  # noqa: E402
from procstat import cpu_s, hwm_kb  # noqa: E402


def ts_epoch(ts):
    """2026-12-01T12:00:00.123Z -> seconds since the epoch."""
    base = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = float("0" + ts[19:-1]) if len(ts) > 20 else 0.0
    return base + frac


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--interval", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--stall", type=int, default=0, help="SIGSTOP the store this long")
    ap.add_argument("--json", default="bench-flow.json")
    ap.add_argument("--dump", help="write every delivery (at, batch, log times) here, to study the tail")
    a = ap.parse_args()
    wd = h.Workdir("bench-flow")
    res = {"sources": a.sources, "rate": a.rate, "interval": a.interval, "seconds": a.seconds,
           "stall": a.stall}
    try:
        store = h.Store(wd.path)
        sim = h.Sim(wd.path, ["--no-lag"])
        recv = h.Receiver()
        ar = h.Auditrelay(wd.path, store, sim, verbose=False,
                          extra={"lease_ttl": "90", "lease_renew": "10"})
        ar.start()
        cids = []
        for i in range(a.sources):
            cid = "CFLOW%03d" % i
            key, admin = h.sim_tenant(sim, cid, apps=("login",), rate=0)
            c = h.add_source(ar, key, admin, recv.url, apps=("login",), interval=a.interval)
            recv.set_secret(c["id"], h.source_secret(c))
            cids.append(cid)
        for cid in cids:
            sim.call("POST", "/_sim/tenants/%s/applications/login" % cid, {"rate": a.rate})
        pids = ar.pids_by_name()
        cpu0 = {k: cpu_s(v) for k, v in pids.items()}
        t0 = time.time()
        stall_at = t0 + a.seconds / 2 if a.stall else None
        resumed = None
        while time.time() - t0 < a.seconds:
            if stall_at and time.time() >= stall_at:
                os.kill(store.proc.pid, signal.SIGSTOP)
                h.log("store stopped for %ds" % a.stall)
                time.sleep(a.stall)
                os.kill(store.proc.pid, signal.SIGCONT)
                cont = time.time()
                n0 = len(recv.accepted())
                h.wait_for(lambda: len(recv.accepted()) > n0, 300, "deliveries resumed")
                resumed = time.time() - cont
                stall_at = None
            time.sleep(1)
        took = time.time() - t0
        cpu = {k: (cpu_s(v) - cpu0[k]) * 100 / took for k, v in pids.items()}
        for cid in cids:
            sim.call("POST", "/_sim/tenants/%s/pause" % cid)
        truth = set()
        for cid in cids:
            truth |= h.sim_truth(sim, cid, "login")
        try:
            h.wait_for(lambda: truth <= {l["id"] for l in recv.delivered_logs()}, 300,
                       "every event delivered", interval=1)
        except AssertionError:
            pass
        lost, dup_new, repeats = h.delivery_check(recv, truth)
        first = {}
        for r in recv.accepted():
            if r["body"] and r["body"].get("type") == "logs":
                for l in r["body"]["logs"]:
                    if l["id"] not in first:
                        first[l["id"]] = r["at"] - ts_epoch(l["timestamp"])
        lat = sorted(first.values()) or [0]
        if a.dump:
            with open(a.dump, "w") as f:
                for r in recv.accepted():
                    b = r["body"]
                    if b and b.get("type") == "logs":
                        f.write(json.dumps({"at": r["at"], "id": r["id"], "src": b.get("sourceId"),
                                            "times": [l["timestamp"] for l in b["logs"]]}) + "\n")
        res.update({
            "events": len(truth), "delivered": len(truth) - len(lost), "lost": len(lost),
            "dup_new_id": len(dup_new), "repeats_same_id": repeats,
            "latency_p50_s": lat[len(lat) // 2], "latency_p99_s": lat[int(len(lat) * 0.99)],
            "latency_max_s": lat[-1], "cpu_pct": cpu,
            "rss_peak_kb": {k: hwm_kb(v) for k, v in ar.pids_by_name().items()},
            "restarts": sum(1 for k, v in ar.pids_by_name().items() if pids.get(k) != v),
            "resumed_after_stall_s": resumed})
        print("%d sources x %.0f/s every %ds for %ds%s: %d events, delivered %d, lost %d, "
              "new-id dups %d; latency p50 %.2fs p99 %.2fs max %.2fs; restarts %d%s" % (
                  a.sources, a.rate, a.interval, a.seconds,
                  " (store stopped %ds)" % a.stall if a.stall else "", res["events"],
                  res["delivered"], res["lost"], res["dup_new_id"], res["latency_p50_s"],
                  res["latency_p99_s"], res["latency_max_s"], res["restarts"],
                  "; resumed %.1fs after the store" % resumed if resumed is not None else ""))
        print("CPU %%: %s" % " ".join("%s=%.1f" % (k.replace("auditrelay-", ""), v)
                                      for k, v in sorted(cpu.items())))
        print("peak RSS kB: %s" % " ".join("%s=%d" % (k.replace("auditrelay-", ""), v)
                                           for k, v in sorted(res["rss_peak_kb"].items())))
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        ar.stop()
        recv.stop()
        wd.cleanup(True)
    finally:
        h.stop_all()


if __name__ == "__main__":
    main()
