"""System tests of GET /metrics: the real stack with a source, the text
exposition validated by promtool (Debian's prometheus package), the metric
families the issue lists present with per-source labels, and the token
protection. And the log dialect (#17): the daemons' real stderr names a
source only as source=ID, and the journalctl -g examples of auditrelayd(8),
LOGS, read from the man page, find the fetcher's and the deliverer's lines."""
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import harness as h

MAN8 = os.path.join(h.SRC, "man", "auditrelayd.8")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# What each -g example of auditrelayd(8) must find: the identifiers whose
# lines it matches, at least. A new example needs a row here.
GREP_FINDS = {
    "source=ID": {"auditrelay-apid", "auditrelay-fetcherd", "auditrelay-deliverd"},
    "source=ID app=login": {"auditrelay-fetcherd"},
    "batch=ID": {"auditrelay-deliverd"},
}

# Families that must exist once a source fetched and delivered.
PER_SOURCE = (
    "auditrelay_fetch_events_stored_total",
    "auditrelay_fetch_late_recovered_total",
    "auditrelay_fetch_schema_drift_total",
    "auditrelay_fetch_lag_seconds",
    "auditrelay_delivery_logs_total",
    "auditrelay_delivery_batches_total",
    "auditrelay_delivery_batches_retried_total",
    "auditrelay_delivery_dead_letters_total",
    "auditrelay_source_last_fetch_timestamp_seconds",
    "auditrelay_source_last_delivery_timestamp_seconds",
    "auditrelay_source_status",
    "auditrelay_backfills",
    "auditrelay_backfill_progress_ratio",
    "auditrelay_backfill_events_stored_total",
)
PER_DAEMON = (
    "auditrelay_daemon_restarts_total",
    "auditrelay_daemon_up",
    "auditrelay_daemon_ipc_messages_total",
)
# Exported as soon as fetcherd's stats documents carry eventsFetched and
# duplicates (apid/metrics.c maps them); logged, not required.
LATER = (
    "auditrelay_fetch_events_fetched_total",
    "auditrelay_fetch_duplicates_total",
    "auditrelay_daemon_store_errors_total",
)


def fetch_metrics(ar, token=True):
    st, body, hdrs = ar.api("GET", "/metrics", token=token)
    return st, body, hdrs


def families(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        assert m, "unparsable sample line: %r" % line
        out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


def promtool_check(text):
    exe = shutil.which("promtool")
    if exe is None:
        h.log("SKIP promtool: not installed (apt-get install prometheus); "
              "metrics not validated by promtool")
        return
    p = subprocess.run([exe, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace").strip()
    h.log("promtool check metrics: rc=%d %s" % (p.returncode, out or "(no findings)"))
    assert p.returncode == 0 and not out, out


def test_metrics_promtool(wd):
    store = h.Store(wd)
    sim = h.Sim(wd)
    ar = h.Auditrelay(wd, store, sim, extra={"log_verbose": "0"}).start()
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, "C01metrics", apps=("login", "drive"), rate=10)
    src = h.add_source(ar, key, admin, recv.url, apps=("login", "drive"), interval=1)
    sid = src["id"]
    recv.set_secret(sid, h.source_secret(src))

    # Unauthenticated: refused (metrics_public is off by default).
    st, _, _ = fetch_metrics(ar, token=False)
    assert st == 401, st

    h.wait_for(lambda: len(recv.delivered_logs()) >= 20, 90, "20 logs delivered", 0.5)
    # A backfill, for its families (apid/metrics.c, metrics_backfills).
    day = lambda ago: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - ago * 86400))
    st, b, _ = ar.api("POST", "/sources/%s/backfill" % sid,
                      {"application": "drive", "from": day(2), "to": day(1)})
    assert st == 202, (st, b)

    def ready():
        st, body, _ = fetch_metrics(ar)
        if st != 200:
            return None
        f = families(body)
        missing = [n for n in PER_SOURCE + PER_DAEMON if n not in f]
        return body if not missing else None
    try:
        text = h.wait_for(ready, 60, "every metric family", 1)
    except AssertionError:
        st, body, _ = fetch_metrics(ar)
        f = families(body) if st == 200 else {}
        h.log("missing: %s" % [n for n in PER_SOURCE + PER_DAEMON if n not in f])
        h.log(body if isinstance(body, str) else repr(body))
        raise
    st, _, hdrs = fetch_metrics(ar)
    assert hdrs["Content-Type"].startswith("text/plain; version=0.0.4"), hdrs["Content-Type"]
    f = families(text)
    promtool_check(text)

    # Per source and application labels.
    stored = [l for l, v in f["auditrelay_fetch_events_stored_total"] if sid in l]
    assert any('app="login"' in l for l in stored), stored
    assert any('app="drive"' in l for l in stored), stored
    ev = sum(v for l, v in f["auditrelay_fetch_events_stored_total"] if sid in l)
    assert ev > 0, ev
    later = [n for n in LATER if n not in f]
    if later:
        h.log("not exported yet (no source data): %s" % ", ".join(later))
    if "auditrelay_fetch_events_fetched_total" in f:
        fetched = sum(v for l, v in f["auditrelay_fetch_events_fetched_total"] if sid in l)
        assert fetched >= ev, (ev, fetched)
    else:
        fetched = -1
    # Delivery counters reach the store within a flush interval (2 s).
    def delivered():
        _, text2, _ = fetch_metrics(ar)
        return sum(v for l, v in families(text2).get("auditrelay_delivery_logs_total", [])
                   if sid in l) >= 20
    h.wait_for(delivered, 15, "delivery counters in /metrics", interval=0.5)
    _, text2, _ = fetch_metrics(ar)
    dl = sum(v for l, v in families(text2)["auditrelay_delivery_logs_total"] if sid in l)
    q = {l: v for l, v in f["auditrelay_fetch_lag_seconds"] if sid in l}
    assert any('quantile="0.5"' in l for l in q) and any('quantile="0.99"' in l for l in q), q
    status = {l: v for l, v in f["auditrelay_source_status"] if sid in l}
    assert any('status="active"' in l and v == 1 for l, v in status.items()), status
    daemons = {l for l, _ in f["auditrelay_daemon_restarts_total"]}
    for d in ("fetcherd", "deliverd", "apid"):
        assert any(d in l for l in daemons), daemons
    ipc = sum(v for _, v in f["auditrelay_daemon_ipc_messages_total"])
    assert ipc > 0, ipc
    h.log("%d families, %d samples; events stored %d, fetched %d, delivered %d" % (
        len(f), sum(len(v) for v in f.values()), ev, fetched, dl))

    # Status follows the API's: paused.
    st, _, _ = ar.api("PATCH", "/sources/" + sid, {"paused": True})
    assert st == 200, st
    st, text2, _ = fetch_metrics(ar)
    f = families(text2)
    assert ('{source="%s",status="paused"}' % sid, 1.0) in f["auditrelay_source_status"], \
        f["auditrelay_source_status"]

    # The output stays valid after a removal too.
    st, _, _ = ar.api("DELETE", "/remove-source/" + sid)
    assert st in (200, 204), st
    st, text2, _ = fetch_metrics(ar)
    assert st == 200
    promtool_check(text2)
    recv.stop()


def man_greps():
    """The -g 'RE' patterns of the man page's examples."""
    with open(MAN8) as f:
        examples = h.man_log_examples(f.read())
    return [m.group(1) for ln in examples for m in [re.search(r"-g '([^']*)'", ln)] if m]


def test_log_dialect(wd):
    store = h.Store(wd)
    sim = h.Sim(wd)
    ar = h.Auditrelay(wd, store, sim).start()
    failed = {}

    def status(doc):
        # The first batch is refused once: deliverd logs its retry.
        if isinstance(doc, dict) and not failed and doc.get("batchId"):
            failed["batch"] = doc["batchId"]
            return 503
        return 200
    recv = h.Receiver()
    recv.status = status
    key, admin = h.sim_tenant(sim, "C01dialect", apps=("login", "drive"), rate=10)
    src = h.add_source(ar, key, admin, recv.url, apps=("login", "drive"), interval=1)
    sid = src["id"]
    recv.set_secret(sid, h.source_secret(src))
    h.wait_for(lambda: len(recv.delivered_logs()) >= 20 and failed and
               any(r["body"].get("batchId") == failed["batch"] for r in recv.accepted()),
               90, "20 logs delivered, the refused batch among them", 0.5)
    ar.api("PATCH", "/sources/" + sid, {"paused": True})
    time.sleep(1)
    assert ar.stop() == 0
    lines = []
    for ln in ar.log().splitlines():
        m = re.match(r"^\S+ (auditrelay[a-z-]*)\[\d+\]: (.*)$", ln)
        if m:
            lines.append((m.group(1), m.group(2)))
    assert len(lines) > 20, ar.log()[-2000:]
    # Every line naming a source says source=ID; no "source ID", "source ID:".
    named = [(i, l) for i, l in lines if sid in l]
    other = [l for _, l in named if l.count(sid) != l.count("source=" + sid)]
    old = [l for _, l in lines if re.search(r"\bsource[ :]+" + UUID, l)]
    by = {}
    for i, _ in named:
        by[i] = by.get(i, 0) + 1
    h.log("%d lines, %d name the source (by daemon %s)" % (len(lines), len(named), by))
    assert not other, "lines naming the source otherwise than source=ID: %r" % other[:5]
    assert not old, "lines saying 'source ID': %r" % old[:5]
    assert {"auditrelay-fetcherd", "auditrelay-deliverd"} <= set(by), by
    # The other ids the same way: window=START..END, partition=ID, pid=N.
    wins = [l for i, l in lines if i == "auditrelay-fetcherd" and
            re.search(r"\bsource=%s app=\S+ .*\bwindow=\d+\.\.\d+" % sid, l)]
    old = [l for _, l in lines if re.search(r"\bwindow \d|\bpartition (fetch|deliver):|"
                                            r"\bpid \d|\bbatch %s" % UUID, l)]
    parts = [l for _, l in lines if re.search(r"\bpartition=(fetch|deliver):p\d+ ", l)]
    h.log("%d window= lines, %d partition= lines" % (len(wins), len(parts)))
    assert wins and parts, (wins[:2], parts[:2])
    assert not old, "ids not as key=value: %r" % old[:5]
    # The man page's -g examples find what they say, on these lines.
    greps = man_greps()
    assert greps and set(greps) == set(GREP_FINDS), (greps, sorted(GREP_FINDS))
    for g in greps:
        rx = re.compile(g.replace("ID", failed["batch"] if g.startswith("batch=") else sid))
        hit = {}
        for i, l in lines:
            if rx.search(l):
                hit[i] = hit.get(i, 0) + 1
        h.log("journalctl -g %r finds %s" % (g, hit))
        assert GREP_FINDS[g] <= set(hit), (g, hit)
    recv.stop()


def test_metrics_public(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store, extra={"metrics_public": "1"}).start()
    st, body, _ = fetch_metrics(ar, token=False)
    assert st == 200, st
    promtool_check(body)
    # Other endpoints stay protected.
    st, _, _ = ar.api("GET", "/sources", token=False)
    assert st == 401, st


def test_es_export_store_stall(wd):
    """The Elasticsearch export reads the store on a worker thread: an
    export that starts while the store is stalled (SIGSTOP of FerretDB) does
    not hold apid's loop, so apid is not restarted and /healthz answers
    within 1 s; the export works again after SIGCONT. The _bulk endpoint is
    a local sink (tests/elasticsearch checks the documents against a real
    Elasticsearch)."""
    if os.environ.get("AUDITRELAY_TEST_MONGODB_URI"):
        h.log("external store: cannot SIGSTOP it; skipped")
        return
    store = h.Store(wd)
    sim = h.Sim(wd)
    es = h.Receiver()
    es_url = "http://127.0.0.1:%d" % es.port
    ar = h.Auditrelay(wd, store, sim, extra={"elasticsearch_url": es_url}).start()
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, "C01esstall", apps=("login",), rate=2)
    sid = h.add_source(ar, key, admin, recv.url, apps=("login",), interval=1)["id"]

    def bulk_with_source(after):
        with es.lock:
            got = [r for r in es.requests if r["at"] > after and sid.encode() in r["raw"]]
        return got[-1] if got else None
    first = h.wait_for(lambda: bulk_with_source(0), 70, "an export with the source", 0.2)
    pids = ar.pids_by_name()
    assert len(pids) == 3, pids
    # Exports start every 30 s: stop the store half a second before the
    # next one, so that it begins while the store still seems healthy.
    time.sleep(max(0.0, first["at"] + 29.5 - time.time()))
    os.kill(store.proc.pid, signal.SIGSTOP)
    t_stop = time.time()
    slowest = 0.0
    try:
        while time.time() - t_stop < 20:
            t0 = time.monotonic()
            st, body, _ = ar.healthz()
            slowest = max(slowest, time.monotonic() - t0)
            assert st in (200, 503) and isinstance(body, dict), (st, body)
            assert slowest < 1.0, "healthz took %.2fs during the stall" % slowest
            time.sleep(0.25)
    finally:
        os.kill(store.proc.pid, signal.SIGCONT)
    h.log("es export stall: healthz slowest %.3fs during the 20 s stall" % slowest)
    h.wait_for(lambda: bulk_with_source(t_stop + 20), 100, "an export after the stall", 0.5)
    assert ar.pids_by_name() == pids, "a daemon was restarted during the stall"


if __name__ == "__main__":
    h.run_tests([test_metrics_promtool, test_metrics_public, test_log_dialect,
                 test_es_export_store_stall], "observability")
