"""High availability (DESIGN.md invariant 4): random kill -9 of children
while events flow, two instances on one store with one killed, the store
stopped under load, SIGTERM under load. Every check counts against the
simulator's ground truth: lost = 0, duplicates under a new id = 0."""
import os
import random
import signal
import time

import harness as h

CHAOS_SECONDS = int(os.environ.get("AR_CHAOS_SECONDS", "45"))
FAST = {"lease_ttl": "6", "lease_renew": "2", "fetch_overlap": "30",
        "fetch_reread_ages": "5,15", "fetch_initial_lookback": "60",
        "delivery_retry_schedule": "1,2,3", "shutdown_grace": "3"}
APPS = ("login", "admin")


def pipeline(wd, cid="C01ha", rate=5, instances=1, sources=1, distinct_partitions=False,
             cfg=None):
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag", "--seed", "7"])
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, cid, APPS, rate=rate)
    extra = dict(FAST)
    extra.update(cfg or {})
    ars = []
    for i in range(instances):
        ars.append(h.Auditrelay(wd, store, sim, name="ar%d" % i, extra=extra).start())
    srcs = []
    parts = set()
    for _ in range(sources * 20):
        if len(srcs) == sources:
            break
        created = h.add_source(ars[0], key, admin, recv.url, APPS, interval=1)
        if distinct_partitions and h.partition_of(created["id"]) in parts:
            st, _, _ = ars[0].api("DELETE", "/remove-source/%s" % created["id"])
            assert st == 204, st
            continue
        parts.add(h.partition_of(created["id"]))
        recv.set_secret(created["id"], h.source_secret(created))
        srcs.append(created["id"])
    assert len(srcs) == sources, "no %d sources in distinct partitions" % sources
    return store, sim, recv, ars, srcs


def pause_and_drain(sim, recv, cid, nsources, timeout=120, only=None):
    """Stop generation, then wait until every visible event reached the
    receiver for every source (of only, when given); returns the expected
    id set."""
    for app in APPS:
        sim.call("POST", "/_sim/tenants/%s/applications/%s" % (cid, app), {"paused": True})
    time.sleep(1)
    expected = set()
    for app in APPS:
        expected |= h.sim_truth(sim, cid, app)

    def drained():
        per_source = {}
        for r in recv.accepted():
            b = r["body"]
            if b and b.get("type") == "logs" and (only is None or b["sourceId"] in only):
                per_source.setdefault(b["sourceId"], set()).update(l["id"] for l in b["logs"])
        return len(per_source) == nsources and all(expected <= v for v in per_source.values())
    h.wait_for(drained, timeout, "every visible event delivered", interval=1)
    return expected


def check_source(recv, expected, source_id):
    sub = h.Receiver.__new__(h.Receiver)
    sub.lock = recv.lock
    sub.requests = [r for r in recv.requests if r["body"] and r["body"].get("sourceId") == source_id]
    lost, dup_new, repeats = h.delivery_check(sub, expected)
    return lost, dup_new, repeats


def test_chaos_kill_children(wd):
    """kill -9 a random child every 2-4 s (never more than 5 deaths of one
    child a minute: that is the supervisor's crash-loop limit), and once,
    half-way, kill -9 the supervisor itself and start it again."""
    store, sim, recv, (ar,), (sid,) = pipeline(wd, "C01chaos", rate=10)
    rnd = random.Random(42)
    kills, recent = 0, {}
    t_start = time.monotonic()
    t_end = t_start + CHAOS_SECONDS
    sup_killed = False
    while time.monotonic() < t_end:
        time.sleep(rnd.uniform(2, 4))
        now = time.monotonic()
        if not sup_killed and now > t_start + CHAOS_SECONDS / 2:
            old = list(ar.pids_by_name().values())
            ar.proc.kill()
            ar.proc.wait(5)
            h.wait_for(lambda: not any(os.path.exists("/proc/%d/cmdline" % p) and
                                       open("/proc/%d/cmdline" % p).read() for p in old),
                       5, "children gone with the supervisor")
            ar.start()
            sup_killed = True
            recent.clear()
            continue
        pids = ar.pids_by_name()
        allowed = [n for n in sorted(pids)
                   if len([t for t in recent.get(n, []) if now - t < 62]) < 5]
        if not allowed:
            continue
        name = rnd.choice(allowed)
        os.kill(pids[name], signal.SIGKILL)
        recent.setdefault(name, []).append(now)
        kills += 1
        if ar.proc.poll() is not None:
            raise AssertionError("supervisor died: %s" % ar.proc.returncode)
    ar.wait_healthy(60)
    expected = pause_and_drain(sim, recv, "C01chaos", 1, timeout=180)
    lost, dup_new, repeats = check_source(recv, expected, sid)
    stuck = store.db().batches.count_documents({"sourceId": sid, "state": "pending"})
    h.log("chaos %ds: %d child kills + 1 supervisor kill, %d events expected, lost=%d duplicates-under-new-id=%d "
          "repeats-same-id=%d stuck-batches=%d" % (CHAOS_SECONDS, kills, len(expected), len(lost),
                                                   len(dup_new), repeats, stuck))
    assert not lost and not dup_new
    h.wait_for(lambda: store.db().batches.count_documents(
        {"sourceId": sid, "state": "pending"}) == 0, 60, "no stuck batches")
    assert ar.stop() == 0


def lease_holders(db, kind):
    """The live holder of each lease of kind ("fetch", "deliver"):
    {"<kind>:p<N>": instance}."""
    now = time.time() * 1000
    out = {}
    for l in db.leases.find({"resource": {"$regex": "^%s:" % kind}}):
        if l["expiresAt"] > now and not l.get("released"):
            cur = out.get(l["resource"])
            if cur is None or cur["epoch"] < l["epoch"]:
                out[l["resource"]] = l
    return {r: l["holder"] for r, l in out.items()}


def test_two_instances_handover(wd):
    # Ownership goes by partition ("fetch:p<N>", "deliver:p<N>"): four
    # sources in four partitions, so that two instances split them 2/2.
    store, sim, recv, ars, srcs = pipeline(wd, "C01two", rate=5, instances=1, sources=4,
                                           distinct_partitions=True)
    db = store.db()

    def holders(kind):
        return lease_holders(db, kind)
    h.wait_for(lambda: len(holders("fetch")) == 4 and len(holders("deliver")) == 4, 60,
               "the first instance holds every lease")
    # A second instance joins: the work spreads out (fair shares).
    ars.append(h.Auditrelay(wd, store, sim, name="ar1", extra=FAST).start())
    for kind in ("fetch", "deliver"):
        h.wait_for(lambda: len(holders(kind)) == 4 and
                   sorted(list(holders(kind).values()).count(n) for n in ("ar0", "ar1")) == [2, 2],
                   90, "%s leases spread 2/2 over the two instances" % kind, interval=0.5)
    spread = holders("fetch")
    h.log("fetch leases: %s; deliver leases: %s" % (spread, holders("deliver")))
    victim = ars[0]
    victim_name = "ar0"
    t0 = time.monotonic()
    victim.proc.kill()
    victim.proc.wait(5)

    def taken_over():
        hs = holders("fetch")
        return len(hs) == 4 and victim_name not in hs.values()
    h.wait_for(taken_over, 90, "the survivor took every fetch lease", interval=0.5)
    handover = time.monotonic() - t0
    h.wait_for(lambda: len(holders("deliver")) == 4 and victim_name not in holders("deliver").values(),
               90, "the survivor took every delivery lease", interval=0.5)
    h.log("handover after kill -9 of one instance: %.1fs (lease_ttl=%ss)" % (handover, FAST["lease_ttl"]))
    expected = pause_and_drain(sim, recv, "C01two", 4, timeout=180, only=set(srcs))
    for sid in srcs:
        lost, dup_new, repeats = check_source(recv, expected, sid)
        h.log("source %s: expected %d lost=%d dup-new-id=%d repeats=%d"
              % (sid[:8], len(expected), len(lost), len(dup_new), repeats))
        assert not lost and not dup_new
    assert ars[1].stop() == 0


def test_two_instances_share_a_project_budget(wd):
    """Two service accounts of one Google Cloud project, their sources
    fetched by two instances: Google rate-limits the first (403
    rateLimitExceeded, Retry-After 15 s); the other instance learns it
    from the store and its source of the same project waits too, then
    both carry on with nothing lost."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    recv = h.Receiver()
    ka, aa = h.sim_tenant(sim, "C01qa", ("login",), rate=10, project="shared-proj")
    kb, ab = h.sim_tenant(sim, "C01qb", ("login",), rate=10, project="shared-proj")
    ars = [h.Auditrelay(wd, store, sim, name="ar%d" % i, extra=FAST).start() for i in (0, 1)]
    db = store.db()
    ca = h.add_source(ars[0], ka, aa, recv.url, ("login",), interval=1)
    for _ in range(40):  # B in another partition: the two can be apart
        cb = h.add_source(ars[0], kb, ab, recv.url, ("login",), interval=1)
        if h.partition_of(cb["id"]) != h.partition_of(ca["id"]):
            break
        st, _, _ = ars[0].api("DELETE", "/remove-source/%s" % cb["id"])
        assert st == 204, st
    sa, sb = ca["id"], cb["id"]
    for c in (ca, cb):
        recv.set_secret(c["id"], h.source_secret(c))
    pa, pb = ("fetch:p%d" % h.partition_of(x) for x in (sa, sb))

    def apart():
        hs = lease_holders(db, "fetch")
        return pa in hs and pb in hs and hs[pa] != hs[pb] and hs
    hs = h.wait_for(apart, 90, "the two sources fetched by different instances", interval=0.5)
    xa = ars[int(hs[pa][2:])]   # fetches A (the one Google limits)
    xb = ars[int(hs[pb][2:])]   # fetches B, of the same project
    h.wait_for(lambda: h.stored_count(db, sa) > 0 and h.stored_count(db, sb) > 0, 60,
               "both sources flow")
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "rate_limit", "tenant": "C01qa",
                                                 "probability": 1, "durationSeconds": 20,
                                                 "retryAfter": 15})
    assert st in (200, 201), st
    t0 = time.monotonic()
    seen = "Google rate-limits project=shared-proj (seen by instance %s)" % hs[pa]
    h.wait_for(lambda: seen in xb.log(), 30, "the other instance learns of the limit",
               interval=0.2)
    learnt = time.monotonic() - t0
    time.sleep(1)  # a poll of B already in flight ends
    b0 = h.stored_count(db, sb)
    time.sleep(4)
    b1 = h.stored_count(db, sb)
    h.log("project budget shared: %s knew after %.1fs; B stored %d events in the 4 s after"
          % (hs[pb], learnt, b1 - b0))
    assert b1 == b0, "the source of the same project on the other instance went on"
    assert "Google rate-limits project=shared-proj (rateLimitExceeded" in xa.log()
    assert ("Google rate-limits project=shared-proj (rateLimitExceeded"
            not in xb.log()), "the other instance was refused by Google itself"
    # After the storm both go on: every event delivered once.
    h.wait_for(lambda: h.stored_count(db, sb) > b1, 60, "B flows again")
    for cid in ("C01qa", "C01qb"):
        sim.call("POST", "/_sim/tenants/%s/applications/login" % cid, {"paused": True})
    time.sleep(1)
    for cid, sid in (("C01qa", sa), ("C01qb", sb)):
        truth = h.sim_truth(sim, cid, "login")
        h.wait_for(lambda: not check_source(recv, truth, sid)[0], 120,
                   "every event of %s delivered" % cid, interval=0.5)
        lost, dup_new, _ = check_source(recv, truth, sid)
        assert not lost and not dup_new, (cid, len(lost), len(dup_new))
    for ar in ars:
        assert ar.stop() == 0


def test_respawn_takes_partitions_back(wd):
    """A child killed -9 is respawned by its supervisor under the same
    instance id: it takes its partitions back at once with a new epoch,
    not after lease_ttl (30 s here)."""
    store, sim, recv, (ar,), (sid,) = pipeline(wd, "C01resp", rate=5,
                                               cfg={"lease_ttl": "30", "lease_renew": "10"})
    db = store.db()

    def newest(role):
        docs = list(db.leases.find({"resource": {"$regex": "^%s:p" % role}}))
        return max(docs, key=lambda d: d["epoch"]) if docs else None
    h.wait_for(lambda: newest("fetch") and newest("deliver"), 30, "both partitions taken")
    h.wait_for(lambda: len(recv.accepted()) > 0, 60, "first delivery")
    for name, role in (("auditrelay-fetcherd", "fetch"), ("auditrelay-deliverd", "deliver")):
        before = newest(role)
        pid = ar.pids_by_name()[name]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        h.wait_for(lambda: newest(role)["epoch"] > before["epoch"], 25,
                   "%s:p%s taken back" % (role, before["resource"]), interval=0.2)
        took = time.monotonic() - t0
        after = newest(role)
        h.log("%s killed: %s epoch %d -> %d (holder %s) after %.1fs (lease_ttl 30s)"
              % (name, after["resource"], before["epoch"], after["epoch"], after["holder"], took))
        assert after["holder"] == before["holder"] == "ar0"
        assert after["resource"] == before["resource"]
        assert took < 15, took
        # The new holder deletes the epoch it superseded (same cycle).
        h.wait_for(lambda: db.leases.count_documents({"resource": after["resource"]}) == 1, 10,
                   "the superseded epoch pruned")
    expected = pause_and_drain(sim, recv, "C01resp", 1, timeout=120)
    lost, dup_new, repeats = check_source(recv, expected, sid)
    h.log("after both respawns: expected %d lost=%d dup-new-id=%d" % (len(expected), len(lost),
                                                                     len(dup_new)))
    assert not lost and not dup_new
    assert ar.stop() == 0


def test_store_outage_under_load(wd):
    store, sim, recv, (ar,), (sid,) = pipeline(wd, "C01out", rate=10)
    if store.external:
        h.log("external store: outage test skipped")
        return
    h.wait_for(lambda: len(recv.accepted()) > 0, 60, "first delivery")
    pids = ar.pids_by_name()
    outage = int(os.environ.get("AR_OUTAGE_SECONDS", "60"))
    store.stop()
    h.wait_for(lambda: ar.healthz()[0] == 503, 20, "healthz reports the outage")
    time.sleep(outage)
    assert ar.pids_by_name() == pids, "no process died during the outage"
    store.start(store.port)
    t0 = time.monotonic()
    ar.wait_healthy(60)
    n0 = len(recv.accepted())
    h.wait_for(lambda: len(recv.accepted()) > n0, 60, "deliveries resume")
    h.log("store back: healthy and delivering again after %.1fs" % (time.monotonic() - t0))
    expected = pause_and_drain(sim, recv, "C01out", 1, timeout=180)
    lost, dup_new, repeats = check_source(recv, expected, sid)
    h.log("outage %ds: expected %d lost=%d dup-new-id=%d" % (outage, len(expected), len(lost),
                                                           len(dup_new)))
    assert not lost and not dup_new
    assert ar.pids_by_name() == pids
    assert ar.stop() == 0


def test_sigterm_under_load_then_resume(wd):
    store, sim, recv, (ar,), (sid,) = pipeline(wd, "C01term", rate=10)
    h.wait_for(lambda: len(recv.accepted()) > 2, 60, "deliveries flowing")
    t0 = time.monotonic()
    rc = ar.stop()
    h.log("SIGTERM under load: exit %s in %.1fs" % (rc, time.monotonic() - t0))
    assert rc == 0
    time.sleep(3)
    ar.start()
    expected = pause_and_drain(sim, recv, "C01term", 1, timeout=180)
    lost, dup_new, repeats = check_source(recv, expected, sid)
    h.log("after restart: expected %d lost=%d dup-new-id=%d repeats=%d"
          % (len(expected), len(lost), len(dup_new), repeats))
    assert not lost and not dup_new
    assert ar.stop() == 0


if __name__ == "__main__":
    h.run_tests([test_sigterm_under_load_then_resume, test_respawn_takes_partitions_back,
                 test_chaos_kill_children,
                 test_two_instances_handover, test_two_instances_share_a_project_budget,
                 test_store_outage_under_load], "ha")
