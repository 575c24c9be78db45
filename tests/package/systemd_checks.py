"""The checks of tests/package/systemd.sh, run on the host against the
booted container ($AR_SYSD_LEADER: the pid of its systemd, entered with
nsenter) with the package at $AR_SYSD_DEB inside it.

The store (FerretDB), the Google simulator and a webhook receiver run on
this host (tests/system/harness.py); the container shares the loopback.
Each check prints one PASS or FAIL line with its figures; exit 1 when one
failed. Every process started here is stopped here, by its pid.
"""
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../system"))
import harness as h  # noqa: E402

LEADER = os.environ["AR_SYSD_LEADER"]
DEB = os.environ["AR_SYSD_DEB"]
UNIT = "auditrelay"
CONF = "/etc/auditrelay/auditrelay.conf"
IDENTS = ("auditrelayd", "auditrelay-apid", "auditrelay-fetcherd", "auditrelay-deliverd")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
       "DEBIAN_FRONTEND": "noninteractive", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
failed = []
figures = {}
# What each journalctl example of auditrelayd(8), LOGS, must find (the
# identifiers of its entries, at least), ID replaced by the source's id or,
# for a batch, by the id of the batch the receiver refused once. A new
# example with an ID needs a row here.
MAN_FINDS = {
    "journalctl -u auditrelay -g 'source=ID'":
        {"auditrelay-apid", "auditrelay-fetcherd", "auditrelay-deliverd"},
    "journalctl -u auditrelay -g 'source=ID app=login'": {"auditrelay-fetcherd"},
    "journalctl SOURCE_ID=ID": {"auditrelay-apid", "auditrelay-fetcherd", "auditrelay-deliverd"},
    "journalctl SOURCE_ID=ID APPLICATION=login -t auditrelay-fetcherd": {"auditrelay-fetcherd"},
    "journalctl -u auditrelay -g 'batch=ID'": {"auditrelay-deliverd"},
    "journalctl BATCH_ID=ID": {"auditrelay-deliverd"},
}


def say(msg):
    print("systemd: %s" % msg, flush=True)


def check(name, ok, detail=""):
    say("%s: %s%s" % ("PASS" if ok else "FAIL", name, " (%s)" % detail if detail else ""))
    if not ok:
        failed.append(name)
    return ok


def inside(cmd, input=None, timeout=120):
    """Run cmd (a list, or a string for sh -c) in the container."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    return subprocess.run(["nsenter", "-t", LEADER, "-a", "--"] + cmd, input=input,
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def show(*props):
    r = inside(["systemctl", "show", UNIT, "-p", ",".join(props)])
    out = {}
    for ln in r.stdout.splitlines():
        k, _, v = ln.partition("=")
        out[k] = v
    return out


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def children():
    """{name: pid} of the supervisor's children, from the container's /proc."""
    main = show("MainPID")["MainPID"]
    r = inside("for d in /proc/[0-9]*; do [ \"$(awk '/^PPid:/ {print $2}' $d/status 2>/dev/null)\""
               " = %s ] && echo ${d#/proc/} $(tr '\\0' ' ' < $d/cmdline); done; true" % main)
    out = {}
    for ln in r.stdout.splitlines():
        parts = ln.split()
        if len(parts) >= 2:
            out[os.path.basename(parts[1])] = int(parts[0])
    return out


def wait_state(pred, timeout, what):
    return h.wait_for(lambda: pred(show("ActiveState", "SubState", "StatusText", "MainPID",
                                        "NRestarts", "ExecMainStatus", "Result")),
                      timeout, what, interval=0.2)


def write_conf(text):
    r = inside("cat > %s" % CONF, input=text)
    assert r.returncode == 0, r


def journal(args):
    """The entries journalctl args (a list) prints, as dicts."""
    r = inside(["journalctl", "--no-pager", "-o", "json"] + args)
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]


def man_examples(entries, sid, bid):
    """Run the journalctl examples of the installed auditrelayd(8), LOGS."""
    # The entries as journald has them: native (with fields), priorities
    # and identifiers as the stream gave them, MESSAGE "NAME: line".
    ours = [e for e in entries if e.get("SYSLOG_IDENTIFIER") in IDENTS]
    transports = {}
    for e in ours:
        transports[e.get("_TRANSPORT")] = transports.get(e.get("_TRANSPORT"), 0) + 1
    figures["journal_transports"] = transports
    bad = [e.get("MESSAGE") for e in ours if e.get("_TRANSPORT") == "journal" and not (
        isinstance(e.get("MESSAGE"), str) and
        e["MESSAGE"].startswith(e["SYSLOG_IDENTIFIER"] + ": ") and "PRIORITY" in e)]
    check("the daemons' lines are native journal entries, MESSAGE 'NAME: line' as before",
          transports.get("journal", 0) > 0 and not bad,
          "%s by transport; %d native without NAME: or PRIORITY%s" % (
              transports, len(bad), ": %r" % bad[:2] if bad else ""))
    man = inside("zcat /usr/share/man/man8/auditrelayd.8.gz").stdout
    try:
        examples = h.man_log_examples(man)
    except IndexError:
        examples = []
    with_id = [ex for ex in examples if "=ID" in ex]
    check("auditrelayd(8) LOGS: each journalctl example with an ID has an expectation here",
          bool(with_id) and set(with_id) == set(MAN_FINDS),
          "examples %r; expected %r" % (with_id, sorted(MAN_FINDS)))
    if bid is None:
        check("the receiver refused a batch once", False, "no batch was refused")
        return
    runs = {}
    for ex in with_id:
        is_batch = "batch=ID" in ex or "BATCH_ID=ID" in ex
        idv = bid if is_batch else sid
        args = shlex.split(ex.replace("=ID", "=" + idv))[1:]
        got = journal(args)
        ids = {}
        for e in got:
            ids[e.get("SYSLOG_IDENTIFIER")] = ids.get(e.get("SYSLOG_IDENTIFIER"), 0) + 1
        # Every entry is about that id, in its text and in its field.
        key, field = ("batch=", "BATCH_ID") if is_batch else ("source=", "SOURCE_ID")
        off = [e.get("MESSAGE") for e in got if key + idv not in str(e.get("MESSAGE"))
               or e.get(field) != idv or ("login" in ex and e.get("APPLICATION") != "login")]
        want = MAN_FINDS.get(ex, set())
        runs[ex] = {e["__CURSOR"] for e in got}
        check("auditrelayd(8): %s" % ex, want <= set(ids) and not off,
              "%d entries by identifier %s, want %s; %d not about %s%s" % (
                  len(got), ids, sorted(want), len(off), idv, ": %r" % off[:2] if off else ""))
    # By text and by field: the same entries.
    pairs = (("journalctl -u auditrelay -g 'source=ID'", "journalctl SOURCE_ID=ID"),
             ("journalctl -u auditrelay -g 'batch=ID'", "journalctl BATCH_ID=ID"))
    for a, b in pairs:
        if a in runs and b in runs:
            check("%s and %s find the same entries" % (a, b), runs[a] == runs[b],
                  "%d and %d, %d in one only" % (len(runs[a]), len(runs[b]),
                                                 len(runs[a] ^ runs[b])))


def main():
    t_all = time.monotonic()
    wd = h.Workdir("package-systemd")
    store = sim = recv = None
    try:
        store = h.Store(wd.path)
        sim = h.Sim(wd.path, ["--no-lag"])
        recv = h.Receiver()
        run(wd.path, store, sim, recv)
    except Exception as e:  # noqa: BLE001 - report, then clean up
        import traceback
        traceback.print_exc()
        check("the checks ran to the end", False, repr(e))
    finally:
        if recv:
            recv.stop()
        h.stop_all()
        wd.cleanup(not failed)
    say("figures: %s" % json.dumps(figures, sort_keys=True))
    say("checks took %.0fs; %s" % (time.monotonic() - t_all,
                                   "all passed" if not failed else "FAILED: " + ", ".join(failed)))
    sys.exit(1 if failed else 0)


def run(wd, store, sim, recv):
    # Install, as an admin would.
    unconfigured_free = port_free(27017) and port_free(8080)
    t0 = time.monotonic()
    r = inside(["apt-get", "install", "-y", "-q", "--no-install-recommends", DEB], timeout=300)
    figures["install_s"] = round(time.monotonic() - t0, 1)
    if not check("apt-get install %s" % os.path.basename(DEB), r.returncode == 0,
                 "%.1fs" % figures["install_s"]):
        print(r.stdout[-3000:], r.stderr[-3000:])
        return
    r = inside("promtool --version >/dev/null 2>&1; test -s /usr/share/auditrelay/prometheus/"
               "auditrelay.rules.yml && grep -c 'alert:' /usr/share/auditrelay/prometheus/"
               "auditrelay.rules.yml")
    check("the alert rules are installed in /usr/share/auditrelay/prometheus/",
          r.returncode == 0, "%s alerts" % r.stdout.strip())
    token = inside(["cat", "/etc/auditrelay/api-token"]).stdout.strip()
    master = inside(["cat", "/etc/auditrelay/master.key"]).stdout.strip()

    # D7: installed before a store is configured: started (Debian's way),
    # and STATUS= and /healthz say what is missing.
    if unconfigured_free:
        try:
            st = wait_state(lambda s: s["ActiveState"] == "active" and
                            "store unreachable" in s["StatusText"] and s, 60,
                            "STATUS= names the missing store")
            hz = h.http_json("GET", "http://127.0.0.1:8080/healthz", timeout=5)
            check("installed unconfigured: active, STATUS= and /healthz say so",
                  "mongodb_uri is not configured" in st["StatusText"] and hz[0] == 503,
                  "STATUS=%r, /healthz %s" % (st["StatusText"], hz[0]))
        except AssertionError as e:
            check("installed unconfigured: active, STATUS= and /healthz say so", False,
                  "%s; %s" % (e, show("ActiveState", "StatusText")))
    else:
        say("SKIP: installed unconfigured (127.0.0.1:27017 or :8080 in use on this host)")

    # Configure against the store and the simulator on the host.
    port = h.free_port()
    shipped = inside(["cat", CONF]).stdout
    good = shipped + ("# added by tests/package/systemd.sh\n"
            "api_listen = 127.0.0.1:%d\n"
            "mongodb_uri = %s\n"
            "mongodb_database = %s\n"
            "google_token_url = %s\n"
            "google_api_base = %s\n"
            "delivery_allow_private_networks = 1\n"
            "fetch_min_interval = 1\n"
            "delivery_linger_ms = 100\n" % (port, store.uri, store.dbname, sim.token_url, sim.base))
    write_conf(good)
    t0 = time.monotonic()
    r = inside(["systemctl", "restart", UNIT])
    figures["ready_s"] = round(time.monotonic() - t0, 2)
    st = show("ActiveState", "StatusText", "MainPID")
    # apid learns the children's states over IPC from auditrelayd, one hop
    # after systemd hears READY=1: /healthz agrees within a second.
    t1 = time.monotonic()
    while True:
        hz = h.http_json("GET", "http://127.0.0.1:%d/healthz" % port, timeout=5)
        if hz[0] == 200 or time.monotonic() - t1 > 1.0:
            break
        time.sleep(0.05)
    figures["healthz_after_ready_s"] = round(time.monotonic() - t1, 2)
    check("configured: active with READY=1 and a truthful STATUS=",
          r.returncode == 0 and st["ActiveState"] == "active" and
          st["StatusText"].startswith("running: apid=") and hz[0] == 200,
          "READY %.2fs after systemctl restart, STATUS=%r, /healthz %s %.2fs later" %
          (figures["ready_s"], st["StatusText"], hz[0], figures["healthz_after_ready_s"]))
    base = "http://127.0.0.1:%d" % port
    auth = {"Authorization": "Bearer " + token}

    # A source, added from inside with auditrelayctl. The receiver refuses
    # the first batch once, so that deliverd logs its retry (batch=ID).
    refused = {}

    def status(doc):
        if isinstance(doc, dict) and doc.get("batchId") and not refused:
            refused["batch"] = doc["batchId"]
            return 503
        return 200
    recv.status = status
    key, admin = h.sim_tenant(sim, "C01pkg", apps=("login",), rate=20)
    inside("umask 077; cat > /root/sa.json", input=json.dumps(key))
    r = inside(["auditrelayctl", "--json", "add", "--key-file", "/root/sa.json", "--subject",
                admin, "--app", "login", "--interval", "1", "--callback", recv.url])
    try:
        created = json.loads(r.stdout)
        sid = created["id"]
        wsecret = h.source_secret(created)
    except (ValueError, KeyError, AssertionError):
        check("auditrelayctl add", False, "rc %d: %s %s" % (r.returncode, r.stdout, r.stderr))
        return
    recv.set_secret(sid, wsecret)
    t0 = time.monotonic()
    try:
        h.wait_for(lambda: len(recv.delivered_logs()) >= 20, 60, "signed batches")
        check("auditrelayctl add from inside -> signed batches at the host's receiver", True,
              "%d logs in %d signed batches after %.1fs" % (len(recv.delivered_logs()),
                                                             len(recv.accepted()),
                                                             time.monotonic() - t0))
    except AssertionError as e:
        check("auditrelayctl add from inside -> signed batches at the host's receiver", False,
              "%s; %d requests, %d verified" % (e, len(recv.requests), len(recv.accepted())))

    # kill -9 of one child: respawned by auditrelayd, the unit stays up.
    kids = children()
    n0 = show("NRestarts")["NRestarts"]
    victim = kids.get("auditrelay-deliverd")
    if victim:
        t0 = time.monotonic()
        inside("kill -9 %d" % victim)

        def not_ready():
            st, body, _ = h.http_json("GET", base + "/healthz", headers=auth, timeout=5)
            text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
            return st == 503 and '"name":"deliverd","pid":' in text and \
                '"name":"deliverd","pid":%d' % victim not in text and text
        try:
            hz = h.wait_for(not_ready, 1.5, "/healthz: the killed child is not ready")
            check("/healthz: a killed child is not ready", True,
                  "503 %.2fs after the kill: %s" % (time.monotonic() - t0, hz[:300]))
        except AssertionError as e:
            check("/healthz: a killed child is not ready", False, str(e))
        try:
            new = h.wait_for(lambda: (children().get("auditrelay-deliverd") or victim) != victim
                             and children()["auditrelay-deliverd"], 15, "new deliverd")
            took = time.monotonic() - t0
            figures["child_respawn_s"] = round(took, 2)
            st = wait_state(lambda s: s["StatusText"].startswith("running") and s, 15, "running")
            check("kill -9 of auditrelay-deliverd: respawned, unit active, no unit restart",
                  st["ActiveState"] == "active" and st["NRestarts"] == n0,
                  "pid %d -> %d in %.2fs" % (victim, new, took))
        except AssertionError as e:
            check("kill -9 of auditrelay-deliverd: respawned, unit active", False, str(e))
    else:
        check("kill -9 of auditrelay-deliverd", False, "no deliverd among %s" % kids)

    # systemctl kill -s KILL: the whole service, restarted by systemd.
    before = show("MainPID", "NRestarts")
    t0 = time.monotonic()
    inside(["systemctl", "kill", "-s", "KILL", UNIT])
    try:
        st = wait_state(lambda s: s["MainPID"] not in ("0", before["MainPID"]) and
                        s["ActiveState"] == "active" and s["StatusText"].startswith("running")
                        and s, 40, "restarted")
        figures["kill_restart_s"] = round(time.monotonic() - t0, 1)
        check("systemctl kill -s KILL: restarted by systemd",
              int(st["NRestarts"]) == int(before["NRestarts"]) + 1,
              "READY again %.1fs later (RestartSec=1), NRestarts %s" %
              (figures["kill_restart_s"], st["NRestarts"]))
    except AssertionError as e:
        check("systemctl kill -s KILL: restarted by systemd", False, "%s %s" % (e, show(
            "ActiveState", "SubState", "Result")))

    # Reload: a good file applies (rc 0), a bad one fails the reload and
    # STATUS= says why until the next good one.
    write_conf(good + "fetch_overlap = 300\n")
    r = inside(["systemctl", "reload", UNIT])
    st = show("ActiveState", "StatusText")
    check("systemctl reload, good file: rc 0, STATUS= running",
          r.returncode == 0 and st["StatusText"].startswith("running"),
          "rc %d, STATUS=%r" % (r.returncode, st["StatusText"]))
    nlines = good.count("\n") + 1
    write_conf(good + "fetch_overlap = nope\n")
    pid0 = show("MainPID")["MainPID"]
    r = inside(["systemctl", "reload", UNIT])
    st = show("ActiveState", "StatusText", "MainPID")
    want = "reload refused: %s:%d: fetch_overlap:" % (CONF, nlines)
    check("systemctl reload, bad file: fails, STATUS= names FILE:LINE, service untouched",
          r.returncode != 0 and want in st["StatusText"] and st["ActiveState"] == "active"
          and st["MainPID"] == pid0,
          "rc %d, STATUS=%r" % (r.returncode, st["StatusText"]))
    write_conf(good)
    r = inside(["systemctl", "reload", UNIT])
    st = show("StatusText")
    check("systemctl reload, fixed file: rc 0, the refusal leaves STATUS=",
          r.returncode == 0 and "refused" not in st["StatusText"],
          "rc %d, STATUS=%r" % (r.returncode, st["StatusText"]))

    # The watchdog: a stopped supervisor is killed and restarted.
    before = show("MainPID", "NRestarts")
    t0 = time.monotonic()
    inside("kill -STOP %s" % before["MainPID"])
    try:
        st = wait_state(lambda s: s["MainPID"] not in ("0", before["MainPID"]) and
                        s["ActiveState"] == "active" and s["StatusText"].startswith("running")
                        and s, 90, "watchdog restart")
        figures["watchdog_restart_s"] = round(time.monotonic() - t0, 1)
        res = inside(["journalctl", "-u", UNIT, "-o", "cat", "--no-pager", "-g", "atchdog"]).stdout
        check("watchdog: SIGSTOP of auditrelayd -> killed and restarted",
              "atchdog" in res, "READY again %.1fs after SIGSTOP (WatchdogSec=30)" %
              figures["watchdog_restart_s"])
    except AssertionError as e:
        inside("kill -CONT %s" % before["MainPID"])
        check("watchdog: SIGSTOP of auditrelayd -> killed and restarted", False, str(e))

    # The store goes away: STATUS= and /healthz say degraded, then recover.
    t0 = time.monotonic()
    store.stop()
    try:
        st = wait_state(lambda s: "degraded: store unreachable since" in s["StatusText"] and s,
                        30, "STATUS= degraded")
        hz = h.http_json("GET", base + "/healthz", timeout=5)[0]
        check("store down: STATUS= degraded, /healthz 503", hz == 503,
              "after %.1fs: STATUS=%r, /healthz %s" % (time.monotonic() - t0, st["StatusText"], hz))
    except AssertionError as e:
        check("store down: STATUS= degraded, /healthz 503", False,
              "%s; STATUS=%r" % (e, show("StatusText")["StatusText"]))
    store.start(store.port)
    t0 = time.monotonic()
    try:
        wait_state(lambda s: s["StatusText"].startswith("running") and s, 60, "running again")
        check("store back: STATUS= running again", True, "%.1fs" % (time.monotonic() - t0))
    except AssertionError as e:
        check("store back: STATUS= running again", False, str(e))

    # Nothing lost, nothing under two batch ids, across all of the above.
    sim.call("POST", "/_sim/tenants/C01pkg/pause")
    truth = h.sim_truth(sim, "C01pkg", "login")
    try:
        h.wait_for(lambda: not h.delivery_check(recv, truth)[0], 90, "every event delivered")
    except AssertionError:
        pass
    lost, dup_new, repeats = h.delivery_check(recv, truth)
    bad_sig = len([r for r in recv.requests if not r["sig_ok"]])
    check("no event lost, no id under two batch ids, every signature valid",
          not lost and not dup_new and bad_sig == 0,
          "%d events, %d lost, %d under two batch ids, %d repeats under one, %d bad signatures"
          % (len(truth), len(lost), len(dup_new), repeats, bad_sig))

    # systemd-analyze security on the running unit.
    r = inside(["systemd-analyze", "security", UNIT + ".service", "--no-pager"])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    score = float(m.group(1)) if m else None
    figures["security_exposure"] = score
    check("systemd-analyze security <= 1.5", score is not None and score <= 1.5,
          "exposure %s" % score)
    r = inside(["sh", "-c", "cat /proc/%s/limits" % show("MainPID")["MainPID"]])
    lim = [ln for ln in r.stdout.splitlines() if "open files" in ln]
    say("limits of the running supervisor: %s" % (lim[0].split()[3:5] if lim else "?"))

    # D3 at the terminal: -n names FILE:LINE for a value error.
    write_conf(good + "mongodb_uri = http://127.0.0.1:1\n")
    r = inside(["auditrelayd", "-n"])
    check("auditrelayd -n: a value error names FILE:LINE, exit 78",
          r.returncode == 78 and "%s:%d: mongodb_uri:" % (CONF, nlines) in r.stderr,
          "rc %d: %s" % (r.returncode, r.stderr.strip()))

    # A bad configuration: the unit fails with 78 and is not restarted.
    write_conf(good + "no_such_key = 1\n")
    r = inside(["systemctl", "restart", UNIT])
    n0 = int(show("NRestarts")["NRestarts"])   # a manual restart resets it
    time.sleep(8)   # several RestartSec
    st = show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
    jr = inside(["journalctl", "-u", UNIT, "-p", "err", "-o", "cat", "--no-pager",
                 "-g", "no_such_key"]).stdout
    check("bad configuration: failed with 78, no restart, the reason at priority err",
          r.returncode != 0 and st["ActiveState"] == "failed" and st["ExecMainStatus"] == "78"
          and int(st["NRestarts"]) == n0 and "%s:%d:" % (CONF, nlines) in jr,
          "%s, NRestarts %d -> %s, journal -p err: %r" % (
              {k: st[k] for k in ("ActiveState", "Result", "ExecMainStatus")}, n0,
              st["NRestarts"], jr.strip()[-200:]))
    write_conf(good)
    inside(["systemctl", "reset-failed", UNIT])
    r = inside(["systemctl", "start", UNIT])
    check("fixed configuration: starts again", r.returncode == 0 and
          show("ActiveState")["ActiveState"] == "active", "rc %d" % r.returncode)

    # The journal: one identifier per daemon, priorities kept, no secret.
    r = inside(["journalctl", "-u", UNIT, "-o", "json", "--no-pager"])
    entries = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    by_ident = {}
    for e in entries:
        by_ident.setdefault(e.get("SYSLOG_IDENTIFIER"), set()).add(int(e.get("PRIORITY", 6)))
    prefixed = [e["MESSAGE"] for e in entries
                if isinstance(e.get("MESSAGE"), str) and re.match(r"^<\d>", e["MESSAGE"])]
    ok = all(i in by_ident for i in IDENTS) and 3 in by_ident.get("auditrelayd", ()) \
        and 4 in by_ident.get("auditrelayd", ()) and not prefixed
    check("journalctl -u auditrelay: each daemon under its own identifier, priorities kept", ok,
          "priorities by identifier: %s; %d lines with an unparsed <N> prefix" % (
              {k: sorted(v) for k, v in by_ident.items() if k in IDENTS}, len(prefixed)))
    full = inside(["journalctl", "-o", "export", "--no-pager"]).stdout
    pem_body = [ln for ln in key["private_key"].splitlines() if ln and "-----" not in ln]
    secrets = {"API token": token, "master key": master, "webhook secret": wsecret,
               "webhook secret body": wsecret.split("_", 1)[-1],
               "private key": pem_body[len(pem_body) // 2]}
    leaked = [k for k, v in secrets.items() if v and v in full]
    check("the journal holds no secret (token, master key, private key, webhook secret)",
          not leaked, "leaked: %s" % leaked if leaked else "%d bytes scanned" % len(full))
    # D4: the man page's search finds the fetcher's and the deliverer's lines.
    r = inside(["journalctl", "-u", UNIT, "-o", "json", "--no-pager", "-g", "source=%s" % sid])
    found = {}
    for ln in r.stdout.splitlines():
        if ln.startswith("{"):
            e = json.loads(ln)
            found[e.get("SYSLOG_IDENTIFIER")] = found.get(e.get("SYSLOG_IDENTIFIER"), 0) + 1
    other = [e["MESSAGE"] for e in entries if isinstance(e.get("MESSAGE"), str)
             and sid in e["MESSAGE"] and "source=%s" % sid not in e["MESSAGE"]]
    check("journalctl -g 'source=ID' (auditrelayd(8)) finds every line about the source",
          bool(found) and not other, "matches by identifier %s; %d lines name it otherwise%s" % (
              found, len(other), ": %r" % other[:2] if other else ""))
    man_examples(entries, sid, refused.get("batch"))

    # Remove keeps the configuration and the secrets; purge removes them.
    r = inside(["apt-get", "remove", "-y", "-q", "auditrelay"])
    left = inside("ls /etc/auditrelay; test -e /usr/sbin/auditrelayd && echo binary-left; true")
    check("apt-get remove keeps the configuration and the secrets",
          r.returncode == 0 and all(f in left.stdout.split() for f in
                                    ("auditrelay.conf", "master.key", "api-token"))
          and "binary-left" not in left.stdout, "left: %s" % " ".join(left.stdout.split()))
    r = inside(["apt-get", "purge", "-y", "-q", "auditrelay"])
    left = inside("ls -A /etc/auditrelay 2>&1; true").stdout.strip()
    check("apt-get purge removes them", r.returncode == 0 and "No such file" in left,
          left[:200])


if __name__ == "__main__":
    main()
