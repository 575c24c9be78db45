"""Hostile clients against the real auditrelay (issue 13), loopback only.

While thousands of idle connections, slowloris clients, unauthenticated
4 MiB bodies and crafted private keys (n real, p = 1, q = n) hit the API,
a legitimate client's add/list/remove must answer within 1 s and events
must keep flowing to an existing source with nothing lost; apid must not
crash, hold more fds than its cap, keep the bodies or spin. /healthz must
be valid JSON in every state. Prints the measured figures."""
import base64
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import threading
import time

import harness as h

IDLE = 2500             # idle connections (over the cap of 1000)
SLOW = 100              # slowloris connections
FLOODERS = 10           # threads sending unauthenticated 4 MiB bodies
BODY = 4 * 1024 * 1024


# ---- a crafted key: a real modulus, p = 1, q = n (DER by hand)

def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der(tag, content):
    return bytes([tag]) + _der_len(len(content)) + content


def _der_int(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return _der(0x02, b)


def _prime(bits):
    out = subprocess.run(["openssl", "prime", "-generate", "-bits", str(bits)],
                         check=True, capture_output=True, timeout=60).stdout
    return int(out.strip())


def crafted_pem():
    p, q = _prime(1024), _prime(1024)
    n, e = p * q, 65537
    lam = (p - 1) * (q - 1) // __import__("math").gcd(p - 1, q - 1)
    d = pow(e, -1, lam)
    rsa = _der(0x30, b"".join(_der_int(x) for x in (0, n, e, d, 1, n, d, d, 1)))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    pkcs8 = _der(0x30, _der_int(0) + alg + _der(0x04, rsa))
    b64 = base64.b64encode(pkcs8).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % "\n".join(lines)


# ---- measurements of a process

def proc_stat(pid):
    """(utime+stime in s, rss in KiB, open fds)."""
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss, len(os.listdir("/proc/%d/fd" % pid))


class Attack:
    """The hostile clients, each kind in its own thread, until stop()."""

    def __init__(self, port):
        self.port = port
        self.stopping = threading.Event()
        self.threads = []
        self.idle = []
        self.lock = threading.Lock()
        self.counts = {"idle_opened": 0, "idle_closed_by_server": 0, "flood_401": 0,
                       "flood_reset": 0, "flood_other": 0, "slow_closed": 0}
        self.slow_closed_after = []

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        return s

    def start_idle(self):
        def run():
            while not self.stopping.is_set():
                with self.lock:
                    alive = []
                    for s in self.idle:
                        try:
                            if s.recv(1) == b"":
                                self.counts["idle_closed_by_server"] += 1
                                s.close()
                                continue
                        except BlockingIOError:
                            pass
                        except OSError:
                            self.counts["idle_closed_by_server"] += 1
                            s.close()
                            continue
                        alive.append(s)
                    self.idle = alive
                    while len(self.idle) < IDLE:
                        try:
                            self.idle.append(self.connect())
                            self.counts["idle_opened"] += 1
                        except OSError:
                            break
                self.stopping.wait(1.0)
        self._spawn(run)

    def start_slow(self):
        def one():
            s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            t0 = time.monotonic()
            try:
                s.sendall(b"GET /sources HTTP/1.1\r\nHost: x\r\n")
                while not self.stopping.is_set():
                    s.sendall(b"X-Slow: %d\r\n" % int(time.monotonic()))
                    s.settimeout(2.0)
                    try:
                        if s.recv(1) == b"":
                            break
                    except socket.timeout:
                        pass
            except OSError:
                pass
            if not self.stopping.is_set():
                with self.lock:
                    self.counts["slow_closed"] += 1
                    self.slow_closed_after.append(time.monotonic() - t0)
            s.close()

        def run():
            while not self.stopping.is_set():
                ts = [threading.Thread(target=one, daemon=True) for _ in range(SLOW)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(60)
        self._spawn(run)

    def start_flood(self):
        chunk = b"A" * 65536

        def run():
            while not self.stopping.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=15)
                except OSError:
                    time.sleep(0.2)
                    continue
                got = b""
                try:
                    s.sendall(b"POST /add-source HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % BODY)
                    sent = 0
                    while sent < BODY and not self.stopping.is_set():
                        s.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    pass
                try:
                    s.settimeout(5)
                    while True:
                        b = s.recv(4096)
                        if not b:
                            break
                        got += b
                except OSError:
                    pass
                s.close()
                with self.lock:
                    if got.startswith(b"HTTP/1.1 401"):
                        self.counts["flood_401"] += 1
                    elif not got:
                        self.counts["flood_reset"] += 1
                    else:
                        self.counts["flood_other"] += 1
        for _ in range(FLOODERS):
            self._spawn(run)

    def _spawn(self, fn):
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        with self.lock:
            for s in self.idle:
                s.close()
            self.idle = []


def apid_pid(ar):
    return ar.child_pids()["apid"]


def legit_round(ar, key, admin, recv, lat):
    """add, list, remove one source; records each latency; returns errors."""
    errs = []
    for what, fn in (("add", lambda: ar.api("POST", "/add-source", {
            "sourceType": "google_workspace",
            "credentials": {"clientEmail": key["client_email"],
                            "privateKey": key["private_key"], "subject": admin,
                            "scopes": ["admin.googleapis.com"]},
            "applications": ["login"], "logFetchInterval": 3600,
            "callbackUrl": recv.url})),):
        t0 = time.monotonic()
        st, b, _ = fn()
        lat.append((time.monotonic() - t0, what))
        if st != 201:
            errs.append("%s: %s %s" % (what, st, b))
            return errs
        sid = b["id"]
    t0 = time.monotonic()
    st, b, _ = ar.api("GET", "/sources")
    lat.append((time.monotonic() - t0, "list"))
    if st != 200:
        errs.append("list: %s" % st)
    t0 = time.monotonic()
    st, b, _ = ar.api("DELETE", "/remove-source/" + sid)
    lat.append((time.monotonic() - t0, "remove"))
    if st not in (200, 204):
        errs.append("remove: %s %s" % (st, b))
    return errs


def test_hostile_clients(wd):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01hostile", apps=("login",), rate=5)
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim, extra={"delivery_linger_ms": "100"})
    # Under ASan, freed memory waits in a quarantine (256 MB by default):
    # keep it small so that RSS measures what apid keeps.
    opts = ar.env.get("ASAN_OPTIONS", "")
    ar.env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=8"
    ar.start()
    flow = h.add_source(ar, key, admin, recv.url, ("login",), interval=1)
    recv.set_secret(flow["id"], h.source_secret(flow))
    pid = apid_pid(ar)
    crafted = crafted_pem()
    lat, errs = [], []

    attack = Attack(int(ar.base.rsplit(":", 1)[1]))
    # Phase 1: idle flood only: connections held, CPU.
    attack.start_idle()
    time.sleep(3)
    c0, _, _ = proc_stat(pid)
    t0 = time.monotonic()
    max_fds = 0
    for _ in range(8):
        errs += legit_round(ar, key, admin, recv, lat)
        max_fds = max(max_fds, proc_stat(pid)[2])
        time.sleep(0.5)
    c1, rss_idle, fds = proc_stat(pid)
    idle_cpu = (c1 - c0) / (time.monotonic() - t0) * 100
    h.log("idle flood: %d client connections, apid holds %d fds (max %d), CPU %.1f%%, "
          "RSS %d KiB" % (len(attack.idle), fds, max_fds, idle_cpu, rss_idle))

    # Phase 2: everything at once.
    attack.start_slow()
    attack.start_flood()
    max_rss = 0
    crafted_ok = 0
    c2, _, _ = proc_stat(pid)
    t2 = time.monotonic()
    t_end = time.monotonic() + 25
    while time.monotonic() < t_end:
        errs += legit_round(ar, key, admin, recv, lat)
        body = {"sourceType": "google_workspace",
                "credentials": {"clientEmail": key["client_email"], "privateKey": crafted,
                                "subject": admin, "scopes": ["admin.googleapis.com"]},
                "applications": ["login"], "logFetchInterval": 60, "callbackUrl": recv.url}
        st, b, _ = ar.api("POST", "/add-source", body)
        if st == 400 and b["error"]["field"] == "credentials.privateKey":
            crafted_ok += 1
        else:
            errs.append("crafted key: %s %s" % (st, b))
        _, rss, fds = proc_stat(pid)
        max_rss = max(max_rss, rss)
        max_fds = max(max_fds, fds)
        time.sleep(0.3)
    attack_cpu = (proc_stat(pid)[0] - c2) / (time.monotonic() - t2) * 100
    counts = dict(attack.counts)
    slow_after = list(attack.slow_closed_after)
    attack.stop()

    lat.sort()
    h.log("slowest legitimate requests: %s" % ", ".join(
        "%s %.0f ms" % (w, t * 1000) for t, w in lat[-5:]))
    h.log("apid CPU during the whole attack: %.1f%%" % attack_cpu)
    lat = [t for t, _ in lat]
    h.log("attack: legit requests %d, p50 %.0f ms, max %.0f ms; crafted keys refused %d; "
          "apid max fds %d, max RSS %d KiB (idle %d KiB); %s; slowloris closed after "
          "%.1f..%.1f s" % (len(lat), lat[len(lat) // 2] * 1000, lat[-1] * 1000, crafted_ok,
                            max_fds, max_rss, rss_idle, counts,
                            min(slow_after or [0]), max(slow_after or [0])))
    assert not errs, errs[:5]
    assert lat[-1] < 1.0, "a legitimate request took %.2f s" % lat[-1]
    assert crafted_ok >= 6, crafted_ok
    assert apid_pid(ar) == pid, "apid restarted"
    # 1000 connections at most; sockets closed in one loop pass are
    # finalised by libevent in the next, so a sample may see more fds.
    assert max_fds <= 2 * 1000 + 200, max_fds
    assert max_rss < rss_idle + 60 * 1024, (max_rss, rss_idle)
    # A guard against a spin (a core: 100 %), not a measure: accepting and
    # closing 2 500 churning connections costs apid 19-23 % here (more
    # under ASan), printed above; speed is the benchmarks' business.
    assert idle_cpu < 50, idle_cpu
    assert counts["flood_other"] == 0, counts
    assert counts["flood_401"] + counts["flood_reset"] > 0, counts
    assert slow_after and max(slow_after) < 15, slow_after
    # One line per episode, not a line per accept.
    api_lines = [l for l in ar.log().splitlines() if "auditrelay-apid" in l and "api:" in l]
    assert len(api_lines) < 50, len(api_lines)

    # Events kept flowing: every event generated until now reaches the
    # receiver, none twice under a new id.
    truth = h.sim_truth(sim, "C01hostile", "login")
    assert len(truth) > 50, len(truth)

    def all_delivered():
        lost, dups, _ = h.delivery_check(recv, truth)
        assert not dups, dups
        return not lost
    h.wait_for(all_delivered, 90, "every event delivered after the attack")
    st, body, _ = ar.healthz()
    assert st == 200 and all(c["restarts"] == 0 for c in body["children"]), body


def test_healthz_states(wd):
    """/healthz is JSON in every state: ok, a child down, back again."""
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    seen = set()
    t_end = time.monotonic() + 8
    killed = set()
    while time.monotonic() < t_end:
        # fetcherd dies as soon as it is back (held in backoff meanwhile).
        pid = ar.pids_by_name().get("auditrelay-fetcherd")
        if pid and pid not in killed and len(killed) < 3:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        for token in (False, True):
            st, body, _ = ar.healthz(token=token)
            assert isinstance(body, dict), "not JSON: %r" % (body,)
            assert body["status"] in ("ok", "degraded"), body
            assert (st == 200) == (body["status"] == "ok"), (st, body)
            if not token:
                assert set(body) == {"status"}, body
            else:
                assert "children" in body and "store" in body, body
            seen.add(body["status"])
        time.sleep(0.05)
    assert "degraded" in seen, seen
    ar.wait_healthy(30)
    st, body, _ = ar.healthz()
    assert st == 200 and body["status"] == "ok", body


def test_slowloris_deadline(wd):
    """Issue 13 row 3: a header line every 2 s no longer keeps a
    connection: the whole head must arrive within 10 s."""
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    port = int(ar.base.rsplit(":", 1)[1])
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /sources HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    t0 = time.monotonic()
    closed = {}
    while len(closed) < len(socks) and time.monotonic() - t0 < 20:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
                s.settimeout(0.05)
                if s.recv(1) == b"":
                    closed[i] = time.monotonic() - t0
            except socket.timeout:
                pass
            except OSError:
                closed[i] = time.monotonic() - t0
        time.sleep(2)
    for s in socks:
        s.close()
    h.log("slowloris connections closed after %s s" %
          ", ".join("%.1f" % t for t in sorted(closed.values())))
    assert len(closed) == 3, closed
    assert all(9 <= t <= 14 for t in closed.values()), closed
    # A legitimate client is served meanwhile and after.
    assert ar.healthz()[0] == 200


def test_sources_bounded(wd):
    """api_max_sources caps add-source (507); GET /sources pages."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    key, admin = h.sim_tenant(sim, "C01bound", apps=())
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim, extra={"api_max_sources": "5"}).start()
    ids = [h.add_source(ar, key, admin, recv.url, ("login",), interval=3600)["id"]
           for _ in range(5)]
    st, b, _ = ar.api("POST", "/add-source", {
        "sourceType": "google_workspace",
        "credentials": {"clientEmail": key["client_email"], "privateKey": key["private_key"],
                        "subject": admin, "scopes": ["admin.googleapis.com"]},
        "applications": ["login"], "logFetchInterval": 3600, "callbackUrl": recv.url})
    assert st == 507 and b["error"]["code"] == "too_many_sources", (st, b)
    assert "api_max_sources" in b["error"]["message"], b
    # Pages of two, in creation order, with nextAfter until the end.
    seen, after = [], None
    for _ in range(5):
        st, b, _ = ar.api("GET", "/sources?limit=2" + ("&after=" + after if after else ""))
        assert st == 200, (st, b)
        seen += [x["id"] for x in b["sources"]]
        after = b.get("nextAfter")
        if after is None:
            break
        assert len(b["sources"]) == 2, b
    assert seen == ids, (seen, ids)
    st, b, _ = ar.api("GET", "/sources")
    assert st == 200 and [x["id"] for x in b["sources"]] == ids and "nextAfter" not in b, b
    for bad in ("limit=0", "limit=1001", "limit=x", "after=nope", "foo=1"):
        st, b, _ = ar.api("GET", "/sources?" + bad)
        assert st == 400, (bad, st, b)
    # A well-formed id that names no source: 404, the field named.
    st, b, _ = ar.api("GET", "/sources?after=00000000-0000-4000-8000-000000000000")
    assert st == 404 and b["error"]["field"] == "after", (st, b)
    # Room again after a removal.
    st, _, _ = ar.api("DELETE", "/remove-source/" + ids[0])
    assert st in (200, 204), st
    h.add_source(ar, key, admin, recv.url, ("login",), interval=3600)


if __name__ == "__main__":
    h.run_tests([test_healthz_states, test_slowloris_deadline, test_sources_bounded,
                 test_hostile_clients], "hostile")
