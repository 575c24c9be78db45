"""Connecting Google Workspace as the brief's own user would: the brief's
POST /add-source body byte for byte (only the key and the callback
replaced), a service account acting as itself (an admin role assigned to
it, no subject) and through domain-wide delegation (subject), every
refusal's whole message, client-supplied ids (retry 200, conflict 409),
the three key forms, and a per-source initialLookback. Real store, real
simulator, real receiver."""
import json
import os
import re
import subprocess
import time

import harness as h

# The example of the original brief (its "Source Configuration & Data
# Model"), byte for byte. The test replaces only the two "string" values of
# the key and the callback URL.
BRIEF_BODY = """{
  "id": "uuid",
  "sourceType": "google_workspace",
  "credentials": {
    "clientEmail": "string",
    "privateKey": "string",
    "scopes": ["admin.googleapis.com"]
  },
  "logFetchInterval": 300,
  "callbackUrl": "https://example.com/webhook"
}"""

DEFAULT_APPS = ["admin", "login", "token", "user_accounts", "saml", "groups", "drive",
                "mobile"]
SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"


def brief_body(key, callback):
    """The brief's body with the simulator's key and the receiver's URL."""
    text = BRIEF_BODY
    assert text.count('"clientEmail": "string"') == 1
    assert text.count('"privateKey": "string"') == 1
    text = text.replace('"clientEmail": "string"',
                        '"clientEmail": ' + json.dumps(key["client_email"]))
    text = text.replace('"privateKey": "string"',
                        '"privateKey": ' + json.dumps(key["private_key"]))
    text = text.replace('"https://example.com/webhook"', json.dumps(callback))
    return text.encode()


def tenant(sim, cid, sa_name="relay", admin_role=False, delegation=True, privileged=True):
    domain = "%s.example.com" % cid.lower()
    admin = "admin@" + domain
    st, _, _ = sim.call("POST", "/_sim/tenants", {"customerId": cid, "domain": domain})
    assert st in (200, 201), st
    st, _, _ = sim.call("POST", "/_sim/tenants/%s/admins" % cid,
                        {"email": admin, "privileged": privileged})
    assert st in (200, 201), st
    key = service_account(sim, cid, sa_name, admin_role, delegation)
    return key, admin


def service_account(sim, cid, name, admin_role=False, delegation=True):
    st, key, _ = sim.call("POST", "/_sim/tenants/%s/service-accounts" % cid,
                          {"name": name, "projectId": cid.lower(), "adminRole": admin_role,
                           "delegation": delegation})
    assert st in (200, 201) and key.get("private_key"), (st, key)
    return key


def inject_logins(sim, cid, n, ago_s=60):
    now = time.time()
    acts = []
    for i in range(n):
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - ago_s + i))
        acts.append({"id": {"time": t + ".%03dZ" % i},
                     "actor": {"email": "user%d@%s.example.com" % (i, cid.lower()),
                               "profileId": "1%05d" % i},
                     "ipAddress": "192.168.1.%d" % (i + 1),
                     "events": [{"type": "login", "name": "login_success",
                                 "parameters": [{"name": "login_type",
                                                 "value": "google_password"}]}]})
    st, b, _ = sim.call("POST", "/_sim/tenants/%s/inject" % cid,
                        {"application": "login", "activities": acts})
    assert st in (200, 201), (st, b)


def start(wd):
    store = h.Store(wd)
    sim = h.Sim(wd, ["--no-lag"])
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim).start()
    return store, sim, ar, recv


def post_raw(ar, data):
    return ar.api("POST", "/add-source", raw=data,
                  headers={"Content-Type": "application/json"})


def source_logs(recv, sid, secret=None):
    """Logs of source sid the receiver answered 2xx, their signatures
    checked here with the source's secret (known only after the 201)."""
    out = []
    with recv.lock:
        reqs = list(recv.requests)
        secret = secret or recv.secrets.get(sid)
    for r in reqs:
        b = r["body"]
        if not b or b.get("sourceId") != sid or b.get("type") != "logs":
            continue
        if not 200 <= r["status"] < 300:
            continue
        want = h.webhook_sign(secret, r["id"], r["ts"], r["raw"])
        assert want in r["sig"].split(), "bad signature on %s" % r["id"]
        out.extend(b["logs"])
    return out


def wait_logins(recv, sid, n, timeout=60):
    def got():
        logs = source_logs(recv, sid)
        return logs if len(logs) >= n else None
    return h.wait_for(got, timeout, "%d logs of source %s at the receiver" % (n, sid))


def test_brief_body_as_written(wd):
    """The brief's body, no subject: the service account acts as itself."""
    store, sim, ar, recv = start(wd)
    key, _ = tenant(sim, "C01brief", admin_role=True, delegation=False)
    inject_logins(sim, "C01brief", 5)
    st, src, _ = post_raw(ar, brief_body(key, recv.url))
    assert st == 201, src
    sid = src["id"]
    assert sid != "uuid" and len(sid) == 36, sid
    recv.set_secret(sid, src["webhookSecret"])
    assert src["subject"] is None, src
    assert src["scopes"] == [SCOPE], src
    assert src["applications"] == DEFAULT_APPS, src
    assert src["logFetchInterval"] == 300 and src["initialLookback"] == 3600, src
    logs = wait_logins(recv, sid, 5)
    assert {l["actor"]["email"] for l in logs} == {"user%d@c01brief.example.com" % i
                                                   for i in range(5)}
    assert all(l["eventType"] == "login" and l["details"]["login_type"] == "google_password"
               for l in logs), logs[0]
    # The token the simulator issued had no sub: the account itself.
    simlog = open(sim.logpath).read()
    assert "token issued tenant=C01brief client=%s sub=\n" % key["client_email"] in simlog, \
        simlog[-2000:]
    # The placeholder id asks for a new source each time; both work.
    st, src2, _ = post_raw(ar, brief_body(key, recv.url))
    assert st == 201 and src2["id"] != sid, src2
    h.log("brief body: 201 %s, %d logs delivered, JWT without sub" % (sid, len(logs)))


def test_subject_delegation(wd):
    """With subject: domain-wide delegation, impersonating the admin."""
    store, sim, ar, recv = start(wd)
    key, admin = tenant(sim, "C01dwd", admin_role=False, delegation=True)
    inject_logins(sim, "C01dwd", 3)
    body = json.loads(brief_body(key, recv.url))
    body["credentials"]["subject"] = admin
    del body["id"]
    st, src, _ = ar.api("POST", "/add-source", body)
    assert st == 201, src
    recv.set_secret(src["id"], src["webhookSecret"])
    assert src["subject"] == admin
    wait_logins(recv, src["id"], 3)
    simlog = open(sim.logpath).read()
    assert "token issued tenant=C01dwd client=%s sub=%s" % (key["client_email"], admin) in simlog


def test_refusals(wd):
    """Each way Google refuses, with its whole message and its advice."""
    store, sim, ar, recv = start(wd)
    key, admin = tenant(sim, "C01no", admin_role=False, delegation=False)

    def refused(body, *needles):
        st, b, _ = ar.api("POST", "/add-source", body)
        assert st == 422, (st, b)
        e = b["error"]
        assert e["code"] == "credentials_refused" and e["field"] == "credentials", e
        for n in needles:
            assert n in e["message"], (n, e["message"])
        return e["message"]

    # 1. No subject, no admin role of its own: Google's 403.
    body = json.loads(brief_body(key, recv.url))
    m = refused(body, "Not Authorized to access this resource/api",
                "has no admin role with the Reports privilege, and no subject was given: "
                "assign it one", "or give subject (an admin) with domain-wide delegation for "
                + SCOPE, key["client_email"])
    assert m.endswith("Domain-wide delegation)"), m
    assert len(m) > 320, len(m)   # the old cut at 320 characters is gone
    h.log("no role, no subject: %s" % m)

    # 2. A subject, but no domain-wide delegation.
    body["credentials"]["subject"] = admin
    m = refused(body, "unauthorized_client", "domain-wide delegation is missing",
                "for the scope " + SCOPE, "omit subject and assign the service account an "
                "admin role with the Reports privilege")
    h.log("no delegation: %s" % m)

    # 3. Delegation, but the admin has no Reports privilege.
    st, _, _ = sim.call("POST", "/_sim/tenants/C01no/service-accounts/" + key["client_email"],
                        {"delegation": True})
    assert st == 200
    st, _, _ = sim.call("POST", "/_sim/tenants/C01no/admins",
                        {"email": admin, "privileged": False})
    assert st in (200, 201)
    m = refused(body, "Caller does not have access to the customers reporting data",
                "the admin given as subject (%s) lacks the Reports privilege" % admin,
                "or omit subject and assign that role to the service account itself")
    h.log("admin unprivileged: %s" % m)

    # 4. A subject that is not a user of the domain.
    body["credentials"]["subject"] = "nobody@c01no.example.com"
    refused(body, "invalid_grant", "is not a user of the domain")

    # Nothing was stored; the role then makes the body without subject work.
    assert ar.api("GET", "/sources")[1]["sources"] == []
    st, _, _ = sim.call("POST", "/_sim/tenants/C01no/service-accounts/" + key["client_email"],
                        {"adminRole": True})
    assert st == 200
    st, src, _ = post_raw(ar, brief_body(key, recv.url))
    assert st == 201, src


def test_role_removed_later(wd):
    """The admin role taken away from a running source: the source turns
    credentials_invalid, and its lastError and alert carry the whole advice."""
    store, sim, ar, recv = start(wd)
    key, _ = tenant(sim, "C01later", admin_role=True, delegation=False)
    body = json.loads(brief_body(key, recv.url))
    body.update(applications=["login"], logFetchInterval=1)
    st, src, _ = ar.api("POST", "/add-source", body)
    assert st == 201, src
    sid = src["id"]
    recv.set_secret(sid, src["webhookSecret"])
    st, _, _ = sim.call("POST", "/_sim/tenants/C01later/service-accounts/" + key["client_email"],
                        {"adminRole": False})
    assert st == 200
    one = h.wait_for(lambda: (lambda b: b if b["status"] == "credentials_invalid" else None)(
        ar.api("GET", "/sources/" + sid)[1]), 60, "credentials_invalid")
    advice = ("or give subject (an admin) with domain-wide delegation for " + SCOPE +
              " (Admin console > Security > API controls > Domain-wide delegation)")
    assert one["lastError"].endswith(advice), one["lastError"]
    assert "has no admin role with the Reports privilege" in one["lastError"]
    alert = h.wait_for(lambda: [b for r in recv.requests if (b := r["body"])
                                and b.get("type") == "alert"
                                and b.get("alert") == "credentials_invalid"], 60, "the alert")
    assert alert[0]["message"].endswith(advice), alert[0]["message"]


def test_client_id(wd):
    """A client-supplied id: kept; the same body again 200; another 409."""
    store, sim, ar, recv = start(wd)
    key, admin = tenant(sim, "C01ids", admin_role=True)
    sid = "3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61"
    body = json.loads(brief_body(key, recv.url))
    body["id"] = sid
    st, src, _ = ar.api("POST", "/add-source", body)
    assert st == 201 and src["id"] == sid and src["webhookSecret"], src
    # A retry (say the 201 was lost): the same source, no second one.
    st, again, _ = ar.api("POST", "/add-source", body)
    assert st == 200 and again["id"] == sid, again
    assert "webhookSecret" not in again
    assert again["createdAt"] == src["createdAt"]
    # The same id in upper case is the same id.
    st, again, _ = ar.api("POST", "/add-source", dict(body, id=sid.upper()))
    assert st == 200 and again["id"] == sid, again
    # A different body under that id: 409, nothing changed.
    st, b, _ = ar.api("POST", "/add-source", dict(body, logFetchInterval=600))
    assert st == 409 and b["error"]["field"] == "id" and b["error"]["code"] == "id_conflict", b
    assert "already exists with a different body" in b["error"]["message"]
    other = service_account(sim, "C01ids", "other", admin_role=True)
    b2 = json.loads(brief_body(other, recv.url))
    b2["id"] = sid
    st, b, _ = ar.api("POST", "/add-source", b2)
    assert st == 409, (st, b)
    srcs = ar.api("GET", "/sources")[1]["sources"]
    assert [s["id"] for s in srcs] == [sid] and srcs[0]["logFetchInterval"] == 300, srcs
    # Without an id the server assigns one.
    del body["id"]
    st, src2, _ = ar.api("POST", "/add-source", body)
    assert st == 201 and src2["id"] != sid
    assert len(ar.api("GET", "/sources")[1]["sources"]) == 2


def test_key_forms(wd):
    """The three documented key forms (and the whole key file)."""
    store, sim, ar, recv = start(wd)
    _, admin = tenant(sim, "C01forms", admin_role=True)
    forms = {}
    k = service_account(sim, "C01forms", "fields", admin_role=True)
    forms["fields"] = (k, {"clientEmail": k["client_email"], "privateKey": k["private_key"],
                           "privateKeyId": k["private_key_id"]})
    k = service_account(sim, "C01forms", "object", admin_role=True)
    forms["object"] = (k, {"serviceAccountKey": k})
    k = service_account(sim, "C01forms", "string", admin_role=True)
    forms["string"] = (k, {"serviceAccountKey": json.dumps(k, indent=2)})
    k = service_account(sim, "C01forms", "keyfile", admin_role=True)
    forms["keyfile"] = (k, dict(k))
    for name, (k, creds) in forms.items():
        body = {"sourceType": "google_workspace", "credentials": creds,
                "applications": ["login"], "callbackUrl": recv.url}
        st, src, _ = ar.api("POST", "/add-source", body)
        assert st == 201, (name, st, src)
        assert src["clientEmail"] == k["client_email"] and src["subject"] is None, (name, src)
        # The same form with subject (delegation) works too.
        creds2 = dict(creds, subject=admin)
        st, src, _ = ar.api("POST", "/add-source", dict(body, credentials=creds2))
        assert st == 201 and src["subject"] == admin, (name, st, src)
        h.log("key form %s: 201" % name)


def test_initial_lookback(wd):
    """initialLookback: how far back a new source starts; PATCH while paused."""
    store, sim, ar, recv = start(wd)
    key, _ = tenant(sim, "C01back", admin_role=True)
    # Two events two days ago, two a minute ago.
    inject_logins(sim, "C01back", 2, ago_s=2 * 86400)
    inject_logins(sim, "C01back", 2, ago_s=60)
    base = {"sourceType": "google_workspace",
            "credentials": {"serviceAccountKey": key}, "applications": ["login"],
            "logFetchInterval": 60, "callbackUrl": recv.url}
    st, deep, _ = ar.api("POST", "/add-source", dict(base, initialLookback=3 * 86400))
    assert st == 201 and deep["initialLookback"] == 3 * 86400, deep
    st, near, _ = ar.api("POST", "/add-source", base)
    assert st == 201 and near["initialLookback"] == 3600, near
    for s in (deep, near):
        recv.set_secret(s["id"], s["webhookSecret"])
    assert len(wait_logins(recv, deep["id"], 4)) >= 4
    wait_logins(recv, near["id"], 2)
    time.sleep(2)
    near_logs = source_logs(recv, near["id"])
    assert len(near_logs) == 2, near_logs   # the old two are beyond its hour
    # PATCH: refused while active, accepted while paused, shown in GET.
    P = "/sources/" + near["id"]
    st, b, _ = ar.api("PATCH", P, {"initialLookback": 86400})
    assert st == 409 and b["error"]["field"] == "initialLookback", b
    assert "paused" in b["error"]["message"]
    st, b, _ = ar.api("PATCH", P, {"paused": True, "initialLookback": 86400})
    assert st == 200 and b["initialLookback"] == 86400 and b["paused"], b
    st, b, _ = ar.api("PATCH", P, {"initialLookback": 7 * 86400})
    assert st == 200 and b["initialLookback"] == 7 * 86400, b
    st, b, _ = ar.api("GET", P)
    assert b["initialLookback"] == 7 * 86400
    assert store.db()["sources"].find_one({"_id": near["id"]})["initialLookback"] == 7 * 86400
    st, b, _ = ar.api("POST", "/add-source", dict(base, initialLookback=180 * 86400))
    assert st == 201 and b["initialLookback"] == 180 * 86400, b


def json_docs(text):
    """The JSON documents of curl's output, one after another."""
    dec, i, out = json.JSONDecoder(), 0, []
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = dec.raw_decode(text, i)
        out.append(doc)
    return out


def readme_blocks():
    """The sh blocks of the README's "Connect Google Workspace" section."""
    with open(os.path.join(h.SRC, "README.md")) as f:
        text = f.read()
    start = text.index("\n## Connect Google Workspace\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], re.S)


def test_readme_connect_commands(wd):
    """Every command of the README's Connect section, as written, against
    the simulator: the first block only sets AR, TOKEN and HOOK, which the
    test gives instead (a test instance, a test receiver)."""
    store, sim, ar, recv = start(wd)
    # The README's admin for way 2 is admin@example.com; one service account
    # with both the admin role (way 1) and domain-wide delegation (way 2).
    st, _, _ = sim.call("POST", "/_sim/tenants", {"customerId": "C01readme",
                                                 "domain": "example.com"})
    assert st in (200, 201)
    st, _, _ = sim.call("POST", "/_sim/tenants/C01readme/admins",
                        {"email": "admin@example.com"})
    assert st in (200, 201)
    key = service_account(sim, "C01readme", "readme", admin_role=True, delegation=True)
    inject_logins(sim, "C01readme", 3)
    with open(os.path.join(wd, "sa.json"), "w") as f:
        json.dump(key, f, indent=2)
    blocks = readme_blocks()
    assert len(blocks) == 4, len(blocks)
    assert "AR=" in blocks[0] and "TOKEN=" in blocks[0] and "HOOK=" in blocks[0]
    env = dict(os.environ, AR=ar.base, TOKEN=ar.token, HOOK=recv.url)
    outs = []
    for b in blocks[1:]:
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", b], cwd=wd, env=env,
                           capture_output=True, text=True, timeout=120)
        h.log("README block -> %d\n%s%s" % (p.returncode, p.stdout[:3000], p.stderr))
        assert p.returncode == 0, (b, p.stdout, p.stderr)
        outs.append(p.stdout)
        if len(outs) == 1:
            # Block 2: the brief's body, 201 with a server-assigned id;
            # the events reach the receiver (before block 4 pauses it).
            first, = json_docs(outs[0])
            assert first["id"] != "uuid" and first["subject"] is None, first
            recv.set_secret(first["id"], first["webhookSecret"])
            wait_logins(recv, first["id"], 3)
    # Block 3: three more sources, one per key form.
    made = json_docs(outs[1])
    assert [m["clientEmail"] for m in made] == [key["client_email"]] * 3, outs[1]
    assert [m["subject"] for m in made] == [None, "admin@example.com", None], made
    # Block 4: the list, then pause + lookback, then apps + resume.
    lines = json_docs(outs[2])
    assert len(lines[0]["sources"]) == 4, lines[0]
    assert lines[1]["paused"] is True and lines[1]["initialLookback"] == 2592000, lines[1]
    assert lines[2]["paused"] is False and "calendar" in lines[2]["applications"], lines[2]


if __name__ == "__main__":
    h.run_tests([test_brief_body_as_written, test_subject_delegation, test_refusals,
                 test_role_removed_later,
                 test_client_id, test_key_forms, test_initial_lookback,
                 test_readme_connect_commands], "connect")
