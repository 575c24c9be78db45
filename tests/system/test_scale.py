"""Scale: 1 000 idle sources (interval 60 s, no events) on one instance.
Ownership goes by partition, and no store call for leases runs on an event
loop, so no child misses its pings: none is restarted, every source is
polled (its fetch state's lastFetchAt moves; with AR_SCALE_STRICT=1, again
within 1.1 x its interval), and the leases collection stays bounded by
partitions x roles, not by sources. CPU of each daemon is logged.

One source is added through the REST API; the others are copies of its
document with their own ids, their credentials and webhook secret sealed
again under those ids (AES-256-GCM bound to source id, field and version,
as apid does), since 1 000 credential checks with Google would be the
test. CPU and peak RSS of each daemon are logged.
"""
import base64
import os
import time
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import harness as h
from procstat import cpu_s, mem_kb

NSOURCES = int(os.environ.get("AR_SCALE_SOURCES", "1000"))
INTERVAL = int(os.environ.get("AR_SCALE_INTERVAL", "60"))
# The benchmark (bench/run.sh) runs 10 000 sources at 300 s through here.
FIRST_ROUND_S = max(150, NSOURCES // 10)
# Every source polled again within 1.1 x its interval: asserted with
# AR_SCALE_STRICT=1 (bench/run.sh), where the machine is the benchmark's
# alone; a CI machine running other suites beside it may be slower to
# poll. The rest (no child killed, bounded leases, every source polled) is
# asserted always.
STRICT = os.environ.get("AR_SCALE_STRICT", "0") == "1"
PARTITIONS = 64
# One service account for all sources here: let it have the concurrency that
# a thousand accounts would have overall.
# How often the test reads every source's lastFetchAt: all the partitions'
# fetch state documents (at 10 000 sources 17 MB, which FerretDB 1.24
# serves at about 1 MB/s): often enough to time a round, rarely enough
# that the reading is not most of the store's work.
POLL_S = 2 if NSOURCES <= 2000 else 10
CFG = {"rescan_interval": "5", "log_verbose": "0", "fetch_initial_lookback": "60",
       "fetch_client_concurrency": "16", "fetch_max_concurrency": "32"}


def reseal(aes, field, name, version, old_id, new_id):
    """field ({keyId, nonce, ct, ...}) opened under old_id, sealed under new_id."""
    pt = aes.decrypt(bytes(field["nonce"]), bytes(field["ct"]), h.secret_aad(old_id, name, version))
    nonce = os.urandom(12)
    out = dict(field)
    out["nonce"] = nonce
    out["ct"] = aes.encrypt(nonce, pt, h.secret_aad(new_id, name, version))
    return out


def clone_sources(db, keyfile, template, n):
    with open(keyfile) as f:
        aes = AESGCM(base64.b64decode(f.read().strip()))
    docs = []
    for _ in range(n):
        d = dict(template)
        d["_id"] = str(uuid.uuid4())
        d["credentials"] = reseal(aes, template["credentials"], "credentials",
                                  template["credentialsVersion"], template["_id"], d["_id"])
        d["webhookSecret"] = reseal(aes, template["webhookSecret"], "webhookSecret",
                                    template["webhookSecretVersion"], template["_id"], d["_id"])
        docs.append(d)
    for i in range(0, len(docs), 200):
        db.sources.insert_many(docs[i:i + 200])
    return [d["_id"] for d in docs]


def fetched_at(db):
    return {sid: e.get("lastFetchAt") or 0 for sid, e in h.fetch_states(db).items()}


def restarts(ar):
    st, body, _ = ar.healthz()
    return {c["name"]: c.get("restarts", 0) for c in (body or {}).get("children", [])}


def test_thousand_idle_sources(wd):
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag", "--seed", "3"])
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, "C01scale", ("login",), rate=0)
    ar = h.Auditrelay(wd, store, sim, extra=CFG).start()
    db = store.db()
    created = h.add_source(ar, key, admin, recv.url, ("login",), interval=INTERVAL)
    template = db.sources.find_one({"_id": created["id"]})
    t0 = time.monotonic()
    ids = [created["id"]] + clone_sources(db, ar.keyfile, template, NSOURCES - 1)
    h.log("%d sources in the store (%d cloned in %.1fs)" % (len(ids), NSOURCES - 1,
                                                            time.monotonic() - t0))
    pids = ar.pids_by_name()
    r0 = restarts(ar)
    cpu0 = {n: cpu_s(p, gone_ok=False) for n, p in pids.items()}
    w0 = time.monotonic()

    # Every source polled once (taken with its partition, kicked at
    # once), then again on its interval: lastFetchAt moves for each.
    want = set(ids)
    first, late = None, list(ids)
    try:
        first = h.wait_for(lambda: (lambda f: f if want <= {k for k, v in f.items() if v}
                                    else None)(fetched_at(db)),
                           FIRST_ROUND_S, "every source polled once", interval=POLL_S)
    except AssertionError as e:
        f = fetched_at(db)
        h.log("%s: %d of %d sources polled at least once"
              % (e, len([i for i in ids if f.get(i)]), len(ids)))
    if first is not None:
        t_first = time.monotonic()
        h.log("all %d sources polled once %.1fs after they were stored"
              % (len(ids), t_first - t0))
        end = min(t_first + INTERVAL * 1.1 + 15,
                  t0 + max(175, FIRST_ROUND_S + INTERVAL * 1.2))
        while late and time.monotonic() < end:
            time.sleep(POLL_S)
            f = fetched_at(db)
            late = [i for i in ids if f.get(i, 0) <= first[i]]
        h.log("%d of %d sources polled again within %.1fs of the first round (interval %ds)"
              % (len(ids) - len(late), len(ids), time.monotonic() - t_first, INTERVAL))

    elapsed = time.monotonic() - w0
    cpu = {}
    for n, p in pids.items():
        try:
            cpu[n] = "%.1f%%" % (100.0 * (cpu_s(p, gone_ok=False) - cpu0[n]) / elapsed)
        except OSError:
            cpu[n] = "restarted"
    h.log("CPU over %.0fs: %s" % (elapsed, ", ".join("%s %s" % kv for kv in sorted(cpu.items()))))
    mem = {}
    for n, p in sorted(pids.items()):
        try:
            mem[n] = "RSS %.1f MB, peak %.1f MB" % tuple(x / 1024.0 for x in mem_kb(p, gone_ok=False))
        except OSError:
            mem[n] = "restarted"
    h.log("memory: %s" % "; ".join("%s %s" % kv for kv in sorted(mem.items())))
    nleases = db.leases.count_documents({})
    resources = {l["resource"] for l in db.leases.find({}, {"resource": 1})}
    kills = [l for l in ar.log().split("\n") if "missed" in l and "ping" in l]
    h.log("leases collection: %d documents for %d resources; children restarted: %s; "
          "killed for missed pings: %d" % (nleases, len(resources),
                                          {n: restarts(ar).get(n, 0) - r0.get(n, 0) for n in r0},
                                          len(kills)))

    assert not kills, kills[:3]
    assert ar.pids_by_name() == pids, "a child was restarted: %s -> %s" % (pids, ar.pids_by_name())
    assert restarts(ar) == r0, (r0, restarts(ar))
    assert nleases <= 2 * 2 * PARTITIONS, nleases
    assert all(r.split(":", 1)[1].startswith("p") for r in resources), resources
    assert first is not None, "not every source was polled"
    if STRICT:
        assert not late, "%d sources not polled again within the interval" % len(late)
    assert ar.stop() == 0


if __name__ == "__main__":
    h.run_tests([test_thousand_idle_sources], "scale")
