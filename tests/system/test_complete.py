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
    return b["completeThrough"]


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
    created = h.add_source(ar, key, admin, recv.url, apps=apps, interval=1, watermarks=True)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    assert created["watermarks"] is True, created
    assert set(created["completeThrough"]) == set(apps), created["completeThrough"]
    assert all(w["through"] is None for w in created["completeThrough"].values()), created

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

    # The watermark messages ("watermarks": true): signed, per
    # application, moving by more than the interval (1 s), and each sent
    # only after every log it covers was accepted.
    first_at = {}
    for r in recv.accepted():
        b = r["body"]
        if b and b.get("type") == "logs":
            for l in b["logs"]:
                first_at.setdefault(l["id"], (int(r["at"] * 1000), l["application"],
                                              ts_ms(l["timestamp"])))
    msgs = [(int(r["at"] * 1000), r["id"], r["body"]) for r in recv.accepted()
            if r["body"] and r["body"].get("type") == "watermark"]
    for app in apps:
        seq = [(at, wid, b) for at, wid, b in msgs if b["application"] == app]
        assert seq, "no %s watermark message" % app
        for at, wid, b in seq:
            assert set(b) == {"type", "sourceId", "application", "through"}, b
            assert b["sourceId"] == sid and b["through"].endswith("Z"), b
        thr = [ts_ms(b["through"]) for _, _, b in seq]
        assert all(y - x > 1000 for x, y in zip(thr, thr[1:])), \
            "%s messages not moving by more than the interval: %s" % (app, thr[:5])
        assert len({wid for _, wid, _ in seq}) == len(seq), "a %s message sent twice" % app
        late_after = [(at, lid, t) for at, _, b in seq for lid, (fa, a, t) in first_at.items()
                      if a == app and fa > at and t <= ts_ms(b["through"])]
        assert not late_after, "%s: logs first accepted after a message covering them: %s" % (
            app, late_after[:3])
        h.log("WATERMARK MESSAGES %s: %d, through moving %.1f s apart on average" % (
            app, len(seq), (thr[-1] - thr[0]) / 1000.0 / max(1, len(thr) - 1)))

    # Off again: no message after the change is seen (a rescan, 5 s).
    st, b, _ = ar.api("PATCH", "/sources/%s" % sid, {"watermarks": False})
    assert st == 200 and b["watermarks"] is False, (st, b)
    time.sleep(8)
    n0 = len([r for r in recv.accepted() if r["body"] and r["body"].get("type") == "watermark"])
    time.sleep(8)
    n1 = len([r for r in recv.accepted() if r["body"] and r["body"].get("type") == "watermark"])
    assert n1 == n0, "%d watermark messages after watermarks: false" % (n1 - n0)

    late = sum(1 for (d, _, et) in deliveries if d - et > 3000)
    for app in apps:
        behind = sorted((at - t) / 1000.0 for at, a, t in obs if a == app)
        h.log("WATERMARK %s: %d readings, behind real time p50 %.1fs p99 %.1fs (max re-read age "
              "16 s, state written every 30 s); %d deliveries more than 3 s late in all" %
              (app, len(behind), behind[len(behind) // 2], behind[int(len(behind) * 0.99)], late))


def test_tuned_rereads_catch_a_tail_the_fixed_ages_miss(wd):
    # 1 real second = 3600 simulated: an event published 24 h late shows
    # after 24 s. Two instances read the same tenant side by side: fixed
    # ages 4, 8, 16 s and the same ages tuned (a 32 s sentinel, then 64 s).
    sim = h.Sim(wd, ["--time-scale", "3600"])
    key, admin = h.sim_tenant(sim, "C01tune", apps=("drive",), rate=5,
                              lag={"minSeconds": 0, "meanSeconds": 1, "tailProbability": 0})
    runs = {}
    for mode, ages in (("tuned", "auto:4,8,16"), ("fixed", "4,8,16")):
        store = h.Store(wd, name="store-" + mode)
        cfg = dict(CFG, fetch_reread_ages=ages)
        ar = h.Auditrelay(wd, store, sim, name="ar-" + mode, extra=cfg).start()
        recv = h.Receiver()
        created = h.add_source(ar, key, admin, recv.url, apps=("drive",), interval=1)
        recv.set_secret(created["id"], h.source_secret(created))
        runs[mode] = (ar, recv, created["id"])
    for mode, (ar, recv, sid) in runs.items():
        h.wait_for(lambda: recv.delivered_logs(), 30, "first %s delivery" % mode)

    # Three events of one moment, published 8, 24 and 48 simulated hours
    # late: 8 h within the fixed ages, the others past them.
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1)) + ".500Z"
    late = {}
    for hours in (8, 24, 48):
        act = {"id": {"time": t, "uniqueQualifier": str(7000000000 + hours)},
               "actor": {"email": admin},
               "events": [{"type": "access", "name": "tail_%dh" % hours,
                           "parameters": [{"name": "doc_id", "value": "d%d" % hours}]}]}
        st, b, _ = sim.call("POST", "/_sim/tenants/C01tune/inject",
                            {"application": "drive", "activities": [act],
                             "visibleAfterSeconds": hours * 3600})
        assert st in (200, 201), (st, b)
        late[hours] = h.log_id("C01tune", "drive", t, str(7000000000 + hours), 0, "tail_%dh" % hours)

    def got(mode):
        ids = {l["id"] for l in runs[mode][1].delivered_logs()}
        return {hh for hh, i in late.items() if i in ids}
    h.wait_for(lambda: got("tuned") == {8, 24, 48}, 120, "the tuned instance catching all three")
    time.sleep(3)
    assert got("fixed") == {8}, got("fixed")

    # The fetch state (and so the API) follows within 30 s.
    def rereads(mode):
        ar, _, sid = runs[mode]
        return ar.api("GET", "/sources/%s" % sid)[1]["rereads"]["drive"]
    h.wait_for(lambda: rereads("tuned")["lateFoundByAge"][4] >= 1, 45, "the API showing the 64 s find")
    rt, rf = rereads("tuned"), rereads("fixed")
    assert rt["mode"] == "tuned" and rt["agesSeconds"] == [4, 8, 16, 32, 64], rt
    assert rf["mode"] == "fixed" and rf["agesSeconds"] == [4, 8, 16], rf
    assert rt["lateFoundByAge"][3] >= 1 and rt["lateFoundByAge"][4] >= 1, rt
    assert "re-reading at 64s too" in runs["tuned"][0].log()
    h.log("TUNED: late events caught 3/3 with the tuned ages %s, 1/3 with the fixed %s; "
          "late found by age %s" % (rt["agesSeconds"], rf["agesSeconds"], rt["lateFoundByAge"]))


if __name__ == "__main__":
    import sys
    tests = [test_watermark_never_passes_a_later_delivery,
             test_tuned_rereads_catch_a_tail_the_fixed_ages_miss]
    if len(sys.argv) > 1:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    h.run_tests(tests, "complete")
