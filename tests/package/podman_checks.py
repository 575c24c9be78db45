"""The checks of tests/package/podman.sh: the image $AR_PODMAN_IMAGE run
with the host's network against a store, the Google simulator and a
receiver started here (tests/system/harness.py). One PASS or FAIL line per
check; exit 1 when one failed. The container and every process started
here are stopped here."""
import base64
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../system"))
import harness as h  # noqa: E402

PODMAN = os.environ["AR_PODMAN"].split()
LIMITS = os.environ["AR_PODMAN_LIMITS"].split()
IMAGE = os.environ["AR_PODMAN_IMAGE"]
failed = []


def check(name, ok, detail=""):
    print("podman: %s: %s%s" % ("PASS" if ok else "FAIL", name,
                                " (%s)" % detail if detail else ""), flush=True)
    if not ok:
        failed.append(name)
    return ok


def main():
    wd = h.Workdir("package-podman")
    name = "auditrelay-ci-%d" % os.getpid()
    started = False
    recv = None
    try:
        store = h.Store(wd.path)
        sim = h.Sim(wd.path, ["--no-lag"])
        recv = h.Receiver()
        sec = os.path.join(wd.path, "secrets")
        os.makedirs(sec)
        token = secrets.token_hex(32)
        for f, v in (("api_token", token),
                     ("master_key", base64.b64encode(secrets.token_bytes(32)).decode())):
            p = os.path.join(sec, f)
            with open(p, "w") as fh:
                fh.write(v + "\n")
            os.chown(p, 10001, 10001)
            os.chmod(p, 0o600)
        port = h.free_port()
        env = {"AUDITRELAY_API_LISTEN": "127.0.0.1:%d" % port, "AUDITRELAY_MONGODB_URI": store.uri,
               "AUDITRELAY_MONGODB_DATABASE": store.dbname,
               "AUDITRELAY_GOOGLE_TOKEN_URL": sim.token_url,
               "AUDITRELAY_GOOGLE_API_BASE": sim.base,
               "AUDITRELAY_DELIVERY_ALLOW_PRIVATE_NETWORKS": "1",
               "AUDITRELAY_FETCH_MIN_INTERVAL": "1"}
        args = PODMAN + ["run", "-d", "--name", name, "--network=host"] + LIMITS + \
            ["-v", "%s:/run/secrets:ro" % sec]
        for k, v in env.items():
            args += ["-e", "%s=%s" % (k, v)]
        t0 = time.monotonic()
        r = subprocess.run(args + [IMAGE], capture_output=True, text=True, timeout=60)
        started = r.returncode == 0
        if not started:
            check("podman run", False, r.stderr.strip())
            return
        base = "http://127.0.0.1:%d" % port
        try:
            h.wait_for(lambda: h.http_json("GET", base + "/healthz", timeout=3)[0] == 200, 30,
                       "/healthz 200")
            check("the image starts: /healthz 200", True, "%.1fs" % (time.monotonic() - t0))
        except AssertionError as e:
            logs = subprocess.run(PODMAN + ["logs", name], capture_output=True, text=True)
            check("the image starts: /healthz 200", False, "%s: %s" % (e, logs.stderr[-1500:]))
            return
        key, admin = h.sim_tenant(sim, "C01pod", apps=("login",), rate=10)
        body = {"sourceType": "google_workspace",
                "credentials": {"clientEmail": key["client_email"],
                                "privateKey": key["private_key"], "subject": admin},
                "applications": ["login"], "logFetchInterval": 1, "callbackUrl": recv.url}
        st, b, _ = h.http_json("POST", base + "/add-source", body,
                               headers={"Authorization": "Bearer " + token})
        if not check("POST /add-source", st == 201, "HTTP %s" % st):
            return
        recv.set_secret(b["id"], h.source_secret(b))
        try:
            h.wait_for(lambda: len(recv.delivered_logs()) >= 10, 60, "signed batches")
            check("signed batches delivered to the host's receiver", True,
                  "%d logs" % len(recv.delivered_logs()))
        except AssertionError as e:
            check("signed batches delivered to the host's receiver", False, str(e))
        t0 = time.monotonic()
        r = subprocess.run(PODMAN + ["stop", "-t", "20", name], capture_output=True, text=True)
        rc = subprocess.run(PODMAN + ["inspect", name, "--format", "{{.State.ExitCode}}"],
                            capture_output=True, text=True).stdout.strip()
        check("podman stop: a clean exit", r.returncode == 0 and rc == "0",
              "exit %s after %.1fs" % (rc, time.monotonic() - t0))
    finally:
        if started:
            subprocess.run(PODMAN + ["rm", "-f", name], capture_output=True)
        if recv:
            recv.stop()
        h.stop_all()
        wd.cleanup(not failed)


if __name__ == "__main__":
    main()
    sys.exit(1 if failed else 0)
