"""System test of auditrelayctl against a running auditrelay: every
subcommand's success path in table and --json form, the key-file flow, and
the errors a user meets (bad field, wrong token, unreachable API, unknown
source, usage) with their exit statuses. The private key never shows in
the CLI's output."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import harness as h

CTL_OK, CTL_API, CTL_USAGE, CTL_CONNECT, CTL_AUTH = 0, 1, 2, 3, 4


class Ctl:
    def __init__(self, ar, workdir):
        self.ar = ar
        self.env = dict(os.environ)
        self.env["AUDITRELAY_API_TOKEN"] = ar.token
        self.env.pop("AUDITRELAY_API_TOKEN_FILE", None)
        self.env.pop("AUDITRELAY_API_LISTEN", None)
        # An absent configuration file: --url decides.
        self.conf = os.path.join(workdir, "no-such.conf")
        self.outputs = []

    def run(self, *args, env=None, url=True, want=CTL_OK):
        cmd = [os.path.join(h.BIN, "auditrelayctl"), "--config", self.conf]
        if url:
            cmd += ["--url", self.ar.base]
        cmd += list(args)
        p = subprocess.run(cmd, env=env or self.env, capture_output=True, text=True,
                           timeout=90)
        self.outputs.append(p.stdout + p.stderr)
        h.log("$ auditrelayctl %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                  p.stderr))
        assert p.returncode == want, (args, p.returncode, want, p.stdout, p.stderr)
        return p

    def json(self, *args):
        return json.loads(self.run("--json", *args).stdout)


def _keyfile(workdir, key, name):
    path = os.path.join(workdir, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump(key, f)
    return path


def test_ctl_every_command(wd):
    store = h.Store(wd)
    sim = h.Sim(wd)
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, "C0ctl", apps=("login", "admin"), rate=2)
    ar = h.Auditrelay(wd, store, sim).start()
    ctl = Ctl(ar, wd)
    kf = _keyfile(wd, key, "sa.json")

    p = ctl.run("status")
    assert "status: ok" in p.stdout and "fetcherd" in p.stdout
    assert ctl.json("status")["status"] == "ok"
    assert "No sources" in ctl.run("list").stdout

    p = ctl.run("add", "--key-file", kf, "--subject", admin, "--app", "login",
                "--app", "admin", "--interval", "1", "--callback", recv.url)
    assert "added" in p.stdout and "whsec_" in p.stdout, p.stdout
    sid = p.stdout.split("Source ", 1)[1].split()[0]

    p = ctl.run("list")
    assert sid in p.stdout and admin in p.stdout and "login,admin" in p.stdout
    lst = ctl.json("list")
    assert any(s["id"] == sid for s in lst["sources"]), lst
    p = ctl.run("show", sid)
    assert admin in p.stdout and "callbackUrl" in p.stdout
    assert ctl.json("show", sid)["id"] == sid

    ctl.run("pause", sid)
    assert ctl.json("show", sid)["status"] == "paused"
    ctl.run("resume", sid)
    assert ctl.json("show", sid)["paused"] is False

    p = ctl.run("rotate-secret", sid)
    assert "whsec_" in p.stdout and "24 hours" in p.stdout

    st, key2, _ = sim.call("POST", "/_sim/tenants/C0ctl/service-accounts",
                           {"name": "relay2", "projectId": "c0ctl"})
    assert st in (200, 201), st
    kf2 = _keyfile(wd, key2, "sa2.json")
    p = ctl.run("rotate-credentials", sid, "--key-file", kf2)
    assert "replaced" in p.stdout
    assert ctl.json("show", sid)["clientEmail"] == key2["client_email"]

    p = ctl.run("dead-letters", sid)
    assert "No dead letters" in p.stdout or "BATCH" in p.stdout
    dl = ctl.json("dead-letters", sid)
    assert isinstance(dl.get("deadLetters"), list), dl
    p = ctl.run("replay", sid)
    assert "queued" in p.stdout

    # Token from a file instead of the environment.
    tok = os.path.join(wd, "token")
    with open(os.open(tok, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(ar.token + "\n")
    env = dict(ctl.env)
    del env["AUDITRELAY_API_TOKEN"]
    ctl.run("--token-file", tok, "list", env=env)
    # URL from api_listen of a configuration file.
    conf = os.path.join(wd, "ctl.conf")
    with open(conf, "w") as f:
        f.write("# test\napi_listen = 0.0.0.0:%d\napi_token_file = %s\n" % (ar.port, tok))
    p = subprocess.run([os.path.join(h.BIN, "auditrelayctl"), "--config", conf, "list"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and sid in p.stdout, (p.returncode, p.stdout, p.stderr)

    ctl.run("remove", sid)
    assert "No sources" in ctl.run("list").stdout

    out = "\n".join(ctl.outputs)
    for k in (key, key2):
        body = k["private_key"].split("-----")[2].strip().splitlines()[1]
        assert body not in out, "private key material in the CLI output"
    assert ar.token not in out
    assert ar.proc.poll() is None


def test_ctl_errors(wd):
    store = h.Store(wd)
    sim = h.Sim(wd)
    key, admin = h.sim_tenant(sim, "C0err", apps=("login",), rate=1)
    ar = h.Auditrelay(wd, store, sim).start()
    ctl = Ctl(ar, wd)
    kf = _keyfile(wd, key, "sa.json")

    # The API's message and field reach the user, exit 1, nothing stored.
    p = ctl.run("add", "--key-file", kf, "--subject", admin, "--callback",
                "ftp://example.com/x", want=CTL_API)
    assert "callbackUrl" in p.stderr, p.stderr
    p = ctl.run("add", "--key-file", kf, "--subject", admin, "--app", "nosuchapp",
                "--callback", "https://example.com/x", want=CTL_API)
    assert "applications" in p.stderr, p.stderr
    assert ctl.json("list")["sources"] == []
    p = ctl.run("show", "00000000-0000-4000-8000-000000000000", want=CTL_API)
    assert "404" in p.stderr
    ctl.run("remove", "00000000-0000-4000-8000-000000000000", want=CTL_API)

    # Local usage errors: exit 2 before any request.
    # Without --subject the service account acts as itself: this one has no
    # admin role, and Google's refusal comes back whole, with the advice.
    p = ctl.run("add", "--key-file", kf, "--callback", "http://127.0.0.1:9/hook",
                want=CTL_API)
    assert "has no admin role with the Reports privilege, and no subject was given" \
        in p.stderr and "Domain-wide delegation) (field credentials; HTTP 422" in p.stderr, \
        p.stderr
    ctl.run("add", "--key-file", kf, "--callback", "http://127.0.0.1:9/hook",
            "--lookback", "0", want=CTL_USAGE)
    ctl.run("add", "--subject", admin, "--callback", "https://example.com/x", want=CTL_USAGE)
    bad = os.path.join(wd, "notakey.json")
    with open(bad, "w") as f:
        f.write('{"type": "authorized_user"}')
    p = ctl.run("add", "--key-file", bad, "--subject", admin, "--callback",
                "https://example.com/x", want=CTL_USAGE)
    assert "service-account key file" in p.stderr
    ctl.run("add", "--key-file", kf, "--subject", admin, "--callback", "https://e.com/",
            "--interval", "1.5", want=CTL_USAGE)
    ctl.run("show", want=CTL_USAGE)
    ctl.run("show", "a", "b", want=CTL_USAGE)
    ctl.run("frobnicate", want=CTL_USAGE)
    ctl.run("list", "--bogus", want=CTL_USAGE)
    for c in ("add", "list", "show", "remove", "rotate-credentials", "rotate-secret",
              "pause", "resume", "dead-letters", "replay", "backfill", "status"):
        p = ctl.run(c, "--help")
        assert p.stdout.startswith("usage: auditrelayctl " + c), p.stdout
    assert "rotate-credentials" in ctl.run("--help").stdout
    # A local build names the same default configuration as the docs.
    conf = "/etc/auditrelay/auditrelay.conf"
    assert conf in ctl.run("--help").stdout
    p = subprocess.run([os.path.join(h.BIN, "auditrelayd"), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert "(default %s)" % conf in p.stdout + p.stderr, p.stdout + p.stderr
    assert "/usr/local/etc" not in p.stdout + p.stderr
    for page in ("auditrelayd.8", "auditrelayctl.1", "auditrelay.conf.5"):
        with open(os.path.join(h.SRC, "man", page)) as f:
            assert conf in f.read(), page

    # Authentication: a wrong token, no token.
    env = dict(ctl.env)
    env["AUDITRELAY_API_TOKEN"] = "wrong-token-0123456789"
    p = ctl.run("list", env=env, want=CTL_AUTH)
    assert "401" in p.stderr
    del env["AUDITRELAY_API_TOKEN"]
    ctl.run("--token-file", os.path.join(wd, "missing"), "list", env=env, want=CTL_AUTH)
    # status needs no token.
    ctl.run("status", env=env)

    # Unreachable API.
    p = ctl.run("--url", "http://127.0.0.1:%d" % h.free_port(), "list", url=False,
                want=CTL_CONNECT)
    assert "is auditrelay running" in p.stderr
    assert ar.proc.poll() is None


def test_ctl_no_subject_id_lookback_dead_letters(wd):
    """add without --subject (an admin role on the service account), with
    --id (the same command again: the same source) and --lookback; then
    dead letters of a callback answering 400, each shown once as
    "HTTP 400: <body>"."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    recv = h.Receiver()
    recv.status = 400
    key, admin = h.sim_tenant(sim, "C0dead", apps=("login",), rate=5)
    st, _, _ = sim.call("POST", "/_sim/tenants/C0dead/service-accounts/" + key["client_email"],
                        {"adminRole": True})
    assert st == 200
    ar = h.Auditrelay(wd, store, sim, extra={"delivery_retry_schedule": "1",
                                                  "delivery_breaker_threshold": "3"}).start()
    ctl = Ctl(ar, wd)
    kf = _keyfile(wd, key, "sa.json")
    sid = "5b9e6a3c-2f4d-4e8a-9c1b-7d6e5f4a3b21"
    args = ("add", "--key-file", kf, "--app", "login", "--interval", "1", "--id", sid,
            "--lookback", "86400", "--callback", recv.url)
    p = ctl.run(*args)
    assert "Source %s added." % sid in p.stdout and "whsec_" in p.stdout, p.stdout
    p = ctl.run(*args)
    assert "Source %s exists already with the same settings." % sid in p.stdout, p.stdout
    src = ctl.json("show", sid)
    assert src["subject"] is None and src["initialLookback"] == 86400, src
    db = store.db()
    h.wait_for(lambda: db.batches.count_documents({"sourceId": sid, "state": "dead"}) > 0,
               120, "a dead letter", interval=0.5)
    p = ctl.run("dead-letters", sid)
    assert "HTTP 400: HTTP 400" not in p.stdout, p.stdout
    assert "HTTP 400: {" in p.stdout, p.stdout
    dl = ctl.json("dead-letters", sid)["deadLetters"]
    assert dl and dl[0]["lastAttempt"]["status"] == 400, dl


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _bf_source(wd, cid, n, span_s):
    """The stack, a source reading login, and n old login events over span_s
    seconds ending two hours ago; returns (sim, recv, ar, sid, ctl, t_end)."""
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    recv = h.Receiver()
    key, admin = h.sim_tenant(sim, cid, apps=("login",), rate=1)
    t_end = time.time() - 7200
    h.inject_backlog(sim, cid, n, apps=("login",), span_s=span_s, t_end=t_end,
                     uq_base=10**15)
    ar = h.Auditrelay(wd, store, sim).start()
    created = h.add_source(ar, key, admin, recv.url, apps=("login",), interval=1)
    sid = created["id"]
    recv.set_secret(sid, h.source_secret(created))
    return sim, recv, ar, sid, Ctl(ar, wd), t_end


def _ctl_cmd(ctl, *args):
    return [os.path.join(h.BIN, "auditrelayctl"), "--config", ctl.conf, "--url",
            ctl.ar.base] + list(args)


def _readline(proc, timeout):
    """One line of proc's stdout within timeout seconds, read a byte at a
    time (nothing left in a buffer for communicate())."""
    fd, line = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        assert r, "no line within %ds: %r" % (timeout, line)
        c = os.read(fd, 1)
        if not c:
            break
        line += c
    return line.decode()


def test_ctl_backfill(wd):
    _, recv, ar, sid, ctl, t_end = _bf_source(wd, "C0ctlbf", 500, 20 * 86400)
    frm = _rfc3339(time.time() - 31 * 86400)
    to = _rfc3339(t_end + 60)  # the old events only, none of the live ones

    # Not a terminal: plain lines, no carriage returns; exit 0 when done.
    p = ctl.run("backfill", sid, "--app", "login", "--from", frm, "--to", to)
    assert "\r" not in p.stdout and "\033" not in p.stdout, p.stdout
    assert "queued." in p.stdout and "done." in p.stdout, p.stdout
    assert "500 new" in p.stdout, p.stdout
    old_end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_end + 1))
    h.wait_for(lambda: sum(1 for l in recv.delivered_logs() if l["timestamp"] < old_end) >= 500,
               60, "the old events delivered")
    p = ctl.run("backfill", sid, "--list")
    assert "done" in p.stdout and "100.0%" in p.stdout and "500" in p.stdout, p.stdout

    # On a terminal 60 columns wide: a bar redrawn in place, each drawing
    # within 59 columns (a wrapped line cannot be redrawn), ending at 100 %.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    proc = subprocess.Popen(_ctl_cmd(ctl, "backfill", sid, "--app", "login", "--from", frm,
                                     "--to", to),
                            env=ctl.env, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, out
    text = out.decode(errors="replace")
    h.log("pty:\n%r" % text)
    assert "\r[" in text and "done." in text, text
    assert re.search(r"\[#{10,30}\] done +100\.0%  \d+ new, \d+ already stored", text), text
    for seg in text.replace("\r\n", "\n").split("\r")[1:]:
        assert len(seg.split("\n")[0]) <= 59, (seg, text)

    # --json: the backfill once it is done, and nothing else on stdout.
    p = ctl.run("--json", "backfill", sid, "--app", "login", "--from", frm, "--to", to)
    fin = json.loads(p.stdout)
    assert fin["state"] == "done" and fin["progress"] == 1, fin
    # The same range again: absorbed (exactly which is test_backfill.py's).
    assert fin["eventsStored"] + fin["duplicates"] == 500 and fin["duplicates"] > 0, fin
    lst = ctl.json("backfill", sid, "--list")
    assert lst["count"] == 3 and lst["backfills"][0]["eventsStored"] == 500, lst
    assert [b["state"] for b in lst["backfills"]] == ["done"] * 3, lst
    bid = lst["backfills"][0]["id"]

    # --no-wait: the id, at once; --cancel BACKFILL cancels one, --cancel all.
    p = ctl.run("backfill", sid, "--app", "login", "--from", frm, "--no-wait")
    assert "queued." in p.stdout and "done" not in p.stdout, p.stdout
    nw = ctl.json("backfill", sid, "--app", "login", "--from", frm, "--no-wait")
    assert nw["state"] in ("queued", "running", "done") and nw["id"], nw
    p = ctl.run("backfill", sid, "--cancel", bid)
    assert "1 backfill(s) of source %s cancelled." % sid in p.stdout, p.stdout
    p = ctl.run("backfill", sid, "--cancel", bid, want=CTL_API)
    assert "404" in p.stderr, p.stderr
    p = ctl.run("backfill", sid, "--cancel", "--backfill", lst["backfills"][1]["id"])
    assert "1 backfill(s)" in p.stdout, p.stdout
    p = ctl.run("backfill", sid, "--cancel")
    assert "3 backfill(s)" in p.stdout, p.stdout
    p = ctl.run("backfill", sid, "--list")
    assert "No backfills" in p.stdout, p.stdout
    assert ctl.json("backfill", sid, "--list") == {"backfills": [], "count": 0}

    # Errors: the server's message naming the field; unknown source; usage.
    p = ctl.run("backfill", sid, "--app", "drive", "--from", frm, want=CTL_API)
    assert "field application; HTTP 400" in p.stderr and "drive" in p.stderr, p.stderr
    p = ctl.run("backfill", sid, "--app", "login", "--from", "2000-01-01T00:00:00Z",
                want=CTL_API)
    assert "180 days" in p.stderr and "field from" in p.stderr, p.stderr
    p = ctl.run("backfill", sid, "--app", "login", "--from", "yesterday", want=CTL_API)
    assert "field from" in p.stderr, p.stderr
    unknown = "00000000-0000-4000-8000-000000000000"
    p = ctl.run("backfill", unknown, "--app", "login", "--from", frm, want=CTL_API)
    assert "404" in p.stderr, p.stderr
    ctl.run("backfill", unknown, "--list", want=CTL_API)
    ctl.run("backfill", unknown, "--cancel", want=CTL_API)
    p = ctl.run("backfill", sid, "--app", "login", want=CTL_USAGE)
    assert "--from" in p.stderr, p.stderr
    p = ctl.run("backfill", "--app", "login", "--from", frm, want=CTL_USAGE)
    assert "missing the source ID" in p.stderr, p.stderr
    ctl.run("backfill", "", "--list", want=CTL_USAGE)
    ctl.run("backfill", sid, "--list", "--cancel", want=CTL_USAGE)
    ctl.run("backfill", sid, "--list", "--to", frm, want=CTL_USAGE)
    ctl.run("backfill", sid, "--cancel", "--no-wait", want=CTL_USAGE)
    ctl.run("backfill", sid, "--list", bid, want=CTL_USAGE)
    ctl.run("backfill", sid, "--backfill", bid, want=CTL_USAGE)
    ctl.run("backfill", sid, "--cancel", bid, "--backfill", bid, want=CTL_USAGE)
    p = ctl.run("backfill", "--help")
    assert p.stdout.startswith("usage: auditrelayctl backfill ID --app APP --from TIME"), p.stdout
    assert "--cancel [BACKFILL]" in p.stdout, p.stdout
    assert ar.proc.poll() is None
    # Three backfills of one range: each old event came under one webhook-id.
    carriers = {}
    for r in recv.accepted():
        for lg in (r["body"] or {}).get("logs", []):
            carriers.setdefault(lg["id"], set()).add(r["id"])
    dup_new = [k for k, v in carriers.items() if len(v) > 1]
    assert not dup_new, "%d events delivered under two webhook-ids" % len(dup_new)


def test_ctl_backfill_interrupted(wd):
    """Ctrl-C while waiting stops the waiting, not the backfill, and the
    command ends by SIGINT; a backfill cancelled elsewhere ends the wait
    with exit 1."""
    sim, _, ar, sid, ctl, _ = _bf_source(wd, "C0ctlbfi", 3000, 20 * 86400)
    # Slow pages: each backfill takes a while.
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "slow", "tenant": "C0ctlbfi",
                                                 "delayMs": 300})
    assert st in (200, 201), st
    frm = _rfc3339(time.time() - 31 * 86400)

    def start():
        proc = subprocess.Popen(_ctl_cmd(ctl, "backfill", sid, "--app", "login", "--from", frm),
                                env=ctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        line = _readline(proc, 30)
        assert line.startswith("Backfill ") and "queued." in line, line
        return proc, line.split()[1]

    proc, bid = start()
    assert _readline(proc, 10).split()[0] in ("queued", "running"), "a progress line"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    h.log("interrupted: rc %d\n%s%s" % (proc.returncode, out, err))
    assert proc.returncode == -signal.SIGINT, (proc.returncode, out, err)
    assert "stopped waiting; backfill %s goes on" % bid in err, err
    assert "done." not in out, out
    lst = ctl.json("backfill", sid, "--list")
    assert [b["id"] for b in lst["backfills"]] == [bid], lst
    assert lst["backfills"][0]["state"] in ("queued", "running"), lst

    # A second waiter; the first backfill cancelled from elsewhere ends the
    # first's wait only.
    proc2, bid2 = start()
    p = ctl.run("backfill", sid, "--cancel", bid)
    assert "1 backfill(s)" in p.stdout, p.stdout
    time.sleep(2)
    assert proc2.poll() is None, "the other backfill's wait went on"
    proc3 = subprocess.Popen(_ctl_cmd(ctl, "backfill", sid, "--app", "login", "--from", frm),
                             env=ctl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    bid3 = _readline(proc3, 30).split()[1]
    ctl.run("backfill", sid, "--cancel", bid3)
    out, err = proc3.communicate(timeout=30)
    assert proc3.returncode == CTL_API, (proc3.returncode, out, err)
    assert "backfill %s was cancelled" % bid3 in err and "done." not in out, (out, err)
    ctl.run("backfill", sid, "--cancel")
    out, err = proc2.communicate(timeout=30)
    assert proc2.returncode == CTL_API and "backfill %s was cancelled" % bid2 in err, \
        (proc2.returncode, out, err)
    assert ar.proc.poll() is None


if __name__ == "__main__":
    h.run_tests([test_ctl_every_command, test_ctl_errors,
                 test_ctl_no_subject_id_lookback_dead_letters, test_ctl_backfill,
                 test_ctl_backfill_interrupted], "ctl")
