#!/usr/bin/env python3
"""Throughput of auditrelay-google-sim: events served per second with
1000-item pages on one keep-alive connection, and per CPU-second of the
simulator. Usage: bench_sim_throughput.py [BIN] [ACTIVITIES]."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("AR_BIN_DIR", "build/bin"), "auditrelay-google-sim")
WANT = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
TOK_RE = re.compile(rb'"nextPageToken":"([^"]+)"')


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--no-lag"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call(method, path, body=None, headers=None):
            h = dict(headers or {})
            if body is not None and not isinstance(body, str):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()

        call("POST", "/_sim/tenants", {"customerId": "C0bench",
                                       "domain": "bench.example.com"})
        call("POST", "/_sim/tenants/C0bench/admins",
             {"email": "admin@bench.example.com"})
        _, b = call("POST", "/_sim/tenants/C0bench/service-accounts", {})
        email = json.loads(b)["client_email"]
        rate = 50000
        t0 = time.time()
        call("POST", "/_sim/tenants/C0bench/applications/login",
             {"rate": rate})
        time.sleep(WANT / rate + 0.2)
        call("POST", "/_sim/tenants/C0bench/pause")
        t1 = time.time()
        _, b = call("POST", "/_sim/sign-jwt", {"clientEmail": email,
                                               "subject":
                                               "admin@bench.example.com"})
        form = urllib.parse.urlencode({
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": json.loads(b)["assertion"]})
        _, b = call("POST", "/token", form,
                    {"Content-Type": "application/x-www-form-urlencoded"})
        auth = {"Authorization": "Bearer " + json.loads(b)["access_token"]}
        q = {"maxResults": 1000,
             "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                        time.gmtime(t0 - 5)),
             "endTime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                      time.gmtime(t1 + 5))}
        _, s0 = call("GET", "/_sim/stats")
        s0 = json.loads(s0)
        cpu0, w0 = cpu_seconds(proc.pid), time.time()
        pages, nbytes, ptok = 0, 0, None
        for _ in range(100000):
            if ptok:
                q["pageToken"] = ptok
            st, body = call("GET", "/admin/reports/v1/activity/users/all/"
                            "applications/login?" + urllib.parse.urlencode(q),
                            None, auth)
            assert st == 200, st
            pages += 1
            nbytes += len(body)
            m = TOK_RE.search(body, 0, 400)
            if not m:
                break
            ptok = m.group(1).decode()
        wall, cpu = time.time() - w0, cpu_seconds(proc.pid) - cpu0
        _, s1 = call("GET", "/_sim/stats")
        s1 = json.loads(s1)
        ev = s1["eventsServed"] - s0["eventsServed"]
        act = s1["activitiesServed"] - s0["activitiesServed"]
        print("served %d activities / %d events in %d pages, %.1f MB, "
              "%.2f s wall, %.2f s simulator CPU" %
              (act, ev, pages, nbytes / 1e6, wall, cpu))
        print("throughput: %.0f events/s wall (client included), "
              "%.0f events per simulator CPU-second" %
              (ev / wall, ev / max(cpu, 1e-6)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
