"""System tests of the foundation: auditrelayd, its three children, the
store, signals, restarts, crash loops, reloads and store outages."""
import os
import shutil
import signal
import subprocess
import time

import harness as h

CHILDREN = ("auditrelay-apid", "auditrelay-fetcherd", "auditrelay-deliverd")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_each_child_restarts(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    for name in CHILDREN:
        before = h.wait_for(lambda: ar.pids_by_name().get(name), 5, name + " pid")
        t0 = time.monotonic()
        os.kill(before, signal.SIGKILL)
        after = h.wait_for(lambda: (ar.pids_by_name().get(name) or before) != before
                           and ar.pids_by_name()[name], 3, "new " + name)
        took = time.monotonic() - t0
        ar.wait_healthy(5)
        h.log("%s: pid %d -> %d, new pid after %.2fs" % (name, before, after, took))
        assert took < 3.0
    assert ar.proc.poll() is None
    t0 = time.monotonic()
    rc = ar.stop()
    took = time.monotonic() - t0
    h.log("SIGTERM: supervisor exited %s after %.2fs" % (rc, took))
    assert rc == 0 and took < 10


def test_sigterm_stops_everything(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    pids = ar.pids_by_name()
    assert set(pids) == set(CHILDREN), pids
    t0 = time.monotonic()
    ar.proc.send_signal(signal.SIGTERM)
    rc = ar.proc.wait(10)
    took = time.monotonic() - t0
    assert rc == 0
    h.wait_for(lambda: not any(_alive(p) for p in pids.values()), 1, "children gone")
    h.log("stop after SIGTERM: %.2fs" % took)
    assert took < 10


def test_kill_supervisor_kills_children(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    pids = ar.pids_by_name()
    t0 = time.monotonic()
    ar.proc.kill()
    ar.proc.wait(5)
    h.wait_for(lambda: not any(_alive(p) for p in pids.values()), 3, "orphans gone")
    h.log("children gone %.2fs after SIGKILL of the supervisor" % (time.monotonic() - t0))


def test_crash_loop_exits_1(wd):
    store = h.Store(wd)
    bindir = os.path.join(wd, "bin")
    os.makedirs(bindir)
    for b in ("auditrelayd", "auditrelay-apid", "auditrelay-deliverd"):
        shutil.copy(os.path.join(h.BIN, b), bindir)
    with open(os.path.join(bindir, "auditrelay-fetcherd"), "w") as f:
        f.write("#!/bin/sh\necho 'crashing on purpose' >&2\nexit 1\n")
    os.chmod(os.path.join(bindir, "auditrelay-fetcherd"), 0o755)
    ar = h.Auditrelay(wd, store)
    ar.proc = h.spawn([os.path.join(bindir, "auditrelayd"), "-c", ar.conf], ar.logpath, env=ar.env)
    t0 = time.monotonic()
    rc = ar.proc.wait(70)
    took = time.monotonic() - t0
    h.log("crash loop: exit %s after %.1fs" % (rc, took))
    assert rc == 1
    assert "crash loop" in ar.log()
    assert took < 65


def test_child_exit_78_is_final(wd):
    store = h.Store(wd)
    bindir = os.path.join(wd, "bin")
    os.makedirs(bindir)
    for b in ("auditrelayd", "auditrelay-apid", "auditrelay-fetcherd"):
        shutil.copy(os.path.join(h.BIN, b), bindir)
    with open(os.path.join(bindir, "auditrelay-deliverd"), "w") as f:
        f.write("#!/bin/sh\nexit 78\n")
    os.chmod(os.path.join(bindir, "auditrelay-deliverd"), 0o755)
    ar = h.Auditrelay(wd, store)
    ar.proc = h.spawn([os.path.join(bindir, "auditrelayd"), "-c", ar.conf], ar.logpath, env=ar.env)
    rc = ar.proc.wait(20)
    assert rc == 78, rc
    assert "not restarting" in ar.log()


def test_bad_config(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store)
    ar.write_config("# comment\napi_listen = 127.0.0.1:1\nfetch_min_interval = banana\n")
    r = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-n", "-c", ar.conf], env=ar.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78, r
    assert "%s:3:" % ar.conf in r.stderr and "fetch_min_interval" in r.stderr, r.stderr
    ar.write_config("no_such_key = 1\n")
    r = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-n", "-c", ar.conf], env=ar.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78 and ":1:" in r.stderr and "no_such_key" in r.stderr, r.stderr
    # Starting for real with a bad file exits 78 too.
    p = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-c", ar.conf], env=ar.env,
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 78
    # No token at all: refuse with a clear message.
    ar.write_config()
    env = dict(ar.env)
    env.pop("AUDITRELAY_API_TOKEN")
    r = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-n", "-c", ar.conf], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78 and "API token" in r.stderr, r.stderr
    # The token from a file works, and the good file checks OK.
    tok = os.path.join(wd, "token")
    with open(tok, "w") as f:
        f.write("file-token-0123456789abcdef\n")
    env["AUDITRELAY_API_TOKEN_FILE"] = tok
    r = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-n", "-c", ar.conf], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip() == "configuration OK", r
    # Environment overrides the file and is validated too.
    env["AUDITRELAY_FETCH_MIN_INTERVAL"] = "-5"
    r = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "-n", "-c", ar.conf], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 78 and "AUDITRELAY_FETCH_MIN_INTERVAL" in r.stderr, r.stderr


def test_sighup_reload(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store).start()
    pids = ar.pids_by_name()
    ar.cfg["fetch_overlap"] = "300"
    ar.write_config()
    ar.proc.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "applied by every daemon" in ar.log(), 10, "reload applied")
    ar.write_config("fetch_overlap = nope\n")
    ar.proc.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "reload failed, keeping the old configuration" in ar.log(), 10,
               "bad reload refused")
    time.sleep(1)
    assert ar.proc.poll() is None
    assert ar.pids_by_name() == pids, "a reload must not restart children"
    ar.wait_healthy(5)
    assert ar.stop() == 0


def test_store_outage(wd):
    store = h.Store(wd)
    if store.external:
        h.log("external store: outage test skipped, cannot stop it")
        return
    ar = h.Auditrelay(wd, store).start()
    pids = ar.pids_by_name()
    store.stop()
    h.wait_for(lambda: ar.healthz()[0] == 503 and not ar.healthz()[1]["store"]["ok"], 15,
               "healthz reports the outage")
    st, body, _ = ar.healthz()
    h.log("during outage: %s %s" % (st, body))
    time.sleep(20)
    assert ar.proc.poll() is None
    assert ar.pids_by_name() == pids, "no process may die for a store outage"
    store.start(store.port)
    t0 = time.monotonic()
    ar.wait_healthy(20)
    h.log("healthy again %.1fs after the store came back" % (time.monotonic() - t0))
    assert ar.pids_by_name() == pids
    log = ar.log()
    assert log.count("store unreachable") <= 3, "outage logged once per daemon"
    assert "store reachable again" in log
    assert ar.stop() == 0


if __name__ == "__main__":
    h.run_tests([test_bad_config, test_kill_each_child_restarts, test_sigterm_stops_everything,
                 test_kill_supervisor_kills_children, test_sighup_reload, test_child_exit_78_is_final,
                 test_store_outage, test_crash_loop_exits_1], "supervisor")
