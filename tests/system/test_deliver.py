"""System tests of auditrelay-deliverd against the real store, the real
auditrelayd and a receiver that verifies Standard Webhooks signatures.

Sources are added through POST /add-source (credentials checked by the
Google simulator, a tenant without activity so that fetcherd stores
nothing); the pending batches are seeded straight into the store, exactly
as fetcherd seals them (docs/STORE.md: metadata in `batches` naming the
bodies_* partition that holds the body, or the body in `bodies` as older
versions left it), so that every test knows what must arrive."""
import os
import secrets
import signal
import time
import uuid

import harness as h

FAST = {"delivery_retry_schedule": "1", "delivery_breaker_threshold": "3",
        "delivery_timeout": "4", "lease_ttl": "6", "lease_renew": "2",
        "shutdown_grace": "3", "delivery_linger_ms": "100"}


def setup(wd, extra=None, allow_private=True, receivers=1, cid=None):
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    cid = cid or "C0%s" % secrets.token_hex(3)
    key, admin = h.sim_tenant(sim, cid, apps=())
    cfg = dict(FAST)
    cfg.update(extra or {})
    ar = h.Auditrelay(wd, store, sim, extra=cfg, allow_private=allow_private).start()
    recvs = [h.Receiver() for _ in range(receivers)]
    return store, sim, ar, recvs, key, admin


def add_source(ar, key, admin, recv, url=None):
    created = h.add_source(ar, key, admin, url or recv.url, ("login",), interval=60)
    recv.set_secret(created["id"], h.source_secret(created))
    return created["id"]


def body_coll(ms):
    """The bodies_* partition of time ms (1-minute spans, UTC)."""
    t = time.gmtime((ms - ms % 60000) / 1000)
    return time.strftime("bodies_%Y%m%d%H%M", t)


def seed_logs(db, sid, n, tag="x", per=500, coll=None, legacy=False):
    """Seal n logs of source sid into pending batches of per logs, as
    fetcherd does (into partition coll, by default the current one; with
    legacy into `bodies`, no bodyColl, as older versions did); returns
    their log ids in order."""
    now = int(time.time() * 1000)
    coll = "bodies" if legacy else (coll or body_coll(now))
    ids = []
    metas, bodies = [], []
    for k in range(0, n, per):
        bid = str(uuid.uuid4())
        logs = []
        for i in range(k, min(n, k + per)):
            lid = secrets.token_hex(16)
            ids.append(lid)
            logs.append('{"id":"%s","timestamp":"2026-01-01T00:00:00.000Z","application":"login",'
                        '"actor":{"email":"u%d@example.com","ipAddress":"203.0.113.%d",'
                        '"profileId":"%d"},"eventType":"login","eventName":"login_success",'
                        '"details":{"tag":"%s","i":%d},"raw":{"kind":"admin#reports#activity"}}'
                        % (lid, i, i % 250, i, tag, i))
        body = '{"type":"logs","sourceId":"%s","batchId":"%s","logs":[%s]}' % (
            sid, bid, ",".join(logs))
        bodies.append({"_id": bid, "sourceId": sid, "body": body,
                       "logIds": ids[k:k + len(logs)]})
        metas.append({"_id": bid, "sourceId": sid, "kind": "logs", "app": "login",
                      "nLogs": len(logs), "bytes": len(body),
                      "webhookId": "msg_" + bid.replace("-", ""), "state": "pending",
                      "createdAt": now + k, "nextAttemptAt": now, "nAttempts": 0,
                      "nErrors": 0, "attempts": [], "deliveredAt": None, "epoch": 0})
        if not legacy:
            metas[-1]["bodyColl"] = coll
    db[coll].insert_many(bodies, ordered=False)
    db.batches.insert_many(metas, ordered=False)
    SEEDED[sid] = SEEDED.get(sid, 0) + n
    return ids


SEEDED = {}  # source -> logs seeded into its batches


def logs_of(recv, sid, kind="logs"):
    return [r for r in recv.requests
            if r["body"] and r["body"].get("sourceId") == sid and r["body"].get("type") == kind]


def delivered_ids(recv, sid):
    out = set()
    for r in recv.accepted():
        b = r["body"]
        if b and b.get("type") == "logs" and b.get("sourceId") == sid:
            out.update(l["id"] for l in b["logs"])
    return out


def check_consistent(recv, sid, expected):
    """Everything expected delivered; a log never under two webhook-ids; a
    webhook-id always carries the same batch and the same logs; every
    request signed and well formed."""
    reqs = logs_of(recv, sid)
    assert reqs, "no request"
    by_wid = {}
    carriers = {}
    for r in reqs:
        assert r["sig_ok"], "bad signature on %s" % r["id"]
        assert r["ua"].startswith("auditrelay/"), r["ua"]
        assert r["ctype"] == "application/json", r["ctype"]
        assert r["id"].startswith("msg_")
        key = (r["body"]["batchId"], tuple(l["id"] for l in r["body"]["logs"]))
        assert by_wid.setdefault(r["id"], key) == key, "webhook-id %s changed content" % r["id"]
        for l in r["body"]["logs"]:
            carriers.setdefault(l["id"], set()).add(r["id"])
    lost = set(expected) - delivered_ids(recv, sid)
    assert not lost, "%d logs never accepted" % len(lost)
    dup = [k for k, v in carriers.items() if len(v) > 1]
    assert not dup, "%d logs under two webhook-ids" % len(dup)
    return by_wid


def store_undelivered(db, sid):
    """Logs in batches of a source the store does not have as delivered: a
    delivered batch's metadata is deleted at its 2xx (kept, marked
    "delivered", only while the batch's intent exists)."""
    return sum(b.get("nLogs", 0) for b in
               db.batches.find({"sourceId": sid, "kind": "logs",
                                "state": {"$ne": "delivered"}}, {"nLogs": 1}))


def store_delivered(db, sid):
    """Logs of the seeded batches of a source that the store recorded as
    delivered."""
    return SEEDED.get(sid, 0) - store_undelivered(db, sid)


def store_all_delivered(db, sid, n):
    return SEEDED.get(sid, 0) == n and store_undelivered(db, sid) == 0


def test_receiver_down_then_back(wd):
    store, sim, ar, (recv,), key, admin = setup(wd, {"delivery_batch_max_logs": "100"})
    db = store.db()
    recv.status = 503
    sid = add_source(ar, key, admin, recv)
    ids = seed_logs(db, sid, 450, per=100)
    # Several attempts fail (the breaker opens after 3 in a row).
    h.wait_for(lambda: len(logs_of(recv, sid)) >= 5, 60, "failed attempts")
    h.wait_for(lambda: (h.deliver_state(db, sid) or {}).get("status") == "callback_failing",
               20, "status callback_failing")
    st, body, _ = ar.api("GET", "/sources/" + sid)
    h.log("while down: GET /sources/:id status=%s" % (body or {}).get("status"))
    assert (body or {}).get("status") == "callback_failing", body
    failed = len(logs_of(recv, sid))
    recv.status = 200
    h.wait_for(lambda: store_all_delivered(db, sid, 450), 90, "all logs delivered", interval=0.5)
    by_wid = check_consistent(recv, sid, ids)
    # The batches that failed were re-sent under the same webhook-id.
    retried = [w for w in by_wid if sum(1 for r in logs_of(recv, sid) if r["id"] == w) > 1]
    assert retried, "no batch was retried"
    # Each batch went under the id derived from its batch id, its last
    # attempt a 2xx, and its metadata is gone with it.
    for wid in by_wid:
        assert wid == "msg_" + by_wid[wid][0].replace("-", ""), wid
        assert [r["status"] for r in logs_of(recv, sid) if r["id"] == wid][-1] == 200
    assert db.batches.count_documents({"sourceId": sid, "kind": "logs"}) == 0
    h.log("%d failed attempts, then %d batches; %d retried under the same id"
          % (failed, len(by_wid), len(retried)))
    h.wait_for(lambda: "callback resumed after" in ar.log(), 10, "resumed log line")
    assert ar.log().count("callback down") == 1, "callback down logged more than once"
    assert ar.log().count("callback resumed after") == 1
    h.wait_for(lambda: (h.deliver_state(db, sid) or {}).get("status") == "ok", 5,
               "status ok in the store")
    # Counters reach the store within a write interval (5 s).
    stats = h.wait_for(lambda: ((h.deliver_state(db, sid) or {}).get("stats") or {})
                       .get("deliveredLogs") == 450 and h.deliver_state(db, sid)["stats"], 15,
                       "delivery counters")
    assert stats["deliveredLogs"] == 450, stats
    # The counters carry on through a restart (read back at the take),
    # from what an older version kept per source (source_state and stats
    # "<id>:deliver") where a partition has no document yet.
    assert ar.stop() == 0
    e = h.deliver_state(db, sid)
    for name in db.list_collection_names():
        if name.startswith("deliver_state_"):
            db.drop_collection(name)
    db.source_state.replace_one({"_id": sid + ":deliver"}, dict(
        {k: v for k, v in e.items() if k != "stats"}, _id=sid + ":deliver", sourceId=sid),
        upsert=True)
    db.stats.replace_one({"_id": sid + ":deliver"}, dict(e["stats"], _id=sid + ":deliver",
                                                         sourceId=sid), upsert=True)
    ar.start()
    more = seed_logs(db, sid, 50, "y", per=50)
    h.wait_for(lambda: store_all_delivered(db, sid, 500), 60, "50 more delivered")
    stats = h.wait_for(lambda: ((h.deliver_state(db, sid) or {}).get("stats") or {})
                       .get("deliveredLogs") == 500 and h.deliver_state(db, sid)["stats"], 15,
                       "delivery counters after a restart")
    assert stats["deliveredLogs"] == 500 and len(more) == 50, stats


def test_drop_after_commit_same_id(wd):
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    recv.drop = True
    sid = add_source(ar, key, admin, recv)
    ids = seed_logs(db, sid, 20)
    h.wait_for(lambda: logs_of(recv, sid), 30, "first POST")
    recv.drop = False
    h.wait_for(lambda: store_all_delivered(db, sid, 20), 60, "delivered")
    reqs = logs_of(recv, sid)
    assert reqs[0]["status"] == -1 and reqs[1]["status"] == 200
    assert reqs[0]["id"] == reqs[1]["id"]
    assert [l["id"] for l in reqs[0]["body"]["logs"]] == [l["id"] for l in reqs[1]["body"]["logs"]]
    assert reqs[0]["body"] == reqs[1]["body"]
    check_consistent(recv, sid, ids)


def test_429_retry_after(wd):
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    recv.status = 429
    recv.retry_after = 3
    sid = add_source(ar, key, admin, recv)
    ids = seed_logs(db, sid, 10)
    h.wait_for(lambda: logs_of(recv, sid), 30, "first POST")
    recv.status = 200
    h.wait_for(lambda: store_all_delivered(db, sid, 10), 30, "delivered")
    reqs = logs_of(recv, sid)
    gap = reqs[1]["at"] - reqs[0]["at"]
    h.log("429 Retry-After: 3 -> next attempt after %.2fs (schedule says 1s)" % gap)
    assert gap >= 2.9, gap
    assert reqs[0]["id"] == reqs[1]["id"]
    check_consistent(recv, sid, ids)


def test_slow_receiver_does_not_delay_another(wd):
    store, sim, ar, (slow, fast), key, admin = setup(wd, receivers=2)
    db = store.db()
    slow.delay = 6   # beyond delivery_timeout: every attempt times out
    # Another host name for the slow one, as two customers would have.
    sid_slow = add_source(ar, key, admin, slow, url="http://localhost:%d/hook" % slow.port)
    sid_fast = add_source(ar, key, admin, fast)
    seed_logs(db, sid_slow, 2000, "slow")
    h.wait_for(lambda: logs_of(slow, sid_slow), 30, "slow receiver reached")
    t0 = time.monotonic()
    ids = seed_logs(db, sid_fast, 1200, "fast")
    h.wait_for(lambda: store_all_delivered(db, sid_fast, 1200), 30, "fast source delivered")
    took = time.monotonic() - t0
    h.log("fast source: 1200 logs delivered in %.2fs while the other callback hangs" % took)
    check_consistent(fast, sid_fast, ids)
    assert not store_delivered(db, sid_slow)
    assert took < 20


def test_400_dead_letters_alert_replay(wd):
    store, sim, ar, (recv,), key, admin = setup(wd, {"delivery_batch_max_logs": "10"})
    db = store.db()
    recv.status = lambda doc: 400 if doc and doc.get("type") == "logs" else 200
    sid = add_source(ar, key, admin, recv)
    ids = seed_logs(db, sid, 30, per=10)
    h.wait_for(lambda: db.batches.count_documents({"sourceId": sid, "state": "dead"}) == 3,
               90, "3 dead letters", interval=0.5)
    dead = list(db.batches.find({"sourceId": sid, "state": "dead"}))
    for b in dead:
        assert len(b["attempts"]) == 4, b["attempts"]   # first try + 3 retries
        assert all(a["status"] == 400 and a["at"] for a in b["attempts"])
        assert "HTTP 400" in b["attempts"][0]["error"]
    assert not store_delivered(db, sid)
    h.wait_for(lambda: [a for a in recv.delivered_logs("alert")
                        if a["alert"] == "dead_letter" and a["sourceId"] == sid],
               30, "dead_letter alert delivered")
    alert = [a for a in recv.delivered_logs("alert") if a["alert"] == "dead_letter"][0]
    assert alert["type"] == "alert" and alert["at"].endswith("Z") and "replay" in alert["message"]
    st, body, _ = ar.api("GET", "/sources/%s/dead-letters" % sid)
    assert st == 200 and body["count"] == 3, (st, body)
    dead_wids = {b["webhookId"] for b in dead}
    recv.status = 200
    st, body, _ = ar.api("POST", "/sources/%s/dead-letters/replay" % sid)
    assert st == 200 and body["replayed"] == 3, (st, body)
    h.wait_for(lambda: store_all_delivered(db, sid, 30), 60, "replayed logs delivered")
    accepted_wids = {r["id"] for r in recv.accepted() if r["body"]["type"] == "logs"}
    assert accepted_wids == dead_wids, "replay changed the webhook-ids"
    # Each dead letter: 4 attempts, then the replay's 2xx; its metadata
    # gone with the 2xx.
    for wid in dead_wids:
        st = [r["status"] for r in logs_of(recv, sid) if r["id"] == wid]
        assert st == [400] * 4 + [200], (wid, st)
    assert db.batches.count_documents({"sourceId": sid, "kind": "logs"}) == 0
    check_consistent(recv, sid, ids)


def dead_ids(db, sid):
    return sorted(b["_id"] for b in db.batches.find({"sourceId": sid, "state": "dead"}))


def test_dead_letter_retention(wd):
    """A tiny delivery_dead_letter_retention (environment override): the
    dead letter is deleted with its body, counted in /metrics, announced by
    one dead_letters_pruned alert."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C0prune", apps=())
    ar = h.Auditrelay(wd, store, sim, extra=FAST)
    ar.env["AUDITRELAY_DELIVERY_DEAD_LETTER_RETENTION"] = "3"
    ar.start()
    recv = h.Receiver()
    db = store.db()
    recv.status = lambda doc: 400 if doc and doc.get("type") == "logs" else 200
    sid = add_source(ar, key, admin, recv)
    seed_logs(db, sid, 5)
    dead = h.wait_for(lambda: db.batches.find_one({"sourceId": sid, "state": "dead"}), 60,
                      "a dead letter", interval=0.2)
    assert dead["bodyColl"] == "bodies_dead", dead
    assert db.bodies_dead.find_one({"_id": dead["_id"]}), "a dead letter keeps its body"
    t0 = time.time()
    h.wait_for(lambda: db.batches.find_one({"_id": dead["_id"]}) is None, 30,
               "the dead letter pruned", interval=0.2)
    h.log("dead letter pruned %.1fs after it was seen (retention 3 s, ticks of 5 s)" %
          (time.time() - t0))
    assert db.bodies_dead.find_one({"_id": dead["_id"]}) is None, "its body is left"
    st, body, _ = ar.api("GET", "/sources/%s/dead-letters" % sid)
    assert st == 200 and body["count"] == 0, (st, body)
    h.wait_for(lambda: h.metric(ar, "auditrelay_delivery_dead_letters_pruned_total",
                                source=sid) == 1, 10, "pruned counted in /metrics")
    alerts = h.wait_for(lambda: [a for a in recv.delivered_logs("alert")
                                 if a["alert"] == "dead_letters_pruned"], 30,
                        "dead_letters_pruned alert delivered")
    assert len(alerts) == 1 and alerts[0]["sourceId"] == sid, alerts
    assert alerts[0]["message"].startswith("1 dead letter(s)"), alerts[0]
    assert h.metric(ar, "auditrelay_delivery_dead_letters_total", source=sid) == 1


def test_dead_letter_kept_by_default(wd):
    """With the default retention (30 days) a dead letter stays; one whose
    deadAt is 31 days old goes at the next start. The batches are laid out
    as older versions stored them (bodies in `bodies`, no bodyColl): their
    dead letters keep their bodies there."""
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    recv.status = lambda doc: 400 if doc and doc.get("type") == "logs" else 200
    sid = add_source(ar, key, admin, recv)
    seed_logs(db, sid, 5, "a", per=5, legacy=True)
    h.wait_for(lambda: len(dead_ids(db, sid)) == 1, 60, "a dead letter", interval=0.2)
    seed_logs(db, sid, 5, "b", per=5, legacy=True)
    h.wait_for(lambda: len(dead_ids(db, sid)) == 2, 60, "two dead letters", interval=0.2)
    time.sleep(12)   # the start-up run and two more prune ticks
    old, young = dead_ids(db, sid)
    assert h.metric(ar, "auditrelay_delivery_dead_letters_pruned_total", source=sid) is None
    ar.stop()
    db.batches.update_one({"_id": old}, {"$set": {"deadAt": int((time.time() - 31 * 86400) * 1000)}})
    ar.start()
    h.wait_for(lambda: dead_ids(db, sid) == [young], 30, "the old one pruned at start")
    # The metadata goes first, then the bodies (a second call).
    h.wait_for(lambda: db.bodies.find_one({"_id": old}) is None, 10, "the old body deleted")
    assert db.bodies.find_one({"_id": young})
    h.wait_for(lambda: h.metric(ar, "auditrelay_delivery_dead_letters_pruned_total",
                                source=sid) == 1, 10, "pruned counted")
    h.wait_for(lambda: [a for a in recv.delivered_logs("alert")
                        if a["alert"] == "dead_letters_pruned"], 30, "alert")
    assert "2592000s" in [a for a in recv.delivered_logs("alert")
                          if a["alert"] == "dead_letters_pruned"][0]["message"]


def test_kill9_mid_post_nothing_lost(wd):
    store, sim, ar, (recv,), key, admin = setup(wd, {"delivery_batch_max_logs": "200",
                                                    "delivery_timeout": "30"})
    db = store.db()
    recv.delay = 2
    sid = add_source(ar, key, admin, recv)
    ids = seed_logs(db, sid, 1000, per=200)
    h.wait_for(lambda: logs_of(recv, sid), 30, "first POST in progress")
    pid = ar.pids_by_name()["auditrelay-deliverd"]
    os.kill(pid, signal.SIGKILL)
    h.log("killed deliverd pid %d mid-POST" % pid)
    recv.delay = 0
    h.wait_for(lambda: store_all_delivered(db, sid, 1000), 90, "all delivered after restart",
               interval=0.5)
    assert ar.pids_by_name()["auditrelay-deliverd"] != pid
    # Every log accepted, none under two webhook-ids.
    check_consistent(recv, sid, ids)
    # The 5 batches kept their webhook-ids: 5 ids accepted, no more.
    assert len({r["id"] for r in recv.accepted() if r["body"].get("sourceId") == sid
                and r["body"].get("type") == "logs"}) == 5


def test_ssrf_loopback_refused_at_connect(wd):
    store, sim, ar, (recv,), key, admin = setup(wd, allow_private=False)
    db = store.db()
    # The API refuses a loopback callback. A public name that later
    # resolves to loopback (DNS rebinding) must still be refused when the
    # connection is made: stand in for it by rewriting a stored public URL.
    st, body, _ = ar.api("POST", "/add-source", {
        "sourceType": "google_workspace",
        "credentials": {"clientEmail": key["client_email"], "privateKey": key["private_key"],
                        "subject": admin, "scopes": ["admin.googleapis.com"]},
        "applications": ["login"], "logFetchInterval": 60, "callbackUrl": recv.url})
    assert st == 400, (st, body)
    created = h.add_source(ar, key, admin, "http://93.184.216.34/hook", ("login",), interval=60)
    sid = created["id"]
    db.sources.update_one({"_id": sid}, {"$set": {"callbackUrl": recv.url}})
    recv.set_secret(sid, h.source_secret(created))
    time.sleep(3)   # deliverd re-reads sources every rescan_interval (1 s)
    seed_logs(db, sid, 5)

    def refused():
        b = db.batches.find_one({"sourceId": sid, "kind": "logs"})
        return b and b.get("attempts") and b["attempts"][0]
    att = h.wait_for(refused, 30, "a refused attempt")
    h.log("attempt: %s" % att)
    assert "not a public address" in att["error"], att
    assert att["status"] == 0
    time.sleep(2)
    assert not logs_of(recv, sid), "the loopback receiver was reached"
    assert not store_delivered(db, sid)


def signed_with(recv, db, sid, secret, tag, total, what):
    """A receiver that knows only secret verifies 5 new logs; returns their ids."""
    recv.set_secret(sid, secret)
    ids = seed_logs(db, sid, 5, tag)
    h.wait_for(lambda: store_all_delivered(db, sid, total), 30, "delivered (%s)" % what)
    return ids


def test_signature_during_rotation(wd):
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    sid = add_source(ar, key, admin, recv)
    old = recv.secrets[sid]
    st, body, _ = ar.api("POST", "/sources/%s/webhook-secret" % sid)
    assert st in (200, 201), (st, body)
    new = h.source_secret(body)
    assert new != old
    doc = db.sources.find_one({"_id": sid})
    assert doc.get("previousWebhookSecret", {}).get("until", 0) > time.time() * 1000
    # A receiver that still knows only the old secret verifies, and so does
    # one that knows only the new one: both signatures are sent.
    ids = signed_with(recv, db, sid, old, "a", 5, "old secret")
    check_consistent(recv, sid, ids)
    ids2 = signed_with(recv, db, sid, new, "b", 10, "new secret")
    check_consistent(recv, sid, ids + ids2)
    # A credentials rotation leaves both webhook secrets readable (they
    # are bound to webhookSecretVersion, not to credentialsVersion).
    st, body, _ = ar.api("PUT", "/sources/%s/credentials" % sid,
                         {"serviceAccountKey": key, "subject": admin})
    assert st == 200 and body["credentialsVersion"] == 2, (st, body)
    time.sleep(2)   # deliverd re-reads the source
    ids3 = signed_with(recv, db, sid, old, "c", 15, "old, after PUT")
    ids4 = signed_with(recv, db, sid, new, "d", 20, "new, after PUT")
    check_consistent(recv, sid, ids + ids2 + ids3 + ids4)


def test_legacy_sealed_secrets(wd):
    """Blobs of the first format (AAD = the source id alone) still open:
    fetcherd builds its Google client from them, deliverd signs with the
    current and the previous secret."""
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    sid = add_source(ar, key, admin, recv)
    old = recv.secrets[sid]
    st, body, _ = ar.api("POST", "/sources/%s/webhook-secret" % sid)
    assert st == 200, (st, body)
    new = h.source_secret(body)
    ar.stop()
    aes = h.master_aes(ar)
    doc = db.sources.find_one({"_id": sid})
    legacy = {}
    for field, aad in (("credentials", h.secret_aad(sid, "credentials", 1)),
                       ("webhookSecret", h.secret_aad(sid, "webhookSecret", 2)),
                       ("previousWebhookSecret", h.secret_aad(sid, "webhookSecret", 1))):
        blob = dict(doc[field])
        pt = aes.decrypt(bytes(blob["nonce"]), bytes(blob["ct"]), aad)
        blob["nonce"] = os.urandom(12)
        blob["ct"] = aes.encrypt(blob["nonce"], pt, sid.encode())
        legacy[field] = blob
    db.sources.update_one({"_id": sid}, {"$set": legacy,
                                         "$unset": {"webhookSecretVersion": ""}})
    h.fetch_state_coll(db, sid).delete_many({})
    ar.start()
    h.wait_for(lambda: (h.fetch_state(db, sid) or {}).get("lastFetchAt"),
               30, "a fetch with legacy credentials")
    assert h.fetch_state(db, sid)["lastError"] is None
    ids = signed_with(recv, db, sid, old, "a", 5, "legacy previous")
    ids2 = signed_with(recv, db, sid, new, "b", 10, "legacy current")
    check_consistent(recv, sid, ids + ids2)
    # Reading changed nothing in the store.
    assert db.sources.find_one({"_id": sid})["credentials"]["ct"] == legacy["credentials"]["ct"]


def test_410_pauses_and_alerts(wd):
    store, sim, ar, (recv, other), key, admin = setup(wd, receivers=2)
    db = store.db()
    recv.status = lambda doc: 410 if doc and doc.get("type") == "logs" else 200
    sid = add_source(ar, key, admin, recv)
    other.set_secret(sid, recv.secrets[sid])
    ids = seed_logs(db, sid, 10)
    h.wait_for(lambda: (h.deliver_state(db, sid) or {}).get("status") == "callback_gone", 30,
               "callback_gone")
    n = len(logs_of(recv, sid))
    time.sleep(3)
    assert len(logs_of(recv, sid)) == n, "kept sending after 410"
    st, body, _ = ar.api("GET", "/sources/" + sid)
    assert body.get("status") == "callback_gone", body
    # A new callbackUrl resumes deliveries, the alert included.
    db.sources.update_one({"_id": sid}, {"$set": {"callbackUrl": other.url}})
    h.wait_for(lambda: store_all_delivered(db, sid, 10), 30, "delivered to the new callback")
    check_consistent(other, sid, ids)
    h.wait_for(lambda: [a for a in other.delivered_logs("alert") if a["alert"] == "callback_gone"],
               30, "callback_gone alert")


def test_delivered_metadata_outlives_its_intent(wd):
    """A delivered batch's metadata goes at its 2xx, but never while the
    batch's intent exists: fetcherd's recovery (docs/STORE.md) reads a
    batch without metadata as never committed and would read its logs
    again under a new batch id. That one is marked "delivered" and swept
    once its intent is gone."""
    store, sim, ar, (recv,), key, admin = setup(wd, {"delivery_batch_max_logs": "10"})
    db = store.db()
    sid = add_source(ar, key, admin, recv)
    seed_logs(db, sid, 20, per=10)
    bids = sorted(b["_id"] for b in db.batches.find({"sourceId": sid}))
    # A crash between commit and the intents' deletion leaves this one.
    db.intents.insert_one({"_id": bids[0], "sourceId": sid, "app": "login", "days": [],
                           "createdAt": int(time.time() * 1000), "epoch": 0})
    h.wait_for(lambda: store_all_delivered(db, sid, 20), 30, "delivered")
    t0 = time.time()
    h.wait_for(lambda: db.batches.find_one({"_id": bids[1]}) is None, 40,
               "delivered metadata deleted")
    h.log("delivered metadata deleted %.1f s after the last 2xx" % (time.time() - t0))
    assert db.batches.find_one({"_id": bids[0]})["state"] == "delivered", \
        "metadata deleted while its intent exists"
    db.intents.delete_one({"_id": bids[0]})
    h.wait_for(lambda: db.batches.find_one({"_id": bids[0]}) is None, 40,
               "swept once its intent is gone")


def test_body_partitions_dropped(wd):
    """Bodies live in bodies_* partitions, dropped whole once their span
    ended 3 minutes ago and nothing names them: a partition of long ago
    that holds a pending batch is read from (no hint), delivered, then
    dropped; one that nothing names is dropped; one an intent names and
    the current one stay. A dead letter's body moves to bodies_dead, so
    its partition goes too; a legacy body in `bodies` is delivered and
    deleted."""
    store, sim, ar, (recv,), key, admin = setup(wd)
    db = store.db()
    sid = add_source(ar, key, admin, recv)
    now = int(time.time() * 1000)
    db["bodies_202001010010"].insert_one({"_id": str(uuid.uuid4()), "sourceId": sid,
                                          "body": "{}", "logIds": []})
    db["bodies_202001010020"].insert_one({"_id": str(uuid.uuid4()), "sourceId": sid,
                                          "body": "{}", "logIds": []})
    db.intents.insert_one({"_id": str(uuid.uuid4()), "sourceId": "nosuch", "app": "login",
                           "bodyColl": "bodies_202001010020", "days": [], "createdAt": now,
                           "epoch": 0})
    young = body_coll(now)
    db[young].insert_one({"_id": str(uuid.uuid4()), "sourceId": sid, "body": "{}",
                          "logIds": []})
    ids = seed_logs(db, sid, 30, "old", per=10, coll="bodies_202001010000")
    ids += seed_logs(db, sid, 10, "legacy", per=10, legacy=True)
    h.wait_for(lambda: store_all_delivered(db, sid, 40), 60, "every batch delivered")
    check_consistent(recv, sid, ids)
    names = lambda: set(db.list_collection_names())
    h.wait_for(lambda: not {"bodies_202001010000", "bodies_202001010010"} & names(), 60,
               "the old partitions dropped", interval=0.5)
    assert {"bodies_202001010020", young} <= names(), names()
    h.wait_for(lambda: db.bodies.count_documents({"sourceId": sid}) == 0, 30,
               "the legacy body deleted")
    assert "dropped bodies_202001010000" in ar.log(), "no log line names the drop"
    # A dead letter of an old partition: its body moves, the partition goes.
    recv.status = lambda doc: 400 if doc and doc.get("type") == "logs" else 200
    seed_logs(db, sid, 5, "dead", per=5, coll="bodies_202001010030")
    dead = h.wait_for(lambda: db.batches.find_one({"sourceId": sid, "state": "dead"}), 60,
                      "a dead letter", interval=0.2)
    assert dead["bodyColl"] == "bodies_dead", dead
    assert db.bodies_dead.find_one({"_id": dead["_id"]})["body"].startswith('{"type":"logs"')
    h.wait_for(lambda: "bodies_202001010030" not in names(), 60,
               "the dead letter's partition dropped", interval=0.5)
    recv.status = 200
    st, body, _ = ar.api("POST", "/sources/%s/dead-letters/replay" % sid)
    assert st == 200 and body["replayed"] == 1, (st, body)
    h.wait_for(lambda: db.bodies_dead.count_documents({}) == 0, 60,
               "the replayed letter's body deleted")
    assert len(delivered_ids(recv, sid)) == 45


if __name__ == "__main__":
    h.run_tests([test_receiver_down_then_back, test_drop_after_commit_same_id,
                 test_429_retry_after, test_slow_receiver_does_not_delay_another,
                 test_400_dead_letters_alert_replay, test_kill9_mid_post_nothing_lost,
                 test_ssrf_loopback_refused_at_connect, test_signature_during_rotation,
                 test_legacy_sealed_secrets, test_410_pauses_and_alerts,
                 test_dead_letter_retention, test_dead_letter_kept_by_default,
                 test_delivered_metadata_outlives_its_intent,
                 test_body_partitions_dropped], "deliver")

