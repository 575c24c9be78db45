"""Elasticsearch export against a real Elasticsearch 7.17 (the integ-test
zip from the local Maven repository): metric documents per source and
application with deterministic ids, an alert document per alert, failures
logged once per state change. Not part of ctest (needs Java, ~2 minutes).

Usage: python3 tests/elasticsearch/check.py
Env: AR_BIN_DIR (build/bin), ES_ZIP (path of elasticsearch-7.17.x.zip),
AR_KEEP_TMP=1 keeps the logs. Prints "elasticsearch: SKIP ..." and exits 0
when Java or the zip (and Maven to fetch it) are missing.
"""
import base64
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import harness as h  # noqa: E402

ES_VERSION = "7.17.10"
ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:%s:zip" % ES_VERSION
ES_USER = "auditrelay-es"
PREFIX = "artest"
AUTH = "elastic:es-canary-" + base64.b16encode(os.urandom(6)).decode().lower()


def skip(why):
    print("elasticsearch: SKIP: %s" % why)
    sys.exit(0)


def find_zip():
    z = os.environ.get("ES_ZIP")
    if z:
        return z
    pat = os.path.expanduser("~/.m2/repository/org/elasticsearch/distribution/integ-test-zip/"
                             "elasticsearch/%s/elasticsearch-%s.zip" % (ES_VERSION, ES_VERSION))
    if not os.path.exists(pat) and shutil.which("mvn"):
        h.log("fetching %s with maven" % ES_ARTIFACT)
        subprocess.run(["mvn", "-q", "dependency:get", "-Dartifact=" + ES_ARTIFACT,
                        "-Dtransitive=false"], timeout=600, check=False)
    return pat if os.path.exists(pat) else None


def es_user():
    """A non-root user to run Elasticsearch (it refuses root)."""
    if os.getuid() != 0:
        return None
    try:
        pwd.getpwnam(ES_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", ES_USER], check=True, timeout=60)
    return ES_USER


class Elasticsearch:
    def __init__(self, wd, zip_path):
        self.dir = os.path.join(wd, "es")
        os.makedirs(self.dir)
        subprocess.run(["unzip", "-q", zip_path, "-d", self.dir], check=True, timeout=300)
        self.home = glob.glob(os.path.join(self.dir, "elasticsearch-*"))[0]
        self.port = h.free_port()
        tport = h.free_port()
        user = es_user()
        if user:
            subprocess.run(["chown", "-R", user, self.dir], check=True, timeout=120)
            os.chmod(wd, 0o755)
        java = os.path.realpath(shutil.which("java"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "ES_JAVA_HOME": os.path.dirname(os.path.dirname(java)),
               "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
               "HOME": self.dir}
        args = [os.path.join(self.home, "bin", "elasticsearch"),
                "-E", "discovery.type=single-node", "-E", "http.port=%d" % self.port,
                "-E", "transport.port=%d" % tport, "-E", "network.host=127.0.0.1",
                "-E", "path.data=" + os.path.join(self.dir, "data"),
                "-E", "path.logs=" + os.path.join(self.dir, "logs"),
                "-E", "xpack.security.enabled=false", "-E", "xpack.ml.enabled=false"]
        if user:
            args = ["runuser", "-u", user, "--"] + ["env"] + ["%s=%s" % kv for kv in env.items()] \
                + args
        self.logpath = os.path.join(wd, "elasticsearch.log")
        with open(self.logpath, "ab") as f:
            self.proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        self.base = "http://127.0.0.1:%d" % self.port
        h.log("elasticsearch %s starting on %s (pid %d)" % (ES_VERSION, self.base,
                                                            self.proc.pid))

    def up(self):
        if self.proc.poll() is not None:
            raise AssertionError("elasticsearch exited %s: %s" % (
                self.proc.returncode, open(self.logpath, errors="replace").read()[-3000:]))
        st, b = self.call("GET", "/_cluster/health")
        return st == 200 and b.get("status") in ("green", "yellow")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
        except (urllib.error.URLError, ConnectionError, OSError):
            return 0, None

    def search(self, index, query, size=200):
        st, b = self.call("POST", "/%s/_search" % index,
                          {"query": query, "size": size, "version": True,
                           "sort": [{"@timestamp": "asc"}]})
        if st != 200:
            return []
        return b["hits"]["hits"]

    def stop(self):
        """SIGTERM to the process group we started (runuser + java)."""
        if self.proc.poll() is not None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        h.log("elasticsearch stopped (exit %s)" % self.proc.returncode)


def run(wd, zip_path):
    es = Elasticsearch(wd, zip_path)
    try:
        # The stack starts while Elasticsearch is still booting: the first
        # exports fail (logged once), then work (logged once).
        store = h.Store(wd)
        sim = h.Sim(wd)
        ar = h.Auditrelay(wd, store, sim, extra={
            "log_verbose": "0",
            "fetch_credentials_retry": "2",
            "elasticsearch_url": es.base + "/",
            "elasticsearch_auth": AUTH,
            "elasticsearch_index": PREFIX}).start()
        recv = h.Receiver()
        cid = "C01elastic"
        key, admin = h.sim_tenant(sim, cid, apps=("login", "drive"), rate=5)
        src = h.add_source(ar, key, admin, recv.url, apps=("login", "drive"), interval=1)
        sid = src["id"]
        recv.set_secret(sid, h.source_secret(src))
        h.wait_for(es.up, 240, "elasticsearch up", 1)
        h.log("elasticsearch is up")
        h.wait_for(lambda: len(recv.delivered_logs()) >= 5, 90, "5 logs delivered", 0.5)

        # An alert: Google refuses the deleted key; fetcherd stores
        # credentials_invalid and an alert.
        st, _, _ = sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (
            cid, key["client_email"]), {"revokeKeys": True})
        assert st in (200, 204), st
        sim.call("POST", "/_sim/tokens/revoke", {"clientEmail": key["client_email"]})
        h.wait_for(lambda: ar.api("GET", "/sources/" + sid)[1]["status"] == "credentials_invalid",
                   90, "source credentials_invalid", 0.5)
        h.log("source is credentials_invalid")

        # Other alerts may come first (schema_drift: the live simulator
        # emits event names the first window did not hold).
        q_alert = {"bool": {"filter": [{"term": {"labels.source_id.keyword": sid}},
                                       {"term": {"event.kind.keyword": "alert"}},
                                       {"term": {"event.action.keyword": "credentials_invalid"}}]}}
        alerts = h.wait_for(lambda: es.search(PREFIX + "-alerts", q_alert), 120,
                            "a credentials_invalid alert document in %s-alerts" % PREFIX, 2)
        a = alerts[0]
        h.log("alert document: _id=%s %s" % (a["_id"], json.dumps(a["_source"])[:400]))
        assert a["_source"]["event"]["action"] == "credentials_invalid", a
        assert a["_source"]["event"]["id"] == a["_id"], a
        assert a["_source"]["message"], a
        assert a["_source"]["service"]["name"] == "auditrelay", a
        assert a["_source"]["@timestamp"].endswith("Z"), a

        q_fetch = {"bool": {"filter": [{"term": {"labels.source_id.keyword": sid}},
                                       {"term": {"event.dataset.keyword": "auditrelay.fetch"}},
                                       {"term": {"labels.application.keyword": "login"}}]}}
        q_deliv = {"bool": {"filter": [{"term": {"labels.source_id.keyword": sid}},
                                       {"term": {"event.dataset.keyword": "auditrelay.delivery"}}]}}
        fetch = h.wait_for(lambda: es.search(PREFIX + "-metrics-*", q_fetch), 90,
                           "fetch metric documents", 2)
        deliv = h.wait_for(lambda: es.search(PREFIX + "-metrics-*", q_deliv), 90,
                           "delivery metric documents", 2)
        m = fetch[-1]["_source"]
        h.log("metric document: _id=%s %s" % (fetch[-1]["_id"], json.dumps(m)[:600]))
        assert m["event"]["kind"] == "metric", m
        assert m["auditrelay"]["events_stored"] > 0, m
        assert "p50_ms" in m["auditrelay"]["lag"] and "p99_ms" in m["auditrelay"]["lag"], m
        assert m["auditrelay"]["status"] in ("active", "credentials_invalid"), m
        assert deliv[-1]["_source"]["auditrelay"]["delivered_logs"] >= 5, deliv[-1]

        # Deterministic ids: one document per (source, app, minute), even
        # though every minute sees two exports.
        # Exports every 30 s: within three of them some minute sees two,
        # and the second must overwrite the first (_version 2).
        fetch = h.wait_for(lambda: [x for x in es.search(PREFIX + "-metrics-*", q_fetch)
                                    if x["_version"] >= 2] and
                           es.search(PREFIX + "-metrics-*", q_fetch), 100,
                           "a minute exported twice", 2)
        ids = [x["_id"] for x in fetch]
        minutes = {x["_source"]["@timestamp"] for x in fetch}
        h.log("%d fetch metric documents for %s/login over %d minutes" % (
            len(ids), sid, len(minutes)))
        assert len(ids) == len(set(ids)) == len(minutes), ids
        # Two exports a minute: the second overwrote the first (version 2).
        assert max(x["_version"] for x in fetch) >= 2, [(x["_id"], x["_version"]) for x in fetch]
        for x in fetch:
            mm = x["_source"]["@timestamp"]  # 2026-11-25T12:34:00.000Z
            want = "%s:login:%s" % (sid, mm[0:4] + mm[5:7] + mm[8:10] + mm[11:13] + mm[14:16])
            assert x["_id"] == want, (x["_id"], want)
            assert x["_index"] == "%s-metrics-%s.%s.%s" % (PREFIX, mm[0:4], mm[5:7], mm[8:10]), x

        # Failures were logged once per state change; no secret in logs.
        log = ar.log()
        fails = [l for l in log.splitlines() if "elasticsearch export" in l and "failed" in l]
        works = [l for l in log.splitlines() if "elasticsearch export" in l and "works" in l]
        for l in fails + works:
            h.log("log: " + l.strip()[:200])
        assert works, "no 'works' line in the log"
        assert len(fails) <= len([l for l in works if "again" in l]) + 1, fails
        assert AUTH.split(":")[1] not in log, "elasticsearch_auth leaked into the log"

        # Elasticsearch down: one failure line, not one per interval.
        es.stop()
        time.sleep(70)
        log2 = ar.log()[len(log):]
        fails2 = [l for l in log2.splitlines() if "elasticsearch export" in l and "failed" in l]
        h.log("after stopping elasticsearch: %d failure line(s) in 70 s" % len(fails2))
        assert len(fails2) == 1, fails2
        recv.stop()
        return len(alerts), len(fetch), len(deliv)
    finally:
        es.stop()


def main():
    if shutil.which("java") is None:
        skip("no java")
    if shutil.which("unzip") is None:
        skip("no unzip")
    zip_path = find_zip()
    if zip_path is None:
        skip("elasticsearch-%s.zip not in the local Maven repository (and no mvn to fetch it)"
             % ES_VERSION)
    wd = h.Workdir("elasticsearch")
    ok = False
    t0 = time.monotonic()
    try:
        na, nf, nd = run(wd.path, zip_path)
        ok = True
        print("elasticsearch: PASS: %d alert(s), %d fetch and %d delivery metric documents "
              "in Elasticsearch %s (%.0fs)" % (na, nf, nd, ES_VERSION, time.monotonic() - t0))
    except Exception:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        for root, _, files in os.walk(wd.path):
            for f in files:
                if f.endswith(".log") and "es/" not in os.path.join(root, f):
                    p = os.path.join(root, f)
                    print("----- tail of %s\n%s" % (p, open(p, errors="replace").read()[-3000:]))
        print("elasticsearch: FAIL (%.0fs)" % (time.monotonic() - t0))
    finally:
        h.stop_all()
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
