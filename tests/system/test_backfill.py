"""System tests of backfill jobs (issue #16): POST /sources/:id/backfill
reads a past range beside the live polls, stores only what is new,
resumes after kill -9, and can be cancelled; its input is validated."""
import calendar
import os
import signal
import time

import harness as h

CFG = {
    "fetch_overlap": "2",
    "fetch_reread_ages": "2,4",
    "lease_ttl": "6",
    "lease_renew": "2",
    "log_verbose": "0",
}
DAY = 86400


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def ts_s(s):
    base = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    return base + (float("0" + s[19:-1]) if len(s) > 20 else 0.0)


def injected_ids(cid, app, n, span_s, t_end, uq_base):
    """The ids auditrelay gives the events inject_backlog made (one app)."""
    out = set()
    for i in range(n):
        t = t_end - span_s + span_s * i / max(n, 1)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
        out.add(h.log_id(cid, app, ts, str(uq_base + i), 0, app + "_event"))
    return out


def inject(sim, cid, n, span_s, ago_s, uq_base):
    """n login events over span_s seconds ending ago_s ago; their ids."""
    t_end = time.time() - ago_s
    h.inject_backlog(sim, cid, n, apps=("login",), span_s=span_s, t_end=t_end, uq_base=uq_base)
    return injected_ids(cid, "login", n, span_s, t_end, uq_base), t_end


def backfills(ar, sid):
    st, b, _ = ar.api("GET", "/sources/%s/backfill" % sid)
    assert st == 200, (st, b)
    assert b["count"] == len(b["backfills"]), b
    return b["backfills"]


def live_p99(recv, since, until, app="login"):
    """p99 (s) from an event's time to its acceptance, for events of app
    accepted in [since, until) whose time is less than a minute before."""
    lat = []
    for r in recv.accepted():
        b = r["body"]
        if not b or b.get("type") != "logs" or not since <= r["at"] < until:
            continue
        for l in b["logs"]:
            d = r["at"] - ts_s(l["timestamp"])
            if l["application"] == app and d < 60:
                lat.append(d)
    lat.sort()
    return (lat[int(len(lat) * 0.99)] if lat else None), len(lat)


def stack(wd, cid, rate):
    """The store, the simulator with tenant cid (login at rate events/s),
    auditrelay and a receiver."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    ar = h.Auditrelay(wd, store, sim, extra=CFG).start()
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, cid, apps=("login",), rate=rate)
    return store, sim, ar, recv, key, admin


def add_source(ar, recv, key, admin):
    """A login source polled every second, its secret known to recv."""
    created = h.add_source(ar, key, admin, recv.url, apps=("login",), interval=1)
    recv.set_secret(created["id"], h.source_secret(created))
    return created["id"]


def test_backfill_reads_the_past_once(wd):
    cid = "C01bf"
    store, sim, ar, recv, key, admin = stack(wd, cid, 5)
    # 3 000 events over 30 days that end 2 h ago (before the source's
    # initial hour), and 300 in the last 50 minutes (inside it).
    old, _ = inject(sim, cid, 3000, 30 * DAY - 7200, 7200, 10**15)
    recent, _ = inject(sim, cid, 300, 3000, 0, 2 * 10**15)
    sid = add_source(ar, recv, key, admin)
    got = lambda: {l["id"] for l in recv.delivered_logs()}  # noqa: E731
    h.wait_for(lambda: recent <= got(), 60, "the last hour delivered by the live polls")
    assert not (old & got()), "events older than the initial lookback came without a backfill"
    time.sleep(10)
    wm = lambda: ar.api("GET", "/sources/%s" % sid)[1]["completeThrough"]["login"]  # noqa: E731
    h.wait_for(lambda: wm()["through"], 30, "a watermark")
    marks = [ts_s(wm()["through"])]
    t_before = time.time()
    p99_before, n_before = live_p99(recv, t_before - 10, t_before)

    # The old events' batches are refused until the watermark has been
    # read three times while one of them was pending in the store.
    hold = {"on": True, "seen": 0}
    db = store.db()

    def status(doc):
        old_ev = doc and doc.get("type") == "logs" and any(
            ts_s(l["timestamp"]) < time.time() - 7000 for l in doc["logs"])
        return 503 if old_ev and hold["on"] else 200
    recv.status = status
    st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                      {"application": "login", "from": rfc3339(time.time() - 31 * DAY)})
    assert st == 202, (st, b)
    assert b["state"] == "queued" and b["application"] == "login" and b["progress"] == 0, b
    bid = b["id"]
    seen = []
    t_start = time.time()

    def done():
        bf = [x for x in backfills(ar, sid) if x["id"] == bid]
        assert len(bf) == 1, bf
        seen.append(bf[0])
        pending_old = db.batches.count_documents(
            {"sourceId": sid, "kind": "logs", "state": {"$ne": "delivered"},
             "minTime": {"$lt": int((time.time() - 7000) * 1000)}})
        w = wm()
        # Old events waiting for delivery hold nothing the watermark
        # promises (it promises nothing before the source's first hour).
        assert w["through"], (w, pending_old)
        marks.append(ts_s(w["through"]))
        if pending_old:
            hold["seen"] += 1
            hold["on"] = hold["seen"] < 3
        return bf[0]["state"] == "done" and bf[0]
    fin = h.wait_for(done, 180, "the backfill done", interval=0.5)
    t_done = time.time()
    h.wait_for(lambda: old <= got(), 60, "every old event delivered")
    p99_during, n_during = live_p99(recv, t_start, t_done)

    lost, dup_new, _ = h.delivery_check(recv, old | recent)
    assert not lost and not dup_new, (len(lost), len(dup_new))
    assert fin["progress"] == 1 and fin["etaSeconds"] is None, fin
    assert fin["eventsStored"] >= 3000, fin
    assert fin["eventsFetched"] == fin["eventsStored"] + fin["duplicates"], fin
    assert fin["duplicates"] >= 300, fin  # the live hour, absorbed
    assert fin["windows"] >= 10 and fin["pages"] >= fin["windows"], fin
    assert fin["finishedAt"] and fin["startedAt"], fin
    prog = [x["progress"] for x in seen]
    assert prog == sorted(prog), prog
    assert marks == sorted(marks), "the watermark went back during the backfill"
    assert hold["seen"] >= 3, hold
    assert "backfill=%s done" % bid in ar.log()
    # /metrics says the same as the API.
    lab = {"source": sid, "app": "login", "backfill": bid}
    assert h.metric(ar, "auditrelay_backfill_progress_ratio", **lab) == 1
    for fam, key in (("auditrelay_backfill_events_stored_total", "eventsStored"),
                     ("auditrelay_backfill_events_fetched_total", "eventsFetched"),
                     ("auditrelay_backfill_duplicates_total", "duplicates"),
                     ("auditrelay_backfill_windows_total", "windows")):
        assert h.metric(ar, fam, **lab) == fin[key], (fam, fin)
    assert h.metric(ar, "auditrelay_backfills", state="done") >= 1
    h.log("BACKFILL: %d windows, %d pages, %d events read, %d new, %d absorbed in %.1fs; "
          "live p99 %.2fs before (%d events), %.2fs during (%d events)" %
          (fin["windows"], fin["pages"], fin["eventsFetched"], fin["eventsStored"],
           fin["duplicates"], t_done - t_start, p99_before or -1, n_before,
           p99_during or -1, n_during))
    # The live polls went on meanwhile.
    assert n_during > 0, "no live event delivered while the backfill ran"

    # The same range again stores nothing new.
    st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                      {"application": "login", "from": rfc3339(time.time() - 31 * DAY),
                       "to": rfc3339(time.time() - 3600)})
    assert st == 202, (st, b)
    bid2 = b["id"]
    h.wait_for(lambda: [x for x in backfills(ar, sid) if x["id"] == bid2][0]["state"] == "done",
               180, "the second backfill done", interval=0.5)
    again = [x for x in backfills(ar, sid) if x["id"] == bid2][0]
    assert again["eventsStored"] == 0 and again["duplicates"] >= 3000, again
    lost, dup_new, _ = h.delivery_check(recv, old | recent)
    assert not lost and not dup_new, (len(lost), len(dup_new))

    # A finished one is deleted by id; the list follows.
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill?id=%s" % (sid, bid))
    assert st == 200 and b == {"cancelled": 1}, (st, b)
    assert [x["id"] for x in backfills(ar, sid)] == [bid2]


def test_backfill_resumes_after_kill(wd):
    cid = "C01bfk"
    _, sim, ar, recv, key, admin = stack(wd, cid, 2)
    old, _ = inject(sim, cid, 6000, 20 * DAY, 7200, 10**15)
    sid = add_source(ar, recv, key, admin)
    h.wait_for(lambda: recv.delivered_logs(), 60, "a live delivery")
    # Slow pages: the backfill takes long enough to be killed midway.
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "slow", "tenant": cid, "delayMs": 150})
    assert st in (200, 201), st
    st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                      {"application": "login", "from": rfc3339(time.time() - 21 * DAY),
                       "to": rfc3339(time.time() - 3600)})
    assert st == 202, (st, b)
    bid = b["id"]

    def midway():
        x = backfills(ar, sid)[0]
        return x["state"] == "running" and x["progress"] >= 0.3 and x
    mid = h.wait_for(midway, 120, "the backfill a third through", interval=0.3)
    pid = ar.pids_by_name()["auditrelay-fetcherd"]
    os.kill(pid, signal.SIGKILL)
    h.log("killed fetcherd at progress %.2f" % mid["progress"])
    h.wait_for(lambda: ar.pids_by_name().get("auditrelay-fetcherd") not in (None, pid), 30,
               "fetcherd respawned")
    fin = h.wait_for(lambda: backfills(ar, sid)[0]["state"] == "done" and backfills(ar, sid)[0],
                     240, "the backfill done after the kill", interval=0.5)
    got = lambda: {l["id"] for l in recv.delivered_logs()}  # noqa: E731
    h.wait_for(lambda: old <= got(), 60, "every old event delivered")
    lost, dup_new, _ = h.delivery_check(recv, old)
    assert not lost and not dup_new, (len(lost), len(dup_new))
    assert "backfill=%s resumes at" % bid in ar.log()
    h.log("KILL: resumed from progress >= %.2f; %d events new, %d absorbed after the kill" %
          (mid["progress"], fin["eventsStored"], fin["duplicates"]))


def test_backfill_validation_and_cancel(wd):
    cid = "C01bfv"
    _, sim, ar, recv, key, admin = stack(wd, cid, 2)
    recv.status = 503  # nothing is delivered: the backfills stay open
    inject(sim, cid, 20000, 10 * DAY, 7200, 10**15)
    sid = add_source(ar, recv, key, admin)
    now = time.time()
    bad = [
        ({}, "application"),
        ({"application": "login"}, "from"),
        ({"application": "drive", "from": rfc3339(now - DAY)}, "application"),
        ({"application": "login", "from": "yesterday"}, "from"),
        ({"application": "login", "from": rfc3339(now - 200 * DAY)}, "from"),
        ({"application": "login", "from": rfc3339(now - DAY), "to": rfc3339(now + 3600)}, "to"),
        ({"application": "login", "from": rfc3339(now - DAY), "to": rfc3339(now - 2 * DAY)},
         "from"),
        ({"application": "login", "from": rfc3339(now - DAY), "extra": 1}, "extra"),
        ({"application": 7, "from": rfc3339(now - DAY)}, "application"),
    ]
    for body, field in bad:
        st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid, body)
        assert st == 400 and b["error"]["field"] == field, (body, st, b)
    st, b, _ = ar.api("POST", "/sources/00000000-0000-4000-8000-000000000000/backfill",
                      {"application": "login", "from": rfc3339(now - DAY)})
    assert st == 404, (st, b)
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill?id=nope" % sid)
    assert st == 400 and b["error"]["field"] == "id", (st, b)
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill?id=00000000-0000-4000-8000-000000000000"
                      % sid)
    assert st == 404, (st, b)
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill?bogus=1" % sid)
    assert st == 400, (st, b)

    ids = []
    for _ in range(16):
        st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                          {"application": "login", "from": rfc3339(now - 11 * DAY)})
        assert st == 202, (st, b)
        ids.append(b["id"])
    st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                      {"application": "login", "from": rfc3339(now - DAY)})
    assert st == 409 and b["error"]["code"] == "too_many_backfills", (st, b)
    # The first runs (held: nothing is delivered), the others wait.
    h.wait_for(lambda: backfills(ar, sid)[0]["state"] == "running", 30, "the first running")
    states = [x["state"] for x in backfills(ar, sid)]
    assert states == ["running"] + ["queued"] * 15, states
    time.sleep(3)
    held = backfills(ar, sid)[0]
    assert held["progress"] < 1, held
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill?id=%s" % (sid, ids[0]))
    assert st == 200 and b == {"cancelled": 1}, (st, b)
    h.wait_for(lambda: "backfill=%s cancelled" % ids[0] in ar.log(), 20, "fetcherd stopping it")
    # The next one starts (and waits: its source has enough undelivered).
    h.wait_for(lambda: "backfill=%s starts" % ids[1] in ar.log(), 30, "the next one starting")
    assert backfills(ar, sid)[0]["id"] == ids[1]
    st, b, _ = ar.api("DELETE", "/sources/%s/backfill" % sid)
    assert st == 200 and b == {"cancelled": 15}, (st, b)
    assert backfills(ar, sid) == []
    h.wait_for(lambda: "backfill=%s cancelled" % ids[1] in ar.log(), 20, "fetcherd stopping it")
    # Live polling never stopped.
    st, b, _ = ar.api("GET", "/sources/%s" % sid)
    assert st == 200 and b["status"] != "credentials_invalid", b


if __name__ == "__main__":
    h.run_tests([test_backfill_reads_the_past_once, test_backfill_resumes_after_kill,
                 test_backfill_validation_and_cancel], "backfill")
