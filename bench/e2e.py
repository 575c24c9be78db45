#!/usr/bin/env python3
"""End-to-end benchmark: the simulator generates events for N sources, the
whole pipeline fetches, stores and delivers them to a verifying receiver.
Prints events/s delivered, time to first batch, and the daemons' peak RSS.

usage: AR_BIN_DIR=build/bin python3 bench/e2e.py [--sources N] [--rate R] [--seconds S]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
import harness as h  # noqa: E402
from procstat import hwm_kb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--rate", type=float, default=100, help="activities/s per application")
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    wd = h.Workdir("bench-e2e")
    ok = False
    try:
        store = h.Store(wd.path)
        sim = h.Sim(wd.path, ["--no-lag"])
        recv = h.Receiver()
        ar = h.Auditrelay(wd.path, store, sim, verbose=False,
                          extra={"fetch_initial_lookback": "5"}).start()
        apps = ("login", "drive")
        t0, wall0 = time.monotonic(), time.time()
        for i in range(a.sources):
            cid = "C0bench%d" % i
            key, admin = h.sim_tenant(sim, cid, apps, rate=a.rate)
            created = h.add_source(ar, key, admin, recv.url, apps, interval=1)
            recv.set_secret(created["id"], h.source_secret(created))
        first = h.wait_for(lambda: recv.accepted(), 120, "first batch")
        t_first = first[0]["at"] - wall0
        time.sleep(a.seconds)
        n = len(h.Receiver.delivered_logs(recv))
        el = time.monotonic() - t0
        pids = ar.pids_by_name()
        print("sources=%d apps=%d rate=%.0f/s/app run=%.0fs" % (a.sources, len(apps), a.rate, el))
        print("time to first delivered batch: %.2fs" % t_first)
        print("delivered events: %d (%.0f events/s)" % (n, n / el))
        for name, pid in sorted(pids.items()):
            print("peak RSS %-22s %6d KiB" % (name, hwm_kb(pid)))
        print("peak RSS %-22s %6d KiB" % ("auditrelayd", hwm_kb(ar.proc.pid)))
        ok = True
    finally:
        h.stop_all()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
