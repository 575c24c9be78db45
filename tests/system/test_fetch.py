"""System tests of auditrelay-fetcherd against the Google simulator and the
real store: every visible event stored exactly once, late events caught by
the overlap and the growing-age re-reads, rate limits, 5xx and slow pages,
a repeating page token, refused credentials and recovery, kill -9 in the
middle of a window."""
import os
import re
import signal
import time

import harness as h

BASE_CFG = {
    "fetch_overlap": "3",
    "fetch_reread_ages": "5,15,30",
    "fetch_credentials_retry": "3",
    "lease_ttl": "6",
    "lease_renew": "2",
    "log_verbose": "0",
}


def start(wd, sim_args=(), cfg=None):
    store = h.Store(wd)
    sim = h.Sim(wd, list(sim_args))
    extra = dict(BASE_CFG)
    extra.update(cfg or {})
    ar = h.Auditrelay(wd, store, sim, extra=extra).start()
    recv = h.Receiver()
    return store, sim, ar, recv


def callback(recv):
    return "http://127.0.0.1:%d/hook" % recv.port


def stored(db, sid, app=None):
    """logId -> count of the logs of a source fetcherd stored."""
    return h.stored_logs(db, sid, app)


def check_once(db, sid, truth, app=None, timeout=90, what="events"):
    """Wait until every truth id is stored; assert exactly once, no extras."""
    def done():
        s = stored(db, sid, app)
        return truth <= set(s) and s
    try:
        s = h.wait_for(done, timeout, "%d %s stored" % (len(truth), what), interval=0.5)
    except AssertionError:
        s = stored(db, sid, app)
        h.log("missing %d of %d" % (len(truth - set(s)), len(truth)))
        raise
    assert all(v == 1 for v in s.values())
    # No log in two batches: every body still in the store, once each.
    b = h.batched_logs(db, sid)
    assert all(v == 1 for v in b.values()), [k for k, v in b.items() if v > 1][:5]
    return s


def pause(sim, cid):
    st, _, _ = sim.call("POST", "/_sim/tenants/%s/pause" % cid)
    assert st in (200, 204), st


def all_visible(sim, cid, app):
    st, b, _ = sim.call("GET", "/_sim/events?tenant=%s&application=%s" % (cid, app))
    return all(e.get("visible") for e in b["events"])


def test_steady_flow(wd):
    store, sim, ar, recv = start(wd)
    key, admin = h.sim_tenant(sim, "C01steady", apps=("login", "admin"), rate=20,
                              lag={"minSeconds": 0, "meanSeconds": 0.3,
                                   "tailProbability": 0})
    src = h.add_source(ar, key, admin, callback(recv), apps=("login", "admin"), interval=1)
    sid = src["id"]
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sid) > 50, 60, "first logs")
    time.sleep(6)
    pause(sim, "C01steady")
    for app in ("login", "admin"):
        h.wait_for(lambda: all_visible(sim, "C01steady", app), 30, "all visible")
        truth = h.sim_truth(sim, "C01steady", app)
        s = check_once(db, sid, truth, app)
        assert set(s) <= h.sim_truth(sim, "C01steady", app, visible_only=False)
        h.log("steady %s: %d events stored exactly once" % (app, len(s)))
    st = h.fetch_state(db, sid)
    assert st and st["status"] == "active" and st["lastFetchAt"] > 0, st
    cur = h.fetch_cursor(db, sid, "login")
    assert cur and cur["cursor"] > int(time.time() * 1000) - 60000, cur
    # The stats follow the cursor, written at most every 5 s.
    n = len(h.sim_truth(sim, "C01steady", "login"))
    h.wait_for(lambda: (h.fetch_stats(db, sid, "login") or {}).get("eventsStored") == n,
               15, "the stats written")
    stats = h.fetch_stats(db, sid, "login")
    assert stats and stats["eventsStored"] == n and stats["lag"]["count"] == n, stats


def test_lag_long_tail(wd):
    # 1 real second = 7200 simulated seconds: a 72 h lag takes 36 s.
    store, sim, ar, recv = start(wd, ["--time-scale", "7200"],
                                 cfg={"fetch_overlap": "2",
                                      "fetch_reread_ages": "5,15,30,45"})
    lag = {"minSeconds": 0, "meanSeconds": 600, "tailProbability": 0.3,
           "tailMaxSeconds": 72 * 3600}
    key, admin = h.sim_tenant(sim, "C01lag", apps=("drive",), rate=10, lag=lag)
    src = h.add_source(ar, key, admin, callback(recv), apps=("drive",), interval=1)
    sid = src["id"]
    db = store.db()
    time.sleep(10)
    pause(sim, "C01lag")
    h.wait_for(lambda: all_visible(sim, "C01lag", "drive"), 60, "all visible")
    truth = h.sim_truth(sim, "C01lag", "drive")
    _, ev, _ = sim.call("GET", "/_sim/events?tenant=C01lag&application=drive")
    def ts(x):
        return time.mktime(time.strptime(x[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + x[19:-1])
    # later than the poll interval (1 s) plus the overlap (2 s): only re-reads catch these
    late = [e for e in ev["events"] if ts(e["visibleAt"]) - ts(e["time"]) > 3.0]
    s = check_once(db, sid, truth, "drive", timeout=90, what="lagging events")
    stats = h.fetch_stats(db, sid, "drive")
    rr = stats["lateRereads"]
    recovered = sum(rr)
    h.log("LAG: %d events (%d visible more than interval+overlap late), all stored once; overlap caught %d late, "
          "re-reads recovered %s = %d (would have been lost without re-reads); "
          "lag max %.1fs, buckets %s" % (len(s), len(late), stats["lateOverlap"], rr,
                                         recovered, stats["lag"]["maxMs"] / 1000.0,
                                         stats["lag"]["buckets"]))
    assert recovered > 0, stats


def test_multi_event_out_of_order(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01multi", apps=("admin",), rate=0)
    src = h.add_source(ar, key, admin, callback(recv), apps=("admin",), interval=1)
    sid = src["id"]
    db = store.db()
    now = time.time()
    acts = []
    for i in range(30):
        # oldest first, seconds apart, out of the newest-first order
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 40 + (i * 7) % 30))
        acts.append({"id": {"time": t + ".%03dZ" % i},
                     "actor": {"email": "a@c01multi.example.com"},
                     "events": [{"type": "GROUP_SETTINGS", "name": "ADD_GROUP_MEMBER",
                                 "parameters": [{"name": "GROUP_EMAIL", "value": "g%d@x" % i}]},
                                {"type": "GROUP_SETTINGS", "name": "REMOVE_GROUP_MEMBER",
                                 "parameters": [{"name": "GROUP_EMAIL", "value": "g%d@x" % i}]},
                                {"type": "GROUP_SETTINGS", "name": "ADD_GROUP_MEMBER",
                                 "parameters": [{"name": "ROLE", "value": "OWNER"}]}]})
    st, b, _ = sim.call("POST", "/_sim/tenants/C01multi/inject",
                        {"application": "admin", "activities": acts})
    assert st in (200, 201), (st, b)
    truth = h.sim_truth(sim, "C01multi", "admin")
    assert len(truth) == 90, len(truth)
    s = check_once(db, sid, truth, "admin", what="multi-event logs")
    h.log("multi-event: 30 activities x 3 events -> %d logs, distinct ids" % len(s))


def test_rate_limit_storm(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    ka, aa = h.sim_tenant(sim, "C01storm", apps=("login",), rate=10)
    kb, ab = h.sim_tenant(sim, "C01calm", apps=("login",), rate=10)
    sa = h.add_source(ar, ka, aa, callback(recv), interval=1)["id"]
    sb = h.add_source(ar, kb, ab, callback(recv), interval=1)["id"]
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sa) > 0, 60, "A flows")
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "rate_limit", "tenant": "C01storm",
                                                 "probability": 1, "durationSeconds": 10,
                                                 "retryAfter": 2})
    assert st in (200, 201)
    t0 = time.time()
    b0 = h.stored_count(db, sb)
    time.sleep(8)
    b1 = h.stored_count(db, sb)
    h.log("during the storm on A, B stored %d new logs" % (b1 - b0))
    assert b1 - b0 > 20, (b0, b1)
    pause(sim, "C01storm")
    pause(sim, "C01calm")
    check_once(db, sa, h.sim_truth(sim, "C01storm", "login"), "login", timeout=120)
    check_once(db, sb, h.sim_truth(sim, "C01calm", "login"), "login")
    log = ar.log()
    # Each tenant's service account is of a project of its own.
    assert log.count("Google rate-limits project=c01storm ") <= 3, \
        log.count("rate-limits project")
    assert "rate-limits project=c01calm " not in log
    _, stats, _ = sim.call("GET", "/_sim/stats")
    h.log("storm over after %.0fs; sim stats: %s" % (time.time() - t0, str(stats)[:300]))


def test_5xx_and_slow_pages(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"], cfg={"fetch_timeout": "3"})
    key, admin = h.sim_tenant(sim, "C01flaky", apps=("login", "token"), rate=10)
    sid = h.add_source(ar, key, admin, callback(recv), apps=("login", "token"),
                       interval=1)["id"]
    db = store.db()
    for f in ({"kind": "503", "probability": 0.3}, {"kind": "500", "probability": 0.2},
              {"kind": "slow", "probability": 0.3, "delayMs": 1500},
              {"kind": "slow", "probability": 0.1, "delayMs": 5000},
              {"kind": "reset", "probability": 0.1},
              {"kind": "bad_json", "probability": 0.1},
              {"kind": "truncated_json", "probability": 0.1}):
        f.update({"tenant": "C01flaky", "durationSeconds": 12})
        st, _, _ = sim.call("POST", "/_sim/faults", f)
        assert st in (200, 201), f
    time.sleep(12)
    pause(sim, "C01flaky")
    for app in ("login", "token"):
        s = check_once(db, sid, h.sim_truth(sim, "C01flaky", app), app, timeout=120)
        h.log("flaky %s: %d stored exactly once" % (app, len(s)))


def test_repeating_page_token(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01pages", apps=("login",), rate=0)
    sid = h.add_source(ar, key, admin, callback(recv), interval=1)["id"]
    db = store.db()
    # after the API's credential check, so that fetcherd meets it
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "repeat_token", "tenant": "C01pages",
                                                 "count": 2})
    assert st in (200, 201)
    acts = [{"actor": {"email": "u%d@c01pages.example.com" % i},
             "events": [{"type": "login", "name": "login_success"}]} for i in range(2500)]
    st, _, _ = sim.call("POST", "/_sim/tenants/C01pages/inject",
                        {"application": "login", "activities": acts})
    assert st in (200, 201)
    s = check_once(db, sid, h.sim_truth(sim, "C01pages", "login"), "login", timeout=90)
    assert "repeated a page token" in ar.log()
    assert len(s) == 2500
    h.log("2500 events over 3 pages with a repeating token: %d stored once" % len(s))


def test_revoked_key_and_recovery(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01keys", apps=("login",), rate=5)
    sid = h.add_source(ar, key, admin, callback(recv), interval=1)["id"]
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sid) > 0, 60, "first logs")
    email = key["client_email"]
    st, _, _ = sim.call("POST", "/_sim/tenants/C01keys/service-accounts/%s" % email,
                        {"revokeKeys": True})
    assert st in (200, 204), st
    sim.call("POST", "/_sim/tokens/revoke", {"clientEmail": email})
    t0 = time.time()
    state = h.wait_for(lambda: (h.fetch_state(db, sid) or {})
                       .get("status") == "credentials_invalid" and
                       h.fetch_state(db, sid), 10,
                       "credentials_invalid")
    took = time.time() - t0
    alert = h.wait_for(lambda: db.alerts.find_one({"sourceId": sid,
                                                   "alert": "credentials_invalid"}), 5, "alert")
    h.log("credentials_invalid after %.1fs (interval 1s): %s" % (took, state["lastError"]))
    assert took <= 3 + 2, took  # within 3 intervals, plus scheduling slack
    assert "revoked" in state["lastError"] and "BEGIN" not in state["lastError"]
    assert alert["state"] in ("pending", "batched") and alert["message"]
    _, srcs, _ = ar.api("GET", "/sources")
    # Recovery by itself once Google accepts again.
    sim.call("POST", "/_sim/tenants/C01keys/service-accounts/%s" % email, {"restoreKeys": True})
    h.wait_for(lambda: h.fetch_state(db, sid)["status"] == "active",
               15, "active again")
    h.wait_for(lambda: db.alerts.find_one({"sourceId": sid, "alert": "credentials_restored"}),
               5, "restored alert")
    # Rotation through the API resumes at once.
    sim.call("POST", "/_sim/tenants/C01keys/service-accounts/%s" % email, {"revokeKeys": True})
    sim.call("POST", "/_sim/tokens/revoke", {"clientEmail": email})
    h.wait_for(lambda: h.fetch_state(db, sid)["status"] ==
               "credentials_invalid", 10, "invalid again")
    st, newkey, _ = sim.call("POST", "/_sim/tenants/C01keys/service-accounts/%s/keys" % email)
    assert st in (200, 201), (st, newkey)
    t0 = time.time()
    st, b, _ = ar.api("PUT", "/sources/%s/credentials" % sid,
                      {"clientEmail": email, "privateKey": newkey["private_key"],
                       "subject": admin})
    assert st in (200, 204), (st, b)
    h.wait_for(lambda: h.fetch_state(db, sid)["status"] == "active",
               5, "active after rotation")
    h.log("rotation: active again after %.1fs (credentials_retry is 3s)" % (time.time() - t0))
    pause(sim, "C01keys")
    check_once(db, sid, h.sim_truth(sim, "C01keys", "login"), "login")


def test_kill9_mid_window(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01kill", apps=("login",), rate=0)
    now = time.time()
    acts = [{"id": {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 60 + i % 50))
                    + ".%03dZ" % (i % 1000)},
             "actor": {"email": "u%d@c01kill.example.com" % i},
             "events": [{"type": "login", "name": "login_success"}]} for i in range(6000)]
    st, _, _ = sim.call("POST", "/_sim/tenants/C01kill/inject",
                        {"application": "login", "activities": acts})
    assert st in (200, 201)
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "slow", "tenant": "C01kill",
                                                 "delayMs": 700, "durationSeconds": 20})
    created = h.add_source(ar, key, admin, callback(recv), interval=1)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sid) >= 1000, 60, "a page stored")
    n = h.stored_count(db, sid)
    cur = h.fetch_cursor(db, sid, "login")
    pid = ar.pids_by_name()["auditrelay-fetcherd"]
    os.kill(pid, signal.SIGKILL)
    h.log("killed fetcherd %d with %d of 6000 logs stored, cursor %s" %
          (pid, n, cur and cur.get("cursor")))
    assert n < 6000
    h.wait_for(lambda: ar.pids_by_name().get("auditrelay-fetcherd", pid) != pid, 10, "restart")
    s = check_once(db, sid, h.sim_truth(sim, "C01kill", "login"), "login", timeout=120)
    assert len(s) == 6000
    h.wait_for(lambda: len({l["id"] for l in recv.delivered_logs()}) >= 6000, 60,
               "6000 delivered")
    lost, dup_new, _ = h.delivery_check(recv, set(s))
    assert not lost and not dup_new, (len(lost), len(dup_new))
    h.log("after kill -9: 6000 stored and delivered, none under two batch ids")


def test_store_outage(wd):
    store, sim, ar, recv = start(wd, cfg={"fetch_overlap": "5"})
    key, admin = h.sim_tenant(sim, "C01down", apps=("login",), rate=10,
                              lag={"minSeconds": 0, "meanSeconds": 0.2, "tailProbability": 0})
    sid = h.add_source(ar, key, admin, callback(recv), interval=1)["id"]
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sid) > 20, 60, "first logs")
    before = h.fetch_cursor(db, sid, "login")["cursor"]
    port = store.port
    store.stop()
    h.log("store stopped (cursor %d)" % before)
    time.sleep(6)
    store.start(port)
    db = store.db()
    h.log("store back")
    time.sleep(4)
    pause(sim, "C01down")
    h.wait_for(lambda: all_visible(sim, "C01down", "login"), 30, "all visible")
    s = check_once(db, sid, h.sim_truth(sim, "C01down", "login"), "login", timeout=90)
    assert "store unreachable" in ar.log()
    h.log("store outage of 6s under flow: %d events stored exactly once" % len(s))


def test_truncated_counted(wd):
    """Logs over the size cap (lib/google/normalize.h NORM_LOG_MAX, 1 MiB) are
    stored truncated and counted once each in /metrics, not again when the
    overlap and the re-reads read them again."""
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01trunc", apps=())
    created = h.add_source(ar, key, admin, callback(recv), apps=("admin",), interval=1)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    db = store.db()
    huge = "x" * (1200 * 1024)
    now = time.time()

    def act(i, events):
        t = now - 20 + i
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
        return {"id": {"time": ts, "uniqueQualifier": str(4 * 10**17 + i)},
                "actor": {"email": "a@c01trunc.example.com"}, "events": events}

    def ev(name, value):
        return {"type": "GROUP_SETTINGS", "name": name,
                "parameters": [{"name": "GROUP_EMAIL", "value": value}]}
    acts = [act(0, [ev("ADD_GROUP_MEMBER", huge)]),                         # 1 truncated
            act(1, [ev("ADD_GROUP_MEMBER", huge), ev("REMOVE_GROUP_MEMBER", "g@x")]),  # 1 of 2
            act(2, [ev("ADD_GROUP_MEMBER", "g2@x")]),
            act(3, [ev("ADD_GROUP_MEMBER", "g3@x")])]
    st, b, _ = sim.call("POST", "/_sim/tenants/C01trunc/inject",
                        {"application": "admin", "activities": acts})
    assert st in (200, 201), (st, b)
    truth = h.sim_truth(sim, "C01trunc", "admin")
    assert len(truth) == 5, len(truth)
    check_once(db, sid, truth, "admin", what="logs, two over the cap")

    def counted():
        return h.metric(ar, "auditrelay_fetch_truncated_events_total",
                        source=sid, app="admin") == 2
    h.wait_for(counted, 30, "truncated logs counted in /metrics", interval=0.5)
    got = h.wait_for(lambda: len(recv.delivered_logs()) >= 5 and recv.delivered_logs(), 60,
                     "5 logs delivered")
    assert sum(1 for l in got if l.get("truncated")) == 2, [l.get("truncated") for l in got]
    # The overlap (3 s) and the re-reads at 5 and 15 s read them again.
    h.wait_for(lambda: (h.metric(ar, "auditrelay_fetch_duplicates_total",
                                 source=sid, app="admin") or 0) >= 5, 40, "logs read again")
    time.sleep(3)
    assert h.metric(ar, "auditrelay_fetch_truncated_events_total", source=sid, app="admin") == 2
    assert h.metric(ar, "auditrelay_fetch_events_stored_total", source=sid, app="admin") == 5


def test_remove_source_stops(wd):
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01gone", apps=("login", "admin"), rate=5)
    sid = h.add_source(ar, key, admin, callback(recv), apps=("login", "admin"), interval=1)["id"]
    db = store.db()
    h.wait_for(lambda: h.stored_count(db, sid) > 0, 60, "first logs")

    def served():
        _, b, _ = sim.call("GET", "/_sim/stats")
        return sum(int(v) for v in b["requests"]["activities"].values())
    st, _, _ = ar.api("DELETE", "/remove-source/%s" % sid)
    assert st == 204, st
    time.sleep(0.5)
    n0 = served()
    time.sleep(4)
    n1 = served()
    h.log("after DELETE: %d Reports requests in 4s" % (n1 - n0))
    assert n1 == n0, (n0, n1)
    assert "source=%s removed; its fetching stops" % sid in ar.log()


def drift_inject(sim, cid, seq, events_list):
    """One activity per entry of events_list (its events), one millisecond
    apart, a second ago; seq: [last uniqueQualifier used]."""
    now = time.time()
    acts = []
    for events in events_list:
        seq[0] += 1
        t = now - 1 + seq[0] / 1000.0
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
        acts.append({"id": {"time": ts, "uniqueQualifier": str(6 * 10**17 + seq[0])},
                     "actor": {"email": "u%d@%s.example.com" % (seq[0], cid.lower())},
                     "events": events})
    st, b, _ = sim.call("POST", "/_sim/tenants/%s/inject" % cid,
                        {"application": "login", "activities": acts})
    assert st in (200, 201), (st, b)


def drift_ev(name, params=("login_type",)):
    return {"type": "login", "name": name,
            "parameters": [{"name": p, "value": "x"} for p in params]}


def drift_alerts(recv):
    """The schema_drift alerts the receiver accepted, once per webhook-id."""
    got = {}
    for r in recv.accepted():
        b = r["body"]
        if b and b.get("type") == "alert" and b.get("alert") == "schema_drift":
            got[r["id"]] = b
    return list(got.values())


def drift_source(wd, cid):
    """A source whose first run reads two activities (its baseline: the
    names login_success, logout, login_type, is_second_factor), once that
    baseline is done."""
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, cid, apps=("login",), rate=0)
    seq = [0]
    drift_inject(sim, cid, seq, [[drift_ev("login_success")],
                                 [drift_ev("logout", ("login_type", "is_second_factor"))]])
    created = h.add_source(ar, key, admin, callback(recv), interval=1)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    db = store.db()
    h.wait_for(lambda: len(recv.delivered_logs()) >= 2, 60, "the baseline's events delivered")
    h.wait_for(lambda: (h.fetch_cursor(db, sid, "login") or {})
               .get("schemaBaselineDone") is True, 30, "baseline done")
    return store, sim, ar, recv, db, sid, seq


def test_schema_drift(wd):
    """An event name never seen before for a source, once the source has read
    up to the live edge (its baseline), is delivered as usual and yields
    exactly one schema_drift alert (so does a new parameter name), counted in
    /metrics; after a restart the same names alert no more."""
    store, sim, ar, recv, db, sid, seq = drift_source(wd, "C01drift")
    base = list(db.schema_names.find({"sourceId": sid}))
    assert {d["_id"] for d in base} == {sid + ":login:e:login_success", sid + ":login:e:logout",
                                        sid + ":login:p:login_type",
                                        sid + ":login:p:is_second_factor"}, base
    assert all(d["baseline"] for d in base), base
    assert drift_alerts(recv) == []
    # A new event name twice, a new parameter name once, known names too.
    drift_inject(sim, "C01drift", seq, [[drift_ev("NEW_EVENT_X")], [drift_ev("NEW_EVENT_X")],
                                        [drift_ev("login_success", ("login_type", "new_param_y"))],
                                        [drift_ev("logout")]])
    truth = h.sim_truth(sim, "C01drift", "login")
    assert len(truth) == 6, len(truth)
    h.wait_for(lambda: truth <= {l["id"] for l in recv.delivered_logs()}, 60,
               "every injected event delivered")
    h.wait_for(lambda: len(drift_alerts(recv)) >= 2, 30, "two schema_drift alerts")
    time.sleep(4)  # the overlap and the re-reads read them again
    alerts = drift_alerts(recv)
    msgs = sorted(a["message"] for a in alerts)
    h.log("schema_drift alerts: %s" % msgs)
    assert len(alerts) == 2, msgs
    assert all(a["sourceId"] == sid for a in alerts), alerts
    assert any('event name' in m and '"NEW_EVENT_X"' in m for m in msgs), msgs
    assert any('parameter name' in m and '"new_param_y"' in m for m in msgs), msgs
    assert all("login" in m for m in msgs), msgs
    # Stored by the job that found the names new, not queued for later.
    assert re.search(r"alert=schema_drift \d+ stored for delivery", ar.log())
    h.wait_for(lambda: h.metric(ar, "auditrelay_fetch_schema_drift_total",
                                source=sid, app="login") == 2, 30,
               "schema drift counted in /metrics", interval=0.5)
    d = db.schema_names.find_one({"_id": sid + ":login:e:NEW_EVENT_X"})
    assert d and d["baseline"] is False and d["kind"] == "event", d
    # A restart forgets what the process knew: the store still knows.
    assert ar.stop() == 0
    ar.start()
    drift_inject(sim, "C01drift", seq, [[drift_ev("NEW_EVENT_X", ("new_param_y",))]])
    truth = h.sim_truth(sim, "C01drift", "login")
    h.wait_for(lambda: truth <= {l["id"] for l in recv.delivered_logs()}, 60,
               "the event after the restart delivered")
    time.sleep(4)
    assert len(drift_alerts(recv)) == 2, [a["message"] for a in drift_alerts(recv)]
    assert h.metric(ar, "auditrelay_fetch_schema_drift_total", source=sid, app="login") == 2
    assert db.schema_names.count_documents({"sourceId": sid}) == 6
    h.log("schema drift: 2 alerts for 3 new-name events, none again after a restart")


def test_schema_drift_cap(wd):
    """A feed that suddenly sends many new names: every one is counted, at
    most 20 alerts an hour go out one by one (the rest are summed when the
    hour is over), and a name's length and odd bytes are bounded and escaped
    in the alert."""
    store, sim, ar, recv, db, sid, seq = drift_source(wd, "C01cap")
    odd = "WEIRD\"\\\u00e9" + "L" * 300
    drift_inject(sim, "C01cap", seq, [[drift_ev(odd)]])
    h.wait_for(lambda: len(drift_alerts(recv)) >= 1, 30, "the first alert")
    msg = drift_alerts(recv)[0]["message"]
    h.log("odd name alert: %s" % msg)
    assert '"WEIRD\\x22\\x5c\\xc3\\xa9LLL' in msg and "L" * 200 not in msg, msg
    drift_inject(sim, "C01cap", seq, [[drift_ev("BURST_%02d" % i)] for i in range(30)])
    h.wait_for(lambda: h.metric(ar, "auditrelay_fetch_schema_drift_total",
                                source=sid, app="login") == 31, 30,
               "31 new names counted", interval=0.5)
    h.wait_for(lambda: len(drift_alerts(recv)) >= 20, 30, "20 alerts")
    time.sleep(4)
    got = drift_alerts(recv)
    assert len(got) == 20, len(got)
    assert "more than 20 new schema names this hour" in ar.log()
    truth = h.sim_truth(sim, "C01cap", "login")
    h.wait_for(lambda: truth <= {l["id"] for l in recv.delivered_logs()}, 60,
               "every event delivered")
    h.log("schema drift cap: 31 new names, 20 alerts, all events delivered")

def test_schema_drift_removed_source(wd):
    """deliverd's janitor deletes the schema names of a removed source, with
    its cursors (it finds removed sources by what they left in batches)."""
    store, sim, ar, recv, db, sid, seq = drift_source(wd, "C01drgone")
    assert db.schema_names.count_documents({"sourceId": sid}) == 4
    recv.status = 500  # a batch stays pending: the janitor finds the source
    drift_inject(sim, "C01drgone", seq, [[drift_ev("login_success")]])
    # One that failed: a batch pending only until its 2xx is recorded
    # (its metadata then goes) would leave nothing to find.
    h.wait_for(lambda: db.batches.find_one({"sourceId": sid, "state": "pending",
                                            "nAttempts": {"$gte": 1}}), 30,
               "a batch pending after a 500")
    st, _, _ = ar.api("DELETE", "/remove-source/%s" % sid)
    assert st == 204, st
    assert ar.stop() == 0
    ar.start()  # the janitor runs 10 s after deliverd starts
    h.wait_for(lambda: db.schema_names.count_documents({"sourceId": sid}) == 0, 60,
               "the removed source's schema names deleted", interval=1)
    assert h.fetch_cursor(db, sid, "login") is None
    h.log("schema names of a removed source deleted by the janitor")


def test_removed_source_all_delivered(wd):
    """A removed source whose batches were all delivered left no metadata
    (each 2xx deleted it): the janitor finds it by its deliver state and
    deletes it, its stats and schema names; fetcherd drops its fetch
    state (cursors included) from its partition's document."""
    store, sim, ar, recv, db, sid, seq = drift_source(wd, "C01drdone")
    h.wait_for(lambda: db.batches.count_documents({"sourceId": sid}) == 0, 30,
               "every batch delivered and its metadata gone")
    assert h.fetch_cursor(db, sid, "login")
    st, _, _ = ar.api("DELETE", "/remove-source/%s" % sid)
    assert st == 204, st
    assert ar.stop() == 0
    ar.start()  # the janitor runs 10 s after deliverd starts
    h.wait_for(lambda: h.fetch_state(db, sid) is None and
               db.schema_names.count_documents({"sourceId": sid}) == 0, 60,
               "the removed source's cursors and schema names deleted", interval=1)
    h.wait_for(lambda: h.deliver_state(db, sid) is None, 15,
               "the removed source's delivery state dropped")
    assert db.source_state.find_one({"_id": sid + ":deliver"}) is None
    assert "deleting its cursors, states and stats" in ar.log()
    h.log("a removed source with nothing pending cleaned by the janitor")

def test_state_upgrade_and_partition_count(wd):
    """The fetch state an older version kept (a document per source in
    source_state, per application in cursors and stats) is read where a
    partition has no document yet, and a new partition_count starts from
    the documents of the old count: counters and cursors carry on, every
    event is stored once."""
    store, sim, ar, recv = start(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01upg", apps=("login",), rate=20)
    sid = h.add_source(ar, key, admin, callback(recv), interval=1)["id"]
    db = store.db()
    h.wait_for(lambda: (h.fetch_stats(db, sid, "login") or {}).get("eventsStored", 0) > 0,
               30, "a first fetch state")
    assert ar.stop() == 0
    e = h.fetch_state(db, sid)
    stored0 = e["stats"]["login"]["eventsStored"]
    cur0 = e["cursors"]["login"]["cursor"]
    # As an older version left it.
    for name in db.list_collection_names():
        if name.startswith("fetch_state_"):
            db.drop_collection(name)
    db.source_state.insert_one(dict({k: v for k, v in e.items() if k not in ("cursors", "stats")},
                                    _id=sid + ":fetch", sourceId=sid))
    db.cursors.insert_one(dict(e["cursors"]["login"], _id=sid + ":login"))
    db.stats.insert_one(dict(e["stats"]["login"], _id=sid + ":login"))
    ar.start()
    h.wait_for(lambda: (h.fetch_cursor(db, sid, "login") or {}).get("cursor", 0) > cur0, 30,
               "the older version's state carried on")
    assert h.fetch_stats(db, sid, "login")["eventsStored"] >= stored0
    assert ar.stop() == 0
    e = h.fetch_state(db, sid)
    stored1 = e["stats"]["login"]["eventsStored"]
    cur1 = e["cursors"]["login"]["cursor"]
    assert stored1 > stored0, (stored0, stored1)
    ar.cfg["partition_count"] = "16"
    ar.write_config()
    ar.start()
    h.wait_for(lambda: (h.fetch_cursor(db, sid, "login", count=16) or {}).get("cursor", 0) > cur1,
               30, "the state under 16 partitions")
    assert h.fetch_stats(db, sid, "login", count=16)["eventsStored"] >= stored1
    st, one, _ = ar.api("GET", "/sources/" + sid)
    assert st == 200 and one["status"] == "active" and one.get("lastFetchAt"), one
    pause(sim, "C01upg")
    h.wait_for(lambda: all_visible(sim, "C01upg", "login"), 30, "all visible")
    s = check_once(db, sid, h.sim_truth(sim, "C01upg", "login"), "login")
    h.log("fetch state: older version's documents, then 64 -> 16 partitions: "
          "counters %d -> %d -> %d, %d events stored once" %
          (stored0, stored1, h.fetch_stats(db, sid, "login", count=16)["eventsStored"], len(s)))


if __name__ == "__main__":
    import sys
    tests = [test_steady_flow, test_lag_long_tail, test_multi_event_out_of_order,
             test_rate_limit_storm, test_5xx_and_slow_pages, test_repeating_page_token,
             test_revoked_key_and_recovery, test_kill9_mid_window, test_store_outage,
             test_remove_source_stops, test_truncated_counted, test_schema_drift,
             test_schema_drift_cap, test_schema_drift_removed_source,
             test_removed_source_all_delivered, test_state_upgrade_and_partition_count]
    if len(sys.argv) > 1:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    h.run_tests(tests, "fetch")
