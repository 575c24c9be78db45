#!/usr/bin/env python3
"""Backlog throughput: N events already published in the simulator over
three applications, one source added, time from add-source to the last
event acknowledged (2xx) by the receiver.

In the same run, for ratios that the machine's noise does not move much:
  - a bare relay (this script: pages the simulator with a real OAuth token
    and POSTs every page unchanged to a plain receiver; no store, no
    normalization, no signing);
  - the store's ceiling: insertMany of documents holding the same bytes
    (1000 normalized-size events per document), as fetcherd's batches do.
Also: CPU microseconds per event of each auditrelay process (from
/proc/PID/stat) and store operations per event by kind (serverStatus
opcounters where the store reports them).

usage: AR_BIN_DIR=build/bin python3 bench/throughput.py [--events 20000 ...]
       [--json out.json]
"""
import argparse
import http.client
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
import harness as h  # noqa: E402
from procstat import cpu_s  # noqa: E402

APPS = ("login", "admin", "drive")


class PlainReceiver:
    """Answers 200 to every POST and counts the events in the bodies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = 0
        self.last = 0.0
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                n = len(json.loads(body).get("items", []))
                with recv.lock:
                    recv.events += n
                    recv.last = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def bare_relay(sim, key, admin, n):
    """Page every application through the simulator and POST each page
    unchanged; returns events/s."""
    st, b, _ = sim.call("POST", "/_sim/sign-jwt", {"clientEmail": key["client_email"],
                                                    "subject": admin})
    assert st == 200, (st, b)
    assertion = b.get("assertion") or b.get("jwt")
    su = urllib.parse.urlparse(sim.base)
    conn = http.client.HTTPConnection(su.hostname, su.port, timeout=60)
    conn.request("POST", "/token", urllib.parse.urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}),
        {"Content-Type": "application/x-www-form-urlencoded"})
    tok = json.loads(conn.getresponse().read())["access_token"]
    recv = PlainReceiver()
    out = http.client.HTTPConnection("127.0.0.1", recv.port, timeout=60)
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    t0 = time.time()
    total = 0
    for app in APPS:
        token = None
        while True:
            q = {"maxResults": "1000", "startTime": start}
            if token:
                q["pageToken"] = token
            conn.request("GET", "/admin/reports/v1/activity/users/all/applications/%s?%s" % (
                app, urllib.parse.urlencode(q)), headers={"Authorization": "Bearer " + tok})
            page = conn.getresponse().read()
            doc = json.loads(page)
            total += len(doc.get("items", []))
            out.request("POST", "/hook", page, {"Content-Type": "application/json"})
            out.getresponse().read()
            token = doc.get("nextPageToken")
            if not token:
                break
    took = time.time() - t0
    recv.stop()
    assert total >= n, (total, n)
    return total / took


def store_ceiling(store, n):
    """insertMany of documents of 1000 events of the normalized size."""
    db = store.db()
    ev = json.dumps({"id": "0" * 32, "timestamp": "2026-12-01T00:00:00.000Z", "application": "login",
                     "actor": {"email": "user1@c.example.com", "profileId": "1" * 21},
                     "ipAddress": "203.0.113.1", "eventType": "login_type",
                     "eventName": "login_event", "details": {"p": "v1", "n": 1},
                     "raw": {"kind": "admin#reports#activity", "id": {"time": "x" * 24}}})
    body = "[" + ",".join([ev] * 1000) + "]"
    docs = n // 1000 or 1
    db.drop_collection("bench_ceiling")
    t0 = time.time()
    for i in range(docs):
        db.bench_ceiling.insert_one({"_id": "b%d" % i, "state": "pending", "body": body})
    took = time.time() - t0
    db.drop_collection("bench_ceiling")
    return docs * 1000 / took


def opcounters(store):
    try:
        return store.db().command("serverStatus").get("opcounters", {})
    except Exception:  # noqa: BLE001 - FerretDB may not report them
        return {}


def run(n, seed_cid):
    wd = h.Workdir("bench-throughput-%d" % n)
    res = {"events": n}
    try:
        store = h.Store(wd.path)
        sim = h.Sim(wd.path, ["--no-lag"])
        key, admin = h.sim_tenant(sim, seed_cid, apps=APPS, rate=0)
        t = time.time()
        h.inject_backlog(sim, seed_cid, n, APPS)
        h.log("injected %d events in %.1fs" % (n, time.time() - t))
        res["bare_relay_eps"] = bare_relay(sim, key, admin, n)
        res["store_ceiling_eps"] = store_ceiling(store, n)
        recv = h.Receiver()
        ar = h.Auditrelay(wd.path, store, sim, verbose=os.environ.get("AR_BENCH_VERBOSE") == "1",
                          extra={"fetch_initial_lookback": "3600"})
        ar.start()
        pids = ar.pids_by_name()
        if not store.external:
            pids["store"] = store.proc.pid  # the store's CPU per event too
        cpu0 = {k: cpu_s(v) for k, v in pids.items()}
        ops0 = opcounters(store)
        t0 = time.time()
        created = h.add_source(ar, key, admin, recv.url, apps=APPS, interval=60)
        recv.set_secret(created["id"], h.source_secret(created))

        ids, pos = set(), [0]

        def done():
            # Only the requests since the last look: a scan of every
            # delivered log each time would hold the GIL from the
            # receiver's threads for seconds at 2 000 000 events.
            with recv.lock:
                reqs = recv.requests[pos[0]:]
            pos[0] += len(reqs)
            for r in reqs:
                b = r["body"]
                if 200 <= r["status"] < 300 and r["sig_ok"] and b and b.get("type") == "logs":
                    ids.update(l["id"] for l in b.get("logs", []))
            return len(ids) >= n

        h.wait_for(done, 3600, "%d events delivered" % n, interval=0.2)
        last = max(r["at"] for r in recv.accepted())
        took = last - t0
        res["auditrelay_eps"] = n / took
        res["seconds"] = took
        res["cpu_us_per_event"] = {k: (cpu_s(v) - cpu0[k]) * 1e6 / n for k, v in pids.items()}
        ops1 = opcounters(store)
        res["store_ops_per_event"] = {k: (ops1.get(k, 0) - ops0.get(k, 0)) / n for k in ops1}
        dups = len(recv.delivered_logs()) - n
        res["raw_duplicates"] = dups
        allids = {l["id"] for l in recv.delivered_logs()}
        lost, dup_new, repeats = h.delivery_check(recv, allids)
        res["dup_new_id"] = len(dup_new)
        res["repeats_same_id"] = repeats
        wids = [r["id"] for r in recv.accepted() if r["body"] and r["body"].get("type") == "logs"]
        res["batches"] = len(set(wids))
        res["batch_resends"] = len(wids) - len(set(wids))
        res["ratio_bare"] = res["auditrelay_eps"] / res["bare_relay_eps"]
        res["ratio_store"] = res["auditrelay_eps"] / res["store_ceiling_eps"]
        ar.stop()
        recv.stop()
        wd.cleanup(os.environ.get("AR_BENCH_KEEP") != "1")
    finally:
        h.stop_all()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, nargs="+", default=[20000, 200000])
    ap.add_argument("--json", default="bench-throughput.json")
    a = ap.parse_args()
    rows = []
    for i, n in enumerate(a.events):
        rows.append(run(n, "CBENCH%d" % i))
    print("%10s %12s %12s %12s %8s %8s %6s %6s  %s" % (
        "events", "auditrelay/s", "bare/s", "store/s", "x bare", "x store", "resent", "newid",
        "CPU us/event"))
    for r in rows:
        print("%10d %12.0f %12.0f %12.0f %8.3f %8.3f %6d %6d  %s" % (
            r["events"], r["auditrelay_eps"], r["bare_relay_eps"], r["store_ceiling_eps"],
            r["ratio_bare"], r["ratio_store"], r["batch_resends"], r["dup_new_id"],
            " ".join("%s=%.0f" % (k.replace("auditrelay-", ""), v)
                     for k, v in sorted(r["cpu_us_per_event"].items()))))
    with open(a.json, "w") as f:
        json.dump(rows, f, indent=1)
    print("written %s" % a.json)


if __name__ == "__main__":
    main()
