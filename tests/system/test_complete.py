"""System tests of what auditrelay can say is complete (issue #16): the
watermark per (source, application) against the simulator's ground truth,
under a lag tail that only the re-reads catch."""
import calendar
import time

import harness as h

CFG = {
    "fetch_overlap": "2",
    "fetch_reread_ages": "4,8,16",
    "lease_ttl": "6",
    "lease_renew": "2",
    "log_verbose": "0",
}


def ts_ms(s):
    """RFC 3339 with optional milliseconds -> ms since the epoch."""
    base = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = float("0" + s[19:-1]) if len(s) > 20 else 0.0
    return int(round((base + frac) * 1000))


def watermarks(ar, sid):
    st, b, _ = ar.api("GET", "/sources/%s" % sid)
    assert st == 200, (st, b)
    return b["watermarks"]


def test_watermark_never_passes_a_later_delivery(wd):
    # 1 real second = 7200 simulated: a 20 h lag takes 10 s, past the poll
    # overlap (2 s), inside the last re-read age (16 s).
    store = h.Store(wd)
    sim = h.Sim(wd, ["--time-scale", "7200"])
    ar = h.Auditrelay(wd, store, sim, extra=CFG).start()
    recv = h.Receiver()
    apps = ("login", "drive")
    key, admin = h.sim_tenant(sim, "C01wm", apps=apps, rate=10,
                              lag={"minSeconds": 0, "meanSeconds": 300,
                                   "tailProbability": 0.2, "tailMaxSeconds": 20 * 3600})
    created = h.add_source(ar, key, admin, recv.url, apps=apps, interval=1)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    assert set(created["watermarks"]) == set(apps), created["watermarks"]
    assert all(w["through"] is None for w in created["watermarks"].values()), created

    obs = []  # (wall ms when read, app, through ms)
    end = time.time() + 75
    while time.time() < end:
        at = int(time.time() * 1000)
        for app, w in watermarks(ar, sid).items():
            if w["through"] is not None:
                assert w["heldBy"] in ("fetch", "delivery"), w
                assert abs((at - ts_ms(w["through"])) / 1000.0 - w["behindSeconds"]) < 5, w
                obs.append((at, app, ts_ms(w["through"])))
        time.sleep(0.5)
    st, _, _ = sim.call("POST", "/_sim/tenants/C01wm/pause")
    assert st in (200, 204), st

    # Every event Google published is delivered in the end.
    for app in apps:
        truth = h.sim_truth(sim, "C01wm", app, visible_only=False)
        h.wait_for(lambda: truth <= {l["id"] for l in recv.delivered_logs()
                                     if l["application"] == app},
                   90, "every %s event delivered" % app)

    # Never backwards, and moving.
    for app in apps:
        seq = [t for _, a, t in obs if a == app]
        assert seq, "no %s watermark in 75 s" % app
        assert all(x <= y for x, y in zip(seq, seq[1:])), "%s watermark went back" % app
        assert seq[-1] > seq[0], "%s watermark did not move: %s" % (app, seq[:3])

    # Never past an event delivered after it was shown.
    deliveries = []  # (accepted at ms, app, event time ms)
    for r in recv.accepted():
        b = r["body"]
        if b and b.get("type") == "logs":
            for l in b["logs"]:
                deliveries.append((int(r["at"] * 1000), l["application"], ts_ms(l["timestamp"])))
    bad = [(at, app, t, d) for (at, app, t) in obs for (d, dapp, et) in deliveries
           if dapp == app and d > at and et <= t]
    assert not bad, "%d deliveries after a watermark that passed them, e.g. %s" % (len(bad), bad[:3])

    late = sum(1 for (d, _, et) in deliveries if d - et > 3000)
    for app in apps:
        behind = sorted((at - t) / 1000.0 for at, a, t in obs if a == app)
        h.log("WATERMARK %s: %d readings, behind real time p50 %.1fs p99 %.1fs (max re-read age "
              "16 s, state written every 30 s); %d deliveries more than 3 s late in all" %
              (app, len(behind), behind[len(behind) // 2], behind[int(len(behind) * 0.99)], late))


if __name__ == "__main__":
    import sys
    tests = [test_watermark_never_passes_a_later_delivery]
    if len(sys.argv) > 1:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    h.run_tests(tests, "complete")
