"""Shared machinery for auditrelay's system tests.

Starts the real parts on loopback: the store (FerretDB 1.24 embedded, or the
MongoDB named by AUDITRELAY_TEST_MONGODB_URI), the Google simulator, a
webhook receiver that verifies Standard Webhooks signatures, and auditrelayd
itself. Every process started here is stopped here, by its pid; every wait
is bounded in time.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

BIN = os.environ.get("AR_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SRC = os.environ.get("AR_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))

_started = []  # every Popen we own, stopped at exit


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.1):
    """Poll pred() until truthy or timeout seconds pass; return its value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - the predicate may fail while starting
            last = None
            err = e
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def _read_listen_line(proc, logpath, timeout, pattern=r"listening on (\S+):(\d+)"):
    """Wait for a 'listening on HOST:PORT' line in the process's log file."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s: %s" % (proc.args[0], proc.returncode,
                                                            open(logpath).read()[-2000:]))
        with open(logpath, errors="replace") as f:
            m = rx.search(f.read())
        if m:
            return int(m.group(2))
        time.sleep(0.05)
    raise AssertionError("%s did not report its port within %ss" % (proc.args[0], timeout))


def spawn(args, logpath, env=None, **kw):
    f = open(logpath, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env,
                         stdin=subprocess.DEVNULL, **kw)
    f.close()
    _started.append(p)
    return p


def stop(proc, sig=signal.SIGTERM, timeout=15):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def stop_all():
    for p in reversed(_started):
        stop(p, timeout=10)


class Store:
    """A MongoDB-wire store: FerretDB 1.24 in a temp dir, or a given MongoDB."""

    def __init__(self, workdir, name="store"):
        self.workdir = workdir
        self.proc = None
        self.dbname = "auditrelay_%s" % secrets.token_hex(4)
        ext = os.environ.get("AUDITRELAY_TEST_MONGODB_URI")
        if ext:
            self.uri = ext
            self.external = True
        else:
            self.external = False
            self.port = None
            self.dir = os.path.join(workdir, name)
            self.logpath = os.path.join(workdir, name + ".log")
            self.start()

    def start(self, port=None):
        if self.external:
            return
        listen = "127.0.0.1:%d" % (port or self.port or 0)
        self.proc = spawn([os.path.join(BIN, "auditrelay-test-ferretdb"), "-listen", listen,
                           "-dir", self.dir], self.logpath)
        self.port = _read_listen_line(self.proc, self.logpath, 60)
        self.uri = "mongodb://127.0.0.1:%d" % self.port

    def stop(self):
        if not self.external:
            stop(self.proc)

    def db(self):
        import pymongo
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=3000)[self.dbname]


class Sim:
    """The Google simulator (auditrelay-google-sim) on a free port."""

    def __init__(self, workdir, args=()):
        self.logpath = os.path.join(workdir, "google-sim.log")
        self.proc = spawn([os.path.join(BIN, "auditrelay-google-sim"), "--listen",
                           "127.0.0.1:0"] + list(args), self.logpath)
        self.port = _read_listen_line(self.proc, self.logpath, 20)
        self.base = "http://127.0.0.1:%d" % self.port
        self.token_url = self.base + "/token"

    def call(self, method, path, body=None):
        return http_json(method, self.base + path, body)

    def stop(self):
        stop(self.proc)


def http_json(method, url, body=None, headers=None, raw=None, timeout=30):
    """One HTTP request; returns (status, parsed JSON or text, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, text, hdrs = e.code, e.read(), e.headers
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode(errors="replace")
    return status, parsed, hdrs


def webhook_sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Receiver:
    """A webhook receiver that verifies Standard Webhooks signatures.

    Records every request (verified or not); behaviour is switchable while
    it runs: answer a status, sleep, or drop the connection after reading.
    """

    def __init__(self, secrets_by_source=None, port=0):
        self.secrets = dict(secrets_by_source or {})
        self.lock = threading.Lock()
        self.requests = []   # dicts: id, ts, sig_ok, body(parsed), status
        self.status = 200
        self.delay = 0.0
        self.drop = False     # read the body, then close without answering
        self.retry_after = None
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                mid = self.headers.get("webhook-id")
                ts = self.headers.get("webhook-timestamp")
                sig = self.headers.get("webhook-signature", "")
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                src = doc.get("sourceId") if isinstance(doc, dict) else None
                ok = False
                with recv.lock:
                    sec = recv.secrets.get(src)
                    secs = sec if isinstance(sec, list) else [sec] if sec else []
                for s in secs:
                    want = webhook_sign(s, mid, ts, body)
                    if any(hmac.compare_digest(want, part) for part in sig.split()):
                        ok = True
                with recv.lock:
                    status, delay, drop, ra = recv.status, recv.delay, recv.drop, recv.retry_after
                    if callable(status):
                        status = status(doc)
                    recv.requests.append({"id": mid, "ts": ts, "sig_ok": ok, "body": doc,
                                          "raw": body, "sig": sig,
                                          "status": -1 if drop else status,
                                          "ua": self.headers.get("User-Agent"),
                                          "ctype": self.headers.get("Content-Type"),
                                          "at": time.time()})
                if delay:
                    time.sleep(delay)
                if drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                out = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"test"}'
                self.send_response(status)
                if ra is not None and status in (429, 503):
                    self.send_header("Retry-After", str(ra))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_secret(self, source_id, secret):
        with self.lock:
            self.secrets[source_id] = secret

    def accepted(self):
        """Requests answered 2xx with a valid signature."""
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300 and r["sig_ok"]]

    def delivered_logs(self, kind="logs"):
        out = []
        for r in self.accepted():
            b = r["body"]
            if b and b.get("type") == kind:
                out.extend(b.get("logs", []) if kind == "logs" else [b])
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Auditrelay:
    """auditrelayd with its three daemons, configured for a test."""

    def __init__(self, workdir, store, sim=None, name="ar", extra=None, listen_port=None,
                 allow_private=True, verbose=True):
        self.workdir = os.path.join(workdir, name)
        os.makedirs(self.workdir, exist_ok=True)
        self.token = "test-token-" + secrets.token_hex(16)
        self.keyfile = os.path.join(workdir, "master.key")
        if not os.path.exists(self.keyfile):
            with open(os.open(self.keyfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        self.port = listen_port or free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.logpath = os.path.join(self.workdir, "auditrelayd.log")
        self.conf = os.path.join(self.workdir, "auditrelay.conf")
        cfg = {
            "api_listen": "127.0.0.1:%d" % self.port,
            "mongodb_uri": store.uri,
            "mongodb_database": store.dbname,
            "crypto_master_key_file": self.keyfile,
            "delivery_allow_private_networks": "1" if allow_private else "0",
            "fetch_min_interval": "1",
            "runtime_dir": self.workdir,
            "instance_id": name,
            "rescan_interval": "1",
            "ping_interval": "2",
            "delivery_linger_ms": "100",
        }
        if sim is not None:
            cfg["google_token_url"] = sim.token_url
            cfg["google_api_base"] = sim.base
        cfg.update(extra or {})
        self.cfg = cfg
        self.write_config()
        self.env = dict(os.environ)
        self.env["AUDITRELAY_API_TOKEN"] = self.token
        self.env.pop("JOURNAL_STREAM", None)
        self.verbose = verbose
        self.proc = None

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            if text is not None:
                f.write(text)
            else:
                f.write("# written by the system tests\n")
                for k, v in self.cfg.items():
                    f.write("%s = %s\n" % (k, v))

    def start(self, wait=True):
        args = [os.path.join(BIN, "auditrelayd"), "-c", self.conf]
        if self.verbose:
            args.append("-d")
        self.proc = spawn(args, self.logpath, env=self.env)
        if wait:
            self.wait_healthy(30)
        return self

    def healthz(self, token=True):
        """GET /healthz; with the token the answer has the details."""
        h = {"Authorization": "Bearer " + self.token} if token else {}
        return http_json("GET", self.base + "/healthz", headers=h, timeout=5)

    def wait_healthy(self, timeout=30):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError("auditrelayd exited %s:\n%s" % (self.proc.returncode,
                                                                     self.log()[-3000:]))
            st, body, _ = self.healthz()
            return st == 200 and body
        return wait_for(ok, timeout, "auditrelay healthy")

    def api(self, method, path, body=None, raw=None, headers=None, token=True):
        h = dict(headers or {})
        if token:
            h.setdefault("Authorization", "Bearer " + self.token)
        return http_json(method, self.base + path, body, headers=h, raw=raw)

    def child_pids(self):
        st, body, _ = self.healthz()
        return {c["name"]: c["pid"] for c in (body or {}).get("children", [])}

    def pids_by_name(self):
        """Pids of this instance's children from /proc (ppid = supervisor)."""
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    comm = os.path.basename(f.read().split(b"\0")[0].decode())
            except (OSError, ValueError):
                continue
            if ppid == self.proc.pid:
                out[comm] = int(d)
        return out

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        return stop(self.proc, sig, timeout)


class Workdir:
    """A temp dir removed at the end unless the test failed (kept for logs)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="ar-%s-" % name)

    def cleanup(self, ok):
        if ok and not os.environ.get("AR_KEEP_TMP"):
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log("logs kept in %s" % self.path)


def run_tests(tests, name):
    """Run test functions (each takes a Workdir) and print a closing line;
    names on the command line run only those."""
    passed = failed = 0
    only = set(sys.argv[1:])
    unknown = only - {t.__name__ for t in tests}
    if unknown:
        sys.exit("no such test: %s" % ", ".join(sorted(unknown)))
    for t in tests:
        if only and t.__name__ not in only:
            continue
        wd = Workdir(name)
        log("=== %s" % t.__name__)
        t0 = time.monotonic()
        ok = False
        try:
            t(wd.path)
            ok = True
            passed += 1
            log("--- PASS %s (%.1fs)" % (t.__name__, time.monotonic() - t0))
        except Exception:  # noqa: BLE001
            failed += 1
            traceback.print_exc()
            log("--- FAIL %s (%.1fs)" % (t.__name__, time.monotonic() - t0))
            for root, _, files in os.walk(wd.path):
                for f in files:
                    if f.endswith(".log"):
                        p = os.path.join(root, f)
                        with open(p, errors="replace") as fh:
                            tail = fh.read()[-4000:]
                        print("----- tail of %s\n%s" % (p, tail))
        finally:
            stop_all()
            _started.clear()
            wd.cleanup(ok)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


# ---- End-to-end helpers: a tenant in the simulator, a source, ground truth.

def sim_tenant(sim, cid, apps=("login",), rate=5, lag=None, domain=None, project=None):
    """Create a tenant with an admin and a service account (of Google
    Cloud project `project`, default the tenant's own); returns (key file
    dict, admin email). rate: activities per second per app."""
    domain = domain or "%s.example.com" % cid.lower()
    admin = "admin@" + domain
    st, _, _ = sim.call("POST", "/_sim/tenants", {"customerId": cid, "domain": domain})
    assert st in (200, 201), st
    st, _, _ = sim.call("POST", "/_sim/tenants/%s/admins" % cid, {"email": admin})
    assert st in (200, 201), st
    st, key, _ = sim.call("POST", "/_sim/tenants/%s/service-accounts" % cid,
                          {"name": "relay-" + cid.lower() if project else "relay",
                           "projectId": project or cid.lower()})
    assert st in (200, 201) and key.get("private_key"), (st, key)
    for app in apps:
        body = {"rate": rate}
        if lag is not None:
            body["lag"] = lag
        st, b, _ = sim.call("POST", "/_sim/tenants/%s/applications/%s" % (cid, app), body)
        assert st in (200, 201), (st, b)
    return key, admin


def add_source(ar, key, admin, callback, apps=("login",), interval=1, **extra):
    """POST /add-source; returns the 201 body (with the webhook secret)."""
    body = {"sourceType": "google_workspace",
            "credentials": {"clientEmail": key["client_email"], "privateKey": key["private_key"],
                            "subject": admin, "scopes": ["admin.googleapis.com"]},
            "applications": list(apps), "logFetchInterval": interval, "callbackUrl": callback}
    body.update(extra)
    st, b, _ = ar.api("POST", "/add-source", body)
    assert st == 201, (st, b)
    return b


def partition_of(source_id, count=64):
    """The partition of a source id, as lib/store/partition.c computes it
    (FNV-1a 32 of the id, modulo the partition_count)."""
    h = 2166136261
    for c in source_id.encode():
        h = ((h ^ c) * 16777619) & 0xffffffff
    return h % count


def fetch_state_coll(db, sid, count=64):
    """The collection of sid's partition's fetch state (lib/store/fstate.h)."""
    return db["fetch_state_%d_%d" % (count, partition_of(sid, count))]


def fetch_state(db, sid, count=64):
    """sid's entry of its partition's fetch state: status, lastError,
    lastFetchAt, fetchedThrough, cursors {app: ...}, stats {app: ...};
    None before fetcherd first wrote it."""
    part = partition_of(sid, count)
    doc = fetch_state_coll(db, sid, count).find_one({"_id": "%d:%d" % (count, part)})
    return ((doc or {}).get("sources") or {}).get(sid)


def fetch_cursor(db, sid, app, count=64):
    """The cursor document of (sid, app) in the fetch state, or None."""
    return ((fetch_state(db, sid, count) or {}).get("cursors") or {}).get(app)


def fetch_stats(db, sid, app, count=64):
    """The counters of (sid, app) in the fetch state, or None."""
    return ((fetch_state(db, sid, count) or {}).get("stats") or {}).get(app)


def set_fetch_state(db, sid, fields, count=64):
    """Overwrite fields of sid's entry of the fetch state (as another
    writer would), e.g. {"status": "credentials_invalid"}."""
    part = partition_of(sid, count)
    fetch_state_coll(db, sid, count).update_one(
        {"_id": "%d:%d" % (count, part)},
        {"$set": {"sources.%s.%s" % (sid, k): v for k, v in fields.items()}})


def deliver_state(db, sid, count=64):
    """sid's entry of its partition's delivery state (deliverd/state.c):
    status, lastDeliveryAt, lastError, goneUrl, stats {deliveredLogs,
    deliveredBatches, failedAttempts, deadBatches, deadLettersPruned};
    None before deliverd first wrote it."""
    part = partition_of(sid, count)
    doc = db["deliver_state_%d_%d" % (count, part)].find_one({"_id": "%d:%d" % (count, part)})
    return ((doc or {}).get("sources") or {}).get(sid)


def fetch_states(db):
    """{source id: entry} of every partition document, newest entry first."""
    out = {}
    for name in db.list_collection_names():
        if not name.startswith("fetch_state_"):
            continue
        for doc in db[name].find():
            for sid, e in (doc.get("sources") or {}).items():
                if sid not in out or e.get("updatedAt", 0) > out[sid].get("updatedAt", 0):
                    out[sid] = e
    return out


def metric(ar, family, **labels):
    """The value of the sample of family whose labels include labels (all
    given as strings) in GET /metrics; None when absent."""
    st, text, _ = ar.api("GET", "/metrics")
    assert st == 200, st
    want = ['%s="%s"' % kv for kv in labels.items()]
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$", line)
        if m and m.group(1) == family and \
                all(w in (m.group(2) or "").split(",") for w in want):
            return float(m.group(3))
    return None


def secret_aad(sid, field, version):
    """The AAD of a sealed secret in a sources document (lib/crypto/crypto.c
    creds_aad): "ar2" US id US field US version."""
    return ("ar2\x1f%s\x1f%s\x1f%d" % (sid, field, version)).encode()


def master_aes(ar):
    """AES-256-GCM under the master key of ar (pip cryptography)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    with open(ar.keyfile) as f:
        return AESGCM(base64.b64decode(f.read().strip()))


def secret_opens(aes, blob, aad):
    """True when the sealed {keyId, nonce, ct} opens with aad."""
    from cryptography.exceptions import InvalidTag
    try:
        aes.decrypt(bytes(blob["nonce"]), bytes(blob["ct"]), aad)
        return True
    except InvalidTag:
        return False


def man_log_examples(text):
    """The journalctl lines of the LOGS section of auditrelayd(8) (its mdoc
    source in text), in the order of the page."""
    sec = text.split(".Sh LOGS\n", 1)[1].split("\n.Sh ", 1)[0]
    block = sec.split(".Bd -literal", 1)[1].split(".Ed", 1)[0]
    return [ln for ln in block.splitlines() if ln.startswith("journalctl ")]


def source_secret(created):
    for k in ("webhookSecret", "secret", "signingSecret"):
        if k in created:
            return created[k]
    raise AssertionError("no webhook secret in %s" % list(created))


def log_id(cid, app, time_str, uq, idx, name):
    """The stable id auditrelay gives an event (lib/google/normalize.c)."""
    ms = time_str
    if len(ms) == 20:  # no milliseconds: 2026-01-01T00:00:00Z
        ms = ms[:-1] + ".000Z"
    parts = ["v1", cid, app, ms, uq, str(idx), name]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def sim_truth(sim, cid, app, visible_only=True):
    """Ids of every event the simulator generated (and made visible)."""
    st, b, _ = sim.call("GET", "/_sim/events?tenant=%s&application=%s" % (cid, app))
    assert st == 200, st
    return {log_id(e["customerId"], e["applicationName"], e["time"], e["uniqueQualifier"],
                   e["eventIndex"], e["eventName"])
            for e in b["events"] if e.get("visible") or not visible_only}


def inject_backlog(sim, cid, n, apps=("login", "admin", "drive"), span_s=3000, t_end=None,
                   uq_base=10**17):
    """n one-event activities spread over span_s seconds ending at t_end
    (default now), split over apps (already published: a backlog).
    Returns the count per app."""
    now = time.time() if t_end is None else t_end
    per_app = n // len(apps)
    counts = {}
    for ai, app in enumerate(apps):
        count = per_app + (n - per_app * len(apps) if ai == 0 else 0)
        counts[app] = count
        done = 0
        while done < count:
            k = min(5000, count - done)
            acts = []
            for i in range(k):
                t = now - span_s + span_s * (done + i) / max(count, 1)
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
                    ".%03dZ" % int((t % 1) * 1000)
                acts.append({"id": {"time": ts,
                                    "uniqueQualifier": str(uq_base + ai * 10**9 + done + i)},
                             "actor": {"email": "user%d@%s.example.com" % (i % 50, cid.lower()),
                                       "profileId": str(10**20 + i % 50)},
                             "ipAddress": "203.0.113.%d" % (i % 250),
                             "events": [{"type": app + "_type", "name": app + "_event",
                                         "parameters": [{"name": "p", "value": "v%d" % i},
                                                        {"name": "n", "intValue": str(i)}]}]})
            st, b, _ = sim.call("POST", "/_sim/tenants/%s/inject" % cid,
                                {"application": app, "activities": acts})
            assert st in (200, 201), (st, b)
            done += k
    return counts


def stored_logs(db, sid, app=None):
    """logId -> 1 for every log of a source fetcherd stored: its
    de-duplication ids live in the seen_YYYYMMDD partitions (one
    document per log, unique by construction)."""
    out = {}
    pre = sid + ":"
    q = {"a": app} if app else {}
    for name in db.list_collection_names():
        if not name.startswith("seen_"):
            continue
        for d in db[name].find(q, {"_id": 1}):
            if d["_id"].startswith(pre):
                lid = d["_id"][len(pre):]
                out[lid] = out.get(lid, 0) + 1
    return out


def stored_count(db, sid, app=None):
    return len(stored_logs(db, sid, app))


def batched_logs(db, sid):
    """logId -> number of batches (pending, delivered or dead) holding it,
    from the bodies still in the store: the bodies_* partitions,
    bodies_dead and `bodies` of older versions (a dead letter's body may be
    in its partition and in bodies_dead at once: one batch)."""
    batches = {}
    for name in body_collections(db):
        for d in db[name].find({"sourceId": sid}, {"logIds": 1}):
            batches[d["_id"]] = d.get("logIds", [])
    out = {}
    for ids in batches.values():
        for lid in ids:
            out[lid] = out.get(lid, 0) + 1
    return out


def body_collections(db):
    """The collections that hold batch bodies (docs/STORE.md)."""
    return sorted(n for n in db.list_collection_names()
                  if n == "bodies" or n.startswith("bodies_"))


def delivery_check(receiver, expected_ids):
    """Compare what the receiver accepted with the expected ids.

    Returns (lost, new_id_duplicates, repeats): lost = expected ids never
    accepted; new_id_duplicates = log ids carried by more than one distinct
    webhook-id (a duplicate under a new id); repeats = same log id accepted
    again under the same webhook-id (allowed: a lost 2xx)."""
    carriers = {}
    count = {}
    for r in receiver.accepted():
        b = r["body"]
        if not b or b.get("type") != "logs":
            continue
        for l in b["logs"]:
            carriers.setdefault(l["id"], set()).add(r["id"])
            count[l["id"]] = count.get(l["id"], 0) + 1
    lost = set(expected_ids) - set(carriers)
    dup_new = {k for k, v in carriers.items() if len(v) > 1}
    repeats = sum(c - 1 for c in count.values())
    return lost, dup_new, repeats
