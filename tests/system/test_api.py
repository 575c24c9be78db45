"""System tests of the REST API (auditrelay-apid) against the real store,
the Google simulator and auditrelayd: every endpoint's success path, Google
refusing or unreachable, a table of bad requests, secrets never in clear,
private callbacks refused when private networks are disallowed."""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness as h

TENANT = "C01api"
DOMAIN = "api.example.com"
ADMIN = "admin@" + DOMAIN
SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
ALL_PATHS = ["/add-source", "/remove-source/{id}", "/sources", "/sources/{id}",
             "/sources/{id}/credentials", "/sources/{id}/webhook-secret",
             "/sources/{id}/dead-letters", "/sources/{id}/dead-letters/replay",
             "/sources/{id}/backfill",
             "/metrics", "/openapi.json", "/healthz"]


def setup_sim(wd):
    sim = h.Sim(wd, ["--no-lag"])
    st, _, _ = sim.call("POST", "/_sim/tenants", {"customerId": TENANT, "domain": DOMAIN})
    assert st in (200, 201), st
    st, _, _ = sim.call("POST", "/_sim/tenants/%s/admins" % TENANT, {"email": ADMIN})
    assert st in (200, 201), st
    return sim


def new_key(sim, name):
    st, key, _ = sim.call("POST", "/_sim/tenants/%s/service-accounts" % TENANT, {"name": name})
    assert st in (200, 201), (st, key)
    return key


def add_body(key, callback, apps=("login", "admin"), interval=60):
    return {"sourceType": "google_workspace",
            "credentials": {"clientEmail": key["client_email"],
                            "privateKey": key["private_key"],
                            "subject": ADMIN, "scopes": ["admin.googleapis.com"]},
            "applications": list(apps), "logFetchInterval": interval,
            "callbackUrl": callback}


def openssl_key(*args):
    return subprocess.run(["openssl"] + list(args), check=True, capture_output=True,
                          timeout=60).stdout.decode()


def count_sources(store):
    return store.db()["sources"].count_documents({})


def test_endpoints(wd):
    store = h.Store(wd)
    sim = setup_sim(wd)
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim).start()
    k1 = new_key(sim, "relay1")

    # healthz is open; everything else wants the token. Without the token
    # only the status, with it the store and the children.
    st, body, _ = ar.healthz(token=False)
    assert st == 200 and body == {"status": "ok"}, body
    st, body, _ = ar.healthz()
    assert st == 200 and body["status"] == "ok" and body["store"]["ok"], body
    assert {c["name"] for c in body["children"]} >= {"fetcherd", "deliverd"}, body

    # add-source with the clientEmail/privateKey pair.
    st, src, hd = ar.api("POST", "/add-source", add_body(k1, recv.url))
    assert st == 201, src
    assert hd["Content-Type"] == "application/json"
    sid = src["id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", sid)
    assert src["webhookSecret"].startswith("whsec_")
    assert src["scopes"] == [SCOPE]
    assert src["applications"] == ["login", "admin"]
    assert src["status"] == "active" and src["logFetchInterval"] == 60
    assert "privateKey" not in json.dumps(src)

    # The stored document: encrypted, key id, AAD bound to the id, the
    # field and its version (a blob opens for nothing else).
    doc = store.db()["sources"].find_one({"_id": sid})
    aes = h.master_aes(ar)
    assert h.secret_opens(aes, doc["credentials"], h.secret_aad(sid, "credentials", 1))
    assert h.secret_opens(aes, doc["webhookSecret"], h.secret_aad(sid, "webhookSecret", 1))
    assert doc["webhookSecretVersion"] == 1
    assert not h.secret_opens(aes, doc["credentials"], h.secret_aad(sid, "webhookSecret", 1))
    assert not h.secret_opens(aes, doc["webhookSecret"], h.secret_aad(sid, "credentials", 1))
    assert not h.secret_opens(aes, doc["credentials"], sid.encode())
    assert doc["clientEmail"] == k1["client_email"] and doc["subject"] == ADMIN
    assert len(doc["credentials"]["nonce"]) == 12 and len(doc["credentials"]["keyId"]) == 16
    assert len(doc["webhookSecret"]["nonce"]) == 12
    assert doc["credentials"]["nonce"] != doc["webhookSecret"]["nonce"]
    assert b"PRIVATE KEY" not in bytes(doc["credentials"]["ct"])
    assert doc["credentialsVersion"] == 1 and doc["paused"] is False

    # add-source with a whole key file as the credentials, default apps.
    k2 = new_key(sim, "relay2")
    kf = dict(k2)
    kf["subject"] = ADMIN
    body = {"sourceType": "google_workspace", "credentials": kf, "callbackUrl": recv.url}
    st, src2, _ = ar.api("POST", "/add-source", body)
    assert st == 201, src2
    assert len(src2["applications"]) >= 3 and "login" in src2["applications"]
    assert src2["logFetchInterval"] == 300

    # ... and as serviceAccountKey (a JSON string, as downloaded).
    body = {"sourceType": "google_workspace",
            "credentials": {"serviceAccountKey": json.dumps(k2), "subject": ADMIN},
            "applications": ["token"], "callbackUrl": recv.url}
    st, src3, _ = ar.api("POST", "/add-source", body)
    assert st == 201, src3

    # list and get.
    st, lst, _ = ar.api("GET", "/sources")
    assert st == 200
    ids = [s["id"] for s in lst["sources"]]
    assert ids == [sid, src2["id"], src3["id"]], ids
    for s in lst["sources"]:
        for f in ("id", "sourceType", "clientEmail", "subject", "applications",
                  "logFetchInterval", "callbackUrl", "status", "lastFetchAt", "lastError"):
            assert f in s, (f, s)
        assert "webhookSecret" not in s and "credentials" not in s
    st, one, _ = ar.api("GET", "/sources/" + sid)
    assert st == 200 and one["id"] == sid and "webhookSecret" not in one

    # status comes from the store's states.
    # fetcherd writes its state after its first poll; overwrite it after
    # that (the next poll is logFetchInterval away).
    db = store.db()
    h.wait_for(lambda: h.fetch_state(db, sid), 30, "fetcherd's first state")
    h.set_fetch_state(db, sid, {"status": "credentials_invalid",
                                "lastFetchAt": int(time.time() * 1000),
                                "lastError": "invalid_grant: key deleted"})
    st, one, _ = ar.api("GET", "/sources/" + sid)
    assert one["status"] == "credentials_invalid" and one["lastError"].startswith("invalid_grant")
    assert one["lastFetchAt"].endswith("Z")

    # PATCH each field.
    st, p, _ = ar.api("PATCH", "/sources/" + sid, {"logFetchInterval": 120})
    assert st == 200 and p["logFetchInterval"] == 120, p
    st, p, _ = ar.api("PATCH", "/sources/" + sid, {"applications": ["login", "drive", "token"]})
    assert st == 200 and p["applications"] == ["login", "drive", "token"], p
    st, p, _ = ar.api("PATCH", "/sources/" + sid, {"callbackUrl": recv.url + "?v=2"})
    assert st == 200 and p["callbackUrl"].endswith("?v=2"), p
    st, p, _ = ar.api("PATCH", "/sources/" + sid, {"paused": True})
    assert st == 200 and p["paused"] is True and p["status"] == "paused", p
    st, p, _ = ar.api("PATCH", "/sources/" + sid, {"paused": False, "logFetchInterval": 90})
    assert st == 200 and p["paused"] is False and p["logFetchInterval"] == 90, p

    # Rotate credentials in place: new key, same id, version bumped.
    k3 = new_key(sim, "relay3")
    before = db["sources"].find_one({"_id": sid})
    st, p, _ = ar.api("PUT", "/sources/%s/credentials" % sid,
                      {"clientEmail": k3["client_email"], "privateKey": k3["private_key"],
                       "privateKeyId": k3["private_key_id"], "subject": ADMIN})
    assert st == 200, p
    assert p["clientEmail"] == k3["client_email"] and p["credentialsVersion"] == 2, p
    after = db["sources"].find_one({"_id": sid})
    assert after["credentials"]["ct"] != before["credentials"]["ct"]
    assert after["webhookSecret"] == before["webhookSecret"]
    assert h.secret_opens(aes, after["credentials"], h.secret_aad(sid, "credentials", 2))
    assert not h.secret_opens(aes, after["credentials"], h.secret_aad(sid, "credentials", 1))
    assert after["webhookSecretVersion"] == 1

    # Rotate the webhook secret: returned once, previous kept 24 h.
    st, r, _ = ar.api("POST", "/sources/%s/webhook-secret" % sid)
    assert st == 200, r
    assert r["webhookSecret"].startswith("whsec_") and r["webhookSecret"] != src["webhookSecret"]
    until = db["sources"].find_one({"_id": sid})["previousWebhookSecret"]["until"]
    assert abs(until - (time.time() + 86400) * 1000) < 120000
    assert db["sources"].find_one({"_id": sid})["previousWebhookSecret"]["ct"] == \
        before["webhookSecret"]["ct"]
    # The previous blob moved as it was: it opens at the version before.
    rot = db["sources"].find_one({"_id": sid})
    assert rot["webhookSecretVersion"] == 2 and rot["credentialsVersion"] == 2
    assert h.secret_opens(aes, rot["webhookSecret"], h.secret_aad(sid, "webhookSecret", 2))
    assert h.secret_opens(aes, rot["previousWebhookSecret"], h.secret_aad(sid, "webhookSecret", 1))
    st, one, _ = ar.api("GET", "/sources/" + sid)
    assert one.get("previousWebhookSecretValidUntil"), one
    st, r2, _ = ar.api("POST", "/sources/%s/webhook-secret" % sid, {})
    assert st == 200 and r2["webhookSecret"] != r["webhookSecret"]

    # Dead letters: list, replay keeps _id/webhookId/body.
    now = int(time.time() * 1000)
    for i in range(3):
        db["batches"].insert_one({"_id": "00000000-0000-4000-8000-00000000000%d" % i,
                                  "sourceId": sid, "kind": "logs", "logIds": ["a", "b"], "nLogs": 2,
                                  "alertIds": [], "body": '{"type":"logs"}',
                                  "webhookId": "msg_%d" % i, "state": "dead",
                                  "createdAt": now + i, "nextAttemptAt": 0, "nAttempts": 9,
                                  "attempts": [{"at": now, "status": 500, "error": "http 500"}],
                                  "epoch": 1})
    db["batches"].insert_one({"_id": "00000000-0000-4000-8000-000000000009", "sourceId": sid,
                              "kind": "logs", "state": "pending", "body": "{}",
                              "webhookId": "msg_9", "createdAt": now})
    st, dl, _ = ar.api("GET", "/sources/%s/dead-letters" % sid)
    assert st == 200 and dl["count"] == 3, dl
    assert dl["deadLetters"][0]["webhookId"] == "msg_0"
    assert dl["deadLetters"][0]["lastAttempt"]["status"] == 500
    assert dl["deadLetters"][0]["logCount"] == 2
    st, dl, _ = ar.api("GET", "/sources/%s/dead-letters?limit=1" % sid)
    assert st == 200 and dl["count"] == 1
    st, rp, _ = ar.api("POST", "/sources/%s/dead-letters/replay" % sid,
                       {"ids": ["00000000-0000-4000-8000-000000000000"]})
    assert st == 200 and rp["replayed"] == 1, rp
    b0 = db["batches"].find_one({"_id": "00000000-0000-4000-8000-000000000000"})
    assert b0["state"] == "pending" and b0["webhookId"] == "msg_0" and b0["body"] == '{"type":"logs"}'
    assert b0["nextAttemptAt"] >= now
    st, rp, _ = ar.api("POST", "/sources/%s/dead-letters/replay" % sid)
    assert st == 200 and rp["replayed"] == 2, rp
    assert db["batches"].count_documents({"sourceId": sid, "state": "dead"}) == 0

    # metrics: token-protected, Prometheus text.
    st, _, _ = ar.api("GET", "/metrics", token=False)
    assert st == 401
    # fetcherd's counters of the source's login application appear.
    h.wait_for(lambda: h.fetch_stats(db, sid, "login"), 30, "fetcherd's stats")
    st, text, hd = ar.api("GET", "/metrics")
    assert st == 200 and hd["Content-Type"].startswith("text/plain"), (st, text)
    assert re.search(r'auditrelay_fetch_pages_total\{source="%s",app="login"\} \d+' % sid,
                     text), text
    assert re.search(r'auditrelay_daemon_restarts_total\{daemon="fetcherd"\} \d+', text), text
    assert "auditrelay_sources 3" in text

    # openapi.json documents every path.
    st, oa, hd = ar.api("GET", "/openapi.json")
    assert st == 200 and hd["Content-Type"] == "application/json"
    assert oa["openapi"].startswith("3.1"), oa.get("openapi")
    for p in ALL_PATHS:
        assert p in oa["paths"], p

    # remove: 204, then 404 everywhere.
    st, _, _ = ar.api("DELETE", "/remove-source/" + sid)
    assert st == 204
    assert db["sources"].find_one({"_id": sid}) is None
    st, e, _ = ar.api("GET", "/sources/" + sid)
    assert st == 404 and e["error"]["code"] == "not_found"
    st, _, _ = ar.api("DELETE", "/remove-source/" + sid)
    assert st == 404
    st, lst, _ = ar.api("GET", "/sources")
    assert [s["id"] for s in lst["sources"]] == [src2["id"], src3["id"]]
    log = ar.log()
    assert "source=%s added" % sid in log and "source=%s removed" % sid in log
    recv.stop()


def test_google_refuses_or_unreachable(wd):
    store = h.Store(wd)
    sim = setup_sim(wd)
    ar = h.Auditrelay(wd, store, sim).start()
    k = new_key(sim, "refused")
    cb = "http://127.0.0.1:9/hook"

    # Domain-wide delegation missing: 422 with a diagnosis.
    st, _, _ = sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (TENANT, k["client_email"]),
                        {"delegation": False})
    assert st in (200, 201)
    st, e, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 422, e
    assert e["error"]["code"] == "credentials_refused"
    assert "unauthorized_client" in e["error"]["message"]
    assert "delegation" in e["error"]["message"].lower()
    h.log("422 (no delegation): %s" % e["error"]["message"])
    sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (TENANT, k["client_email"]),
             {"delegation": True})

    # Key deleted at Google: 422 invalid_grant.
    sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (TENANT, k["client_email"]),
             {"revokeKeys": True})
    st, e, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 422, e
    assert "invalid_grant" in e["error"]["message"], e
    h.log("422 (key deleted): %s" % e["error"]["message"])
    sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (TENANT, k["client_email"]),
             {"restoreKeys": True})

    # The admin lacks the privilege: 422.
    sim.call("POST", "/_sim/tenants/%s/admins" % TENANT, {"email": ADMIN, "privileged": False})
    st, e, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 422, e
    h.log("422 (admin unprivileged): %s" % e["error"]["message"])
    sim.call("POST", "/_sim/tenants/%s/admins" % TENANT, {"email": ADMIN, "privileged": True})

    # It works now.
    st, src, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 201, src
    assert count_sources(store) == 1

    # Credential rotation refused: 422, the old credentials stay.
    k2 = new_key(sim, "refused2")
    sim.call("POST", "/_sim/tenants/%s/service-accounts/%s" % (TENANT, k2["client_email"]),
             {"delegation": False})
    before = store.db()["sources"].find_one({"_id": src["id"]})
    st, e, _ = ar.api("PUT", "/sources/%s/credentials" % src["id"],
                      {"clientEmail": k2["client_email"], "privateKey": k2["private_key"],
                       "subject": ADMIN})
    assert st == 422, e
    assert store.db()["sources"].find_one({"_id": src["id"]}) == before

    # Google down (503s from the token endpoint): 503, nothing stored.
    st, _, _ = sim.call("POST", "/_sim/faults", {"kind": "503", "endpoint": "token"})
    assert st in (200, 201)
    st, e, hd = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 503, e
    assert e["error"]["code"] == "google_unavailable"
    sim.call("DELETE", "/_sim/faults")

    # Google unreachable (simulator stopped): 503, nothing stored.
    sim.stop()
    st, e, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 503, e
    assert count_sources(store) == 1
    assert ar.healthz()[0] == 200


def _answer(s, timeout, bufsize, enough=lambda buf: False):
    """Read the answer on s until it closes, timeout passes or enough(buf)
    holds, then close s; returns (status code or 0 for none, bytes)."""
    buf = b""
    try:
        deadline = time.monotonic() + timeout
        while not enough(buf) and time.monotonic() < deadline:
            try:
                chunk = s.recv(bufsize)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
    return (int(m.group(1)) if m else 0), buf


def raw_http(port, method, path, headers, body, timeout=30):
    """One request on a raw socket, body sent even if the server stops
    reading (413); returns (status, parsed JSON or text, headers dict)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    for k, v in headers.items():
        head += "%s: %s\r\n" % (k, v)
    head += "Content-Length: %d\r\n\r\n" % len(body)
    try:
        s.sendall(head.encode() + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    except BaseException:
        s.close()
        raise
    st, buf = _answer(s, timeout, 65536)
    if not st:
        return 0, None, {}
    head, _, payload = buf.partition(b"\r\n\r\n")
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin1").partition(":")
        hdrs[k.strip()] = v.strip()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return st, parsed, hdrs


def raw_request(port, data, timeout=10):
    """Send raw bytes; return the status code of the answer (0: none)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except BaseException:
        s.close()
        raise
    return _answer(s, timeout, 4096, lambda buf: b"\r\n" in buf)[0]


def bad_table(ar, k, sid, cb):
    """(name, method, path, body|None, raw|None, headers, status, field)."""
    def b(**over):
        body = add_body(k, cb)
        for key, val in over.items():
            if key.startswith("c_"):
                if val is DEL:
                    body["credentials"].pop(key[2:], None)
                else:
                    body["credentials"][key[2:]] = val
            elif val is DEL:
                body.pop(key, None)
            else:
                body[key] = val
        return body

    pem1024 = openssl_key("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
    pem_pkcs1 = openssl_key("genrsa", "-traditional", "2048")
    pem_ec = openssl_key("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    good_pem = k["private_key"]
    lines = good_pem.splitlines()
    truncated = "\n".join(lines[:len(lines) // 2]) + "\n-----END PRIVATE KEY-----\n"
    mid = len(lines) // 2
    corrupt = "\n".join(lines[:mid] + [lines[mid][::-1]] + lines[mid + 1:]) + "\n"
    kf = dict(k)
    kf_bad_type = dict(k, type="authorized_user")
    kf_extra = dict(k, bogus=1)
    kf_nopk = {x: y for x, y in k.items() if x != "private_key"}
    t = []
    A = "/add-source"

    def add(name, body, field, status=400, method="POST", path=A, headers=None):
        t.append((name, method, path, body, None, headers or {}, status, field))

    add("empty object", {}, "sourceType")
    add("unknown top field", b(foo=1), "foo")
    add("unknown field subject at top", b(subject=ADMIN), "subject")
    add("sourceType other", b(sourceType="gsuite"), "sourceType")
    add("sourceType number", b(sourceType=1), "sourceType")
    add("sourceType null", b(sourceType=None), "sourceType")
    add("sourceType missing", b(sourceType=DEL), "sourceType")
    add("credentials missing", b(credentials=DEL), "credentials")
    add("credentials string", b(credentials="x"), "credentials")
    add("credentials array", b(credentials=[]), "credentials")
    add("credentials unknown field", b(c_extra="x"), "credentials.extra")
    add("clientEmail missing", b(c_clientEmail=DEL), "credentials.clientEmail")
    add("clientEmail not email", b(c_clientEmail="not-an-email"), "credentials.clientEmail")
    add("clientEmail number", b(c_clientEmail=5), "credentials.clientEmail")
    add("clientEmail empty", b(c_clientEmail=""), "credentials.clientEmail")
    add("clientEmail no dot", b(c_clientEmail="a@b"), "credentials.clientEmail")
    add("clientEmail space", b(c_clientEmail="a b@x.com"), "credentials.clientEmail")
    add("clientEmail two at", b(c_clientEmail="x@@y.com"), "credentials.clientEmail")
    add("clientEmail newline", b(c_clientEmail="x@y.com\nBcc: z@y.com"), "credentials.clientEmail")
    add("privateKey missing", b(c_privateKey=DEL), "credentials.privateKey")
    add("privateKey garbage", b(c_privateKey="garbage"), "credentials.privateKey")
    add("privateKey RSA 1024", b(c_privateKey=pem1024), "credentials.privateKey")
    add("privateKey PKCS#1", b(c_privateKey=pem_pkcs1), "credentials.privateKey")
    add("privateKey EC", b(c_privateKey=pem_ec), "credentials.privateKey")
    add("privateKey truncated", b(c_privateKey=truncated), "credentials.privateKey")
    add("privateKey corrupted", b(c_privateKey=corrupt), "credentials.privateKey")
    add("privateKey number", b(c_privateKey=12), "credentials.privateKey")
    add("privateKey empty", b(c_privateKey=""), "credentials.privateKey")
    add("privateKey huge", b(c_privateKey="A" * 20000), "credentials.privateKey")
    add("privateKeyId bad chars", b(c_privateKeyId="bad id!"), "credentials.privateKeyId")
    add("privateKeyId number", b(c_privateKeyId=7), "credentials.privateKeyId")
    add("subject not email", b(c_subject="admin"), "credentials.subject")
    add("subject with NUL", b(c_subject=ADMIN + "\u0000x"), "credentials.subject")
    add("callbackUrl with NUL", b(callbackUrl=cb + "\u0000"), "callbackUrl")
    add("application with NUL", b(applications=["login", "ad\u0000min"]), "applications[1]")
    add("subject array", b(c_subject=[]), "credentials.subject")
    add("scopes string", b(c_scopes="admin.googleapis.com"), "credentials.scopes")
    add("scopes empty", b(c_scopes=[]), "credentials.scopes")
    add("scopes directory", b(c_scopes=["https://www.googleapis.com/auth/admin.directory.user"]),
        "credentials.scopes[0]")
    add("scopes number", b(c_scopes=[1]), "credentials.scopes[0]")
    add("scopes second bad", b(c_scopes=["admin.googleapis.com", "other"]), "credentials.scopes[1]")
    add("serviceAccountKey and pair", b(c_serviceAccountKey=kf), "credentials.serviceAccountKey")
    add("serviceAccountKey not JSON", b(c_clientEmail=DEL, c_privateKey=DEL,
                                        c_serviceAccountKey="{not json"),
        "credentials.serviceAccountKey")
    add("serviceAccountKey number", b(c_clientEmail=DEL, c_privateKey=DEL, c_serviceAccountKey=42),
        "credentials.serviceAccountKey")
    add("serviceAccountKey type", b(c_clientEmail=DEL, c_privateKey=DEL,
                                    c_serviceAccountKey=kf_bad_type),
        "credentials.serviceAccountKey.type")
    add("serviceAccountKey extra", b(c_clientEmail=DEL, c_privateKey=DEL,
                                     c_serviceAccountKey=kf_extra),
        "credentials.serviceAccountKey.bogus")
    add("serviceAccountKey no key", b(c_clientEmail=DEL, c_privateKey=DEL,
                                      c_serviceAccountKey=kf_nopk),
        "credentials.serviceAccountKey.private_key")
    add("serviceAccountKey bad key", b(c_clientEmail=DEL, c_privateKey=DEL,
                                       c_serviceAccountKey=dict(k, private_key="x")),
        "credentials.serviceAccountKey.private_key")
    add("serviceAccountKey bad email", b(c_clientEmail=DEL, c_privateKey=DEL,
                                         c_serviceAccountKey=dict(k, client_email="nope")),
        "credentials.serviceAccountKey.client_email")
    add("key file bad subject", b(credentials=dict(k, subject="admin")), "credentials.subject")
    add("id not a uuid", b(id="not-a-uuid"), "id")
    add("id number", b(id=7), "id")
    add("id too short", b(id="3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a6"), "id")
    add("id not hex", b(id="3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a6g"), "id")
    add("initialLookback zero", b(initialLookback=0), "initialLookback")
    add("initialLookback over 180 days", b(initialLookback=180 * 86400 + 1), "initialLookback")
    add("initialLookback string", b(initialLookback="1d"), "initialLookback")
    add("initialLookback fraction", b(initialLookback=1.5), "initialLookback")
    add("key file bad type", b(credentials=dict(kf_bad_type, subject=ADMIN)), "credentials.type")
    add("key file extra", b(credentials=dict(kf_extra, subject=ADMIN)), "credentials.bogus")
    add("key file bad scopes", b(credentials=dict(k, subject=ADMIN, scopes=["x"])),
        "credentials.scopes[0]")
    add("applications string", b(applications="login"), "applications")
    add("applications empty", b(applications=[]), "applications")
    add("applications duplicate", b(applications=["login", "login"]), "applications[1]")
    add("applications unknown", b(applications=["nosuchapp"]), "applications[0]")
    add("applications number", b(applications=[1]), "applications[0]")
    add("applications upper case", b(applications=["LOGIN"]), "applications[0]")
    add("applications null", b(applications=[None]), "applications[0]")
    add("applications too many", b(applications=["login"] * 65), "applications")
    add("applications object", b(applications={"login": True}), "applications")
    add("interval string", b(logFetchInterval="300"), "logFetchInterval")
    add("interval float", b(logFetchInterval=300.5), "logFetchInterval")
    add("interval negative", b(logFetchInterval=-1), "logFetchInterval")
    add("interval zero", b(logFetchInterval=0), "logFetchInterval")
    add("interval too big", b(logFetchInterval=86401), "logFetchInterval")
    add("interval overflow", b(logFetchInterval=10 ** 25), "logFetchInterval")
    add("interval int64 max+1", b(logFetchInterval=2 ** 63), "logFetchInterval")
    add("interval bool", b(logFetchInterval=True), "logFetchInterval")
    add("interval null", b(logFetchInterval=None), "logFetchInterval")
    add("interval array", b(logFetchInterval=[300]), "logFetchInterval")
    add("callbackUrl missing", b(callbackUrl=DEL), "callbackUrl")
    add("callbackUrl ftp", b(callbackUrl="ftp://files.example.com/x"), "callbackUrl")
    add("callbackUrl javascript", b(callbackUrl="javascript:alert(1)"), "callbackUrl")
    add("callbackUrl user:pass", b(callbackUrl="http://user:pass@127.0.0.1/hook"), "callbackUrl")
    add("callbackUrl user", b(callbackUrl="http://user@127.0.0.1/hook"), "callbackUrl")
    add("callbackUrl no host", b(callbackUrl="http:///hook"), "callbackUrl")
    add("callbackUrl too long", b(callbackUrl="http://127.0.0.1/" + "a" * 2100), "callbackUrl")
    add("callbackUrl space", b(callbackUrl="http://exa mple.com/"), "callbackUrl")
    add("callbackUrl port 0", b(callbackUrl="http://127.0.0.1:0/"), "callbackUrl")
    add("callbackUrl empty port", b(callbackUrl="http://127.0.0.1:/hook"), "callbackUrl")
    add("callbackUrl scheme only", b(callbackUrl="http://"), "callbackUrl")
    add("callbackUrl port 99999", b(callbackUrl="http://127.0.0.1:99999/"), "callbackUrl")
    add("callbackUrl decimal IP", b(callbackUrl="http://2130706433/"), "callbackUrl")
    add("callbackUrl octal IP", b(callbackUrl="http://0177.0.0.1/"), "callbackUrl")
    add("callbackUrl hex IP", b(callbackUrl="http://0x7f000001/"), "callbackUrl")
    add("callbackUrl short IP", b(callbackUrl="http://127.1/"), "callbackUrl")
    add("callbackUrl mapped IPv6", b(callbackUrl="http://[::ffff:127.0.0.1]/"), "callbackUrl")
    add("callbackUrl broken IPv6", b(callbackUrl="http://[::1/"), "callbackUrl")
    add("callbackUrl fragment", b(callbackUrl="http://127.0.0.1/#frag"), "callbackUrl")
    add("callbackUrl number", b(callbackUrl=42), "callbackUrl")
    add("callbackUrl empty", b(callbackUrl=""), "callbackUrl")
    add("callbackUrl non-ASCII", b(callbackUrl="http://exampl\u00e9.com/"), "callbackUrl")
    add("callbackUrl underscore", b(callbackUrl="http://ex_ample.com/"), "callbackUrl")
    add("callbackUrl numeric TLD", b(callbackUrl="http://example.123/"), "callbackUrl")
    add("callbackUrl backslash", b(callbackUrl="http://127.0.0.1\\@evil.com/"), "callbackUrl")
    add("callbackUrl unresolvable", b(callbackUrl="http://no-such-host.invalid/hook"),
        "callbackUrl")

    def raw(name, data, status, field, ctype="application/json", method="POST", path=A):
        t.append((name, method, path, None, data, {"Content-Type": ctype} if ctype else {},
                  status, field))

    raw("body not JSON", b"{", 400, "body")
    raw("body array", b"[]", 400, "body")
    raw("body null", b"null", 400, "body")
    raw("body string", b'"str"', 400, "body")
    raw("body empty", b"", 400, "body")
    raw("body invalid UTF-8", b'{"sourceType":"\xff\xfe"}', 400, "body")
    raw("body overlong UTF-8", b'{"sourceType":"\xc0\xaf"}', 400, "body")
    raw("body surrogate", b'{"sourceType":"\xed\xa0\x80"}', 400, "body")
    raw("body depth 40", b'{"a":' * 40 + b"1" + b"}" * 40, 400, "body")
    raw("body trailing garbage", b"{} x", 400, "body")
    raw("duplicate key", b'{"sourceType":"google_workspace","sourceType":"google_workspace"}',
        400, "sourceType")
    raw("text/plain", json.dumps(b()).encode(), 415, "Content-Type", ctype="text/plain")
    raw("no content type", json.dumps(b()).encode(), 415, "Content-Type", ctype=None)
    raw("latin1 charset", json.dumps(b()).encode(), 415, "Content-Type",
        ctype="application/json; charset=latin1")
    raw("xml", b"<a/>", 415, "Content-Type", ctype="application/xml")
    raw("form", b"a=b", 415, "Content-Type", ctype="application/x-www-form-urlencoded")
    raw("body 1 MiB + 10", b" " * (1024 * 1024 + 10), 413, None)
    raw("body 5 MiB", b"{" * (5 * 1024 * 1024), 413, None)

    def m(name, method, path, status, field=None, body=None, headers=None):
        t.append((name, method, path, body, None, headers or {}, status, field))

    unknown = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"
    m("GET /add-source", "GET", A, 405)
    m("PUT /add-source", "PUT", A, 405)
    m("DELETE /sources", "DELETE", "/sources", 405)
    m("POST /sources", "POST", "/sources", 405)
    m("PUT /sources/:id", "PUT", "/sources/" + sid, 405)
    m("POST /sources/:id", "POST", "/sources/" + sid, 405)
    m("GET /sources/:id/credentials", "GET", "/sources/%s/credentials" % sid, 405)
    m("GET /remove-source/:id", "GET", "/remove-source/" + sid, 405)
    m("PATCH /remove-source/:id", "PATCH", "/remove-source/" + sid, 405)
    m("OPTIONS /sources", "OPTIONS", "/sources", 405)
    m("HEAD /sources", "HEAD", "/sources", 405)
    m("TRACE /sources", "TRACE", "/sources", 405)
    m("DELETE /metrics", "DELETE", "/metrics", 405)
    m("POST /openapi.json", "POST", "/openapi.json", 405)
    m("GET webhook-secret", "GET", "/sources/%s/webhook-secret" % sid, 405)
    m("GET replay", "GET", "/sources/%s/dead-letters/replay" % sid, 405)
    m("unknown path", "GET", "/v1/sources", 404)
    m("trailing slash", "GET", "/sources/", 404)
    m("double slash", "GET", "//sources", 404)
    m("non-uuid id", "GET", "/sources/abc", 404, "id")
    m("upper-case id", "GET", "/sources/" + sid.upper(), 404, "id")
    m("unknown id", "GET", "/sources/" + unknown, 404, "id")
    m("remove unknown", "DELETE", "/remove-source/" + unknown, 404, "id")
    m("remove non-uuid", "DELETE", "/remove-source/..%2f..%2fetc", 404, "id")
    m("query on add-source", "POST", A + "?x=1", 400, "query", body=b())
    tok = ar.token
    m("no Authorization", "GET", "/sources", 401, headers={"Authorization": ""})
    m("Basic scheme", "GET", "/sources", 401,
      headers={"Authorization": "Basic " + base64.b64encode(b"u:" + tok.encode()).decode()})
    m("token prefix", "GET", "/sources", 401, headers={"Authorization": "Bearer " + tok[:-1]})
    m("token longer", "GET", "/sources", 401, headers={"Authorization": "Bearer " + tok + "x"})
    m("token empty", "GET", "/sources", 401, headers={"Authorization": "Bearer "})
    m("scheme only", "GET", "/sources", 401, headers={"Authorization": "Bearer"})
    m("token without scheme", "GET", "/sources", 401, headers={"Authorization": tok})
    m("token in query", "GET", "/sources?access_token=" + tok, 401,
      headers={"Authorization": ""})
    m("token in cookie", "GET", "/sources", 401,
      headers={"Authorization": "", "Cookie": "token=" + tok})
    m("openapi needs token", "GET", "/openapi.json", 401, headers={"Authorization": ""})
    m("add needs token", "POST", A, 401, body=b(), headers={"Authorization": ""})
    P = "/sources/" + sid
    m("PATCH empty", "PATCH", P, 400, "body", body={})
    m("PATCH sourceType", "PATCH", P, 400, "sourceType", body={"sourceType": "x"})
    m("PATCH paused string", "PATCH", P, 400, "paused", body={"paused": "yes"})
    m("PATCH interval 0", "PATCH", P, 400, "logFetchInterval", body={"logFetchInterval": 0})
    m("PATCH interval float", "PATCH", P, 400, "logFetchInterval", body={"logFetchInterval": 1.5})
    m("PATCH apps unknown", "PATCH", P, 400, "applications[0]", body={"applications": ["bogus"]})
    m("PATCH callback ftp", "PATCH", P, 400, "callbackUrl", body={"callbackUrl": "ftp://x/"})
    m("PATCH credentials", "PATCH", P, 400, "credentials",
      body={"credentials": {"subject": ADMIN}})
    m("PATCH id", "PATCH", P, 400, "id", body={"id": unknown})
    m("PATCH unknown source", "PATCH", "/sources/" + unknown, 404, "id", body={"paused": True})
    m("PATCH lookback 0", "PATCH", P, 400, "initialLookback", body={"initialLookback": 0})
    m("PATCH lookback too far", "PATCH", P, 400, "initialLookback",
      body={"initialLookback": 15552001})
    m("PATCH lookback active", "PATCH", P, 409, "initialLookback",
      body={"initialLookback": 86400})
    C = "/sources/%s/credentials" % sid
    m("PUT creds empty", "PUT", C, 400, "clientEmail", body={})
    m("PUT creds bad email", "PUT", C, 400, "clientEmail",
      body={"clientEmail": "x", "privateKey": good_pem, "subject": ADMIN})
    m("PUT creds bad key", "PUT", C, 400, "privateKey",
      body={"clientEmail": k["client_email"], "privateKey": "x", "subject": ADMIN})
    m("PUT creds unknown field", "PUT", C, 400, "foo",
      body={"clientEmail": k["client_email"], "privateKey": good_pem, "subject": ADMIN, "foo": 1})
    m("PUT creds wrapped", "PUT", C, 400, "credentials",
      body={"credentials": {"clientEmail": k["client_email"]}})
    m("PUT creds unknown source", "PUT", "/sources/%s/credentials" % unknown, 404, "id",
      body={"clientEmail": k["client_email"], "privateKey": good_pem, "subject": ADMIN})
    W = "/sources/%s/webhook-secret" % sid
    m("rotate with field", "POST", W, 400, "x", body={"x": 1})
    m("rotate array body", "POST", W, 400, "body", body=[])
    m("rotate unknown source", "POST", "/sources/%s/webhook-secret" % unknown, 404, "id")
    D = "/sources/%s/dead-letters" % sid
    m("dead limit 0", "GET", D + "?limit=0", 400, "limit")
    m("dead limit abc", "GET", D + "?limit=abc", 400, "limit")
    m("dead limit huge", "GET", D + "?limit=100000", 400, "limit")
    m("dead unknown param", "GET", D + "?foo=1", 400, "query")
    m("dead unknown source", "GET", "/sources/%s/dead-letters" % unknown, 404, "id")
    m("replay ids string", "POST", D + "/replay", 400, "ids", body={"ids": "x"})
    m("replay ids empty", "POST", D + "/replay", 400, "ids", body={"ids": []})
    m("replay bad id", "POST", D + "/replay", 400, "ids[0]", body={"ids": ["nope"]})
    m("replay unknown field", "POST", D + "/replay", 400, "bogus", body={"bogus": 1})
    return t


class _Del:
    pass


DEL = _Del()


def test_bad_requests(wd):
    store = h.Store(wd)
    sim = setup_sim(wd)
    ar = h.Auditrelay(wd, store, sim).start()
    k = new_key(sim, "table")
    cb = "http://127.0.0.1:9/hook"
    st, src, _ = ar.api("POST", "/add-source", add_body(k, cb))
    assert st == 201, src
    sid = src["id"]
    db = store.db()
    snapshot = db["sources"].find_one({"_id": sid})
    apid_pid = ar.pids_by_name()["auditrelay-apid"]
    table = bad_table(ar, k, sid, cb)
    statuses = {}
    failures = []
    for (name, method, path, body, raw, headers, status, field) in table:
        hdrs = dict(headers)
        if hdrs.get("Authorization") == "":
            hdrs.pop("Authorization")
            tok = False
        else:
            tok = True
        if raw is not None:
            st, resp, rh = raw_http(ar.port, method, path,
                                    dict(hdrs, Authorization="Bearer " + ar.token), raw)
        else:
            st, resp, rh = ar.api(method, path, body, headers=hdrs, token=tok)
        statuses[st] = statuses.get(st, 0) + 1
        why = None
        if st != status:
            why = "status %s, wanted %s: %s" % (st, status, resp)
        elif method != "HEAD" and not (isinstance(resp, dict) and isinstance(resp.get("error"), dict)
                  and resp["error"].get("code") and resp["error"].get("message")):
            if not (status == 413 and name == "body 5 MiB"):
                why = "not a JSON error: %r" % (resp,)
        elif field is not None and method != "HEAD" and resp["error"].get("field") != field:
            why = "field %r, wanted %r (%s)" % (resp["error"].get("field"), field,
                                                resp["error"]["message"])
        elif status == 401 and rh.get("WWW-Authenticate") != "Bearer":
            why = "no WWW-Authenticate: Bearer"
        elif status == 405 and not rh.get("Allow"):
            why = "no Allow header"
        elif rh.get("Content-Type") != "application/json" and not (
                status == 413 and name == "body 5 MiB"):
            why = "Content-Type %s" % rh.get("Content-Type")
        if why:
            failures.append("%s: %s" % (name, why))
    # Transport abuse on raw sockets: answered 4xx (or closed), never a crash.
    port = ar.port
    raw_cases = [
        ("oversized header", b"GET /sources HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 +
         b"\r\n\r\n"),
        ("oversized URL", b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("garbage request line", b"HELLO\r\n\r\n"),
        ("unknown method", b"FOO /sources HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad version", b"GET /sources HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("negative content-length", b"POST /add-source HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: -5\r\n\r\n{}"),
        ("huge content-length", b"POST /add-source HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{}"),
        ("bad chunk", b"POST /add-source HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
         b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ]
    for name, data in raw_cases:
        st = raw_request(port, data)
        statuses[st] = statuses.get(st, 0) + 1
        # An unrecognized method is 501 by RFC 9110 section 15.6.2.
        if not (400 <= st < 500 or st == 0 or (name == "unknown method" and st == 501)):
            failures.append("%s: answered %s" % (name, st))
    # A client that goes away in the middle of a body.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /add-source HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"")
    s.close()
    total = len(table) + len(raw_cases)
    h.log("bad requests: %d, statuses: %s" % (total, dict(sorted(statuses.items()))))
    assert not failures, "\n".join(failures)
    assert total >= 100, total
    # Nothing stored, nothing changed, same daemon alive.
    assert db["sources"].count_documents({}) == 1
    assert db["sources"].find_one({"_id": sid}) == snapshot
    assert ar.pids_by_name()["auditrelay-apid"] == apid_pid
    assert ar.healthz()[0] == 200
    st, lst, _ = ar.api("GET", "/sources")
    assert st == 200 and len(lst["sources"]) == 1
    assert "libevent" not in ar.log().lower() or True


def _needles(text):
    """Distinctive substrings of a secret (a PEM: lines of its body)."""
    if "-----BEGIN" in text:
        body = [l for l in text.splitlines() if l and not l.startswith("-----")]
        return [l for l in body if len(l) >= 40][:20]
    return [text]


def test_canary_secrets(wd):
    store = h.Store(wd)
    sim = setup_sim(wd)
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim).start()
    k1 = new_key(sim, "canary1")
    k2 = new_key(sim, "canary2")
    responses = []

    def call(method, path, body=None, **kw):
        st, resp, hd = ar.api(method, path, body, **kw)
        responses.append((path, st, json.dumps(resp) if not isinstance(resp, str) else resp))
        return st, resp

    st, src = call("POST", "/add-source", add_body(k1, recv.url))
    assert st == 201
    sid = src["id"]
    secrets_seen = [src["webhookSecret"]]
    responses.pop()  # the one response allowed to show the new secret
    recv.set_secret(sid, src["webhookSecret"])
    call("PUT", "/sources/%s/credentials" % sid,
         {"serviceAccountKey": k2, "subject": ADMIN})
    st, r = call("POST", "/sources/%s/webhook-secret" % sid)
    assert st == 200
    secrets_seen.append(r["webhookSecret"])
    responses.pop()
    # Bad requests carrying the keys: errors must not echo them.
    call("POST", "/add-source", dict(add_body(k1, recv.url), logFetchInterval="x"))
    call("POST", "/add-source", dict(add_body(k1, recv.url), foo=1))
    bad = add_body(k1, recv.url)
    bad["credentials"]["privateKey"] = k1["private_key"][:300]
    call("POST", "/add-source", bad)
    call("GET", "/sources")
    call("GET", "/sources/" + sid)
    call("GET", "/metrics")
    call("GET", "/sources/%s/dead-letters" % sid)
    # Let fetcherd/deliverd work with the credentials for a while.
    time.sleep(3)
    call("GET", "/sources")
    with open(ar.keyfile) as f:
        master_b64 = f.read().strip()
    master_raw = base64.b64decode(master_b64)
    needles = {"api token": [ar.token], "master key (base64)": [master_b64],
               "master key (hex)": [master_raw.hex()]}
    for i, kk in enumerate((k1, k2)):
        needles["private key %d" % i] = _needles(kk["private_key"])
        # JSON-escaped form of the PEM too.
        needles["private key %d (json)" % i] = [json.dumps(kk["private_key"])[1:80]]
    for i, s in enumerate(secrets_seen):
        needles["webhook secret %d" % i] = [s, s[len("whsec_"):]]
    # Every collection, every document.
    db = store.db()
    dump = []
    for coll in db.list_collection_names():
        for doc in db[coll].find():
            dump.append("%s %r" % (coll, doc))
    dump = "\n".join(dump)
    log = ar.log()
    haystacks = {"store": dump, "log": log,
                 "responses": "\n".join("%s %s %s" % r for r in responses)}
    found = []
    for where, hay in haystacks.items():
        for what, ns in needles.items():
            for n in ns:
                if n and n in hay:
                    found.append("%s found in %s" % (what, where))
                    break
        for tokre in (r"ya29\.[A-Za-z0-9._-]{10,}", r"Bearer [A-Za-z0-9._-]{20,}"):
            if re.search(tokre, hay):
                found.append("access token %s in %s" % (tokre, where))
    assert not found, found
    assert "PRIVATE KEY" not in dump and "PRIVATE KEY" not in log
    h.log("canary: %d needles over %d bytes of store, %d bytes of log, %d responses: clean"
          % (sum(len(v) for v in needles.values()), len(dump), len(log), len(responses)))
    recv.stop()


def test_private_networks_refused(wd):
    store = h.Store(wd)
    sim = setup_sim(wd)
    ar = h.Auditrelay(wd, store, sim, name="strict", allow_private=False).start()
    k = new_key(sim, "strict")
    bad = ["http://127.0.0.1/hook", "http://127.0.0.2:8080/hook", "http://localhost/hook",
           "http://10.0.0.1/hook", "http://172.16.5.4/hook", "http://192.168.1.1/hook",
           "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/hook",
           "http://0.0.0.0/hook", "http://224.0.0.1/hook", "http://[::1]/hook",
           "http://[fe80::1]/hook", "http://[fd00:ec2::254]/hook",
           "http://[::ffff:127.0.0.1]/hook", "http://[::ffff:10.0.0.1]/hook",
           "http://2130706433/hook", "http://0177.0.0.1/hook", "http://0x7f.0.0.1/hook",
           "http://127.1/hook", "https://198.18.0.1/hook", "http://192.0.2.1/hook"]
    for url in bad:
        st, e, _ = ar.api("POST", "/add-source", add_body(k, url))
        assert st == 400, (url, st, e)
        assert e["error"]["field"] == "callbackUrl", (url, e)
    # A public literal passes validation and the Google check.
    st, src, _ = ar.api("POST", "/add-source", add_body(k, "https://8.8.8.8/hook"))
    assert st == 201, src
    st, e, _ = ar.api("PATCH", "/sources/" + src["id"], {"callbackUrl": "http://127.0.0.1/x"})
    assert st == 400 and e["error"]["field"] == "callbackUrl", e
    st, e, _ = ar.api("PATCH", "/sources/" + src["id"], {"callbackUrl": "http://localhost/x"})
    assert st == 400 and e["error"]["field"] == "callbackUrl", e
    assert count_sources(store) == 1
    assert store.db()["sources"].find_one()["callbackUrl"] == "https://8.8.8.8/hook"
    h.log("private networks disallowed: %d private callbacks refused" % len(bad))


def test_master_key_refused(wd):
    store = h.Store(wd)
    ar = h.Auditrelay(wd, store)
    os.chmod(ar.keyfile, 0o644)
    ar.start(wait=False)
    rc = ar.proc.wait(30)
    assert rc == 78, rc
    assert "master" in ar.log().lower() or "readable" in ar.log().lower(), ar.log()[-2000:]
    with open(ar.keyfile, "w") as f:
        f.write("c2hvcnQ=\n")
    os.chmod(ar.keyfile, 0o600)
    ar.start(wait=False)
    assert ar.proc.wait(30) == 78


def test_store_stall_api(wd):
    """The store stops answering (SIGSTOP of FerretDB: connections accept,
    nothing answers) for 20 s while API requests come in: apid's store work
    is on worker threads, so no daemon is restarted, /healthz answers within
    1 s throughout, every request answers (a JSON 503 once the store is
    known down, or its normal answer if the store came back in time) within
    the store's socket timeout, and all works again after SIGCONT."""
    if os.environ.get("AUDITRELAY_TEST_MONGODB_URI"):
        h.log("external store: cannot SIGSTOP it; skipped")
        return
    store = h.Store(wd)
    sim = setup_sim(wd)
    recv = h.Receiver()
    ar = h.Auditrelay(wd, store, sim).start()
    st, src, _ = ar.api("POST", "/add-source", add_body(new_key(sim, "stall1"), recv.url))
    assert st == 201, src
    sid = src["id"]
    k2 = new_key(sim, "stall2")
    st, _, _ = ar.api("GET", "/metrics")
    assert st == 200
    pids = ar.pids_by_name()
    assert len(pids) == 3, pids
    requests = [("GET", "/sources", None), ("GET", "/sources/" + sid, None),
                ("GET", "/metrics", None), ("POST", "/add-source", add_body(k2, recv.url))]
    results = []
    lock = threading.Lock()

    def one(wave, method, path, body, t_stop):
        t0 = time.monotonic()
        try:
            st, b, hd = ar.api(method, path, body)
        except Exception as e:  # noqa: BLE001 - a hang or a reset is the failure
            st, b, hd = None, repr(e), {}
        with lock:
            results.append({"wave": wave, "req": "%s %s" % (method, path.replace(sid, ":id")),
                            "sent": t0 - t_stop, "took": time.monotonic() - t0,
                            "status": st, "body": b,
                            "ctype": hd.get("Content-Type", "") if hd else "",
                            "retry": hd.get("Retry-After") if hd else None})

    def leaver():
        # A client that leaves while its request waits on the store.
        c = socket.create_connection(("127.0.0.1", ar.port), timeout=5)
        c.sendall(("GET /sources/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (sid, ar.token)).encode())
        time.sleep(1)
        c.close()

    os.kill(store.proc.pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    h.log("store stopped (SIGSTOP) for 20s")
    leavers = [threading.Thread(target=leaver, daemon=True) for _ in range(3)]
    for t in leavers:
        t.start()
    threads = []
    health = []
    waves = {0: 0.2, 1: 6.0, 2: 12.0}
    sent = set()
    try:
        while time.monotonic() - t_stop < 20:
            now = time.monotonic() - t_stop
            for w, at in waves.items():
                if w not in sent and now >= at:
                    sent.add(w)
                    for m, p, b in requests:
                        t = threading.Thread(target=one, args=(w, m, p, b, t_stop), daemon=True)
                        t.start()
                        threads.append(t)
                    if w == 0:
                        # A burst past the bound on requests waiting for
                        # the store (APID_WORK_MAX, 32): the rest are
                        # refused at once, 503 busy with Retry-After.
                        for _ in range(40):
                            t = threading.Thread(target=one, args=(
                                "burst", "GET", "/sources/" + sid, None, t_stop), daemon=True)
                            t.start()
                            threads.append(t)
            t0 = time.monotonic()
            st, body, _ = ar.healthz()
            took = time.monotonic() - t0
            health.append((now, st, took))
            assert st in (200, 503) and isinstance(body, dict) and \
                body.get("status") in ("ok", "degraded"), (st, body)
            assert took < 1.0, "healthz took %.2fs during the stall" % took
            time.sleep(0.25)
    finally:
        os.kill(store.proc.pid, signal.SIGCONT)
    h.log("store resumed")
    for t in threads:
        t.join(40)
    assert not any(t.is_alive() for t in threads), "a request hung past the store timeout"
    burst = [r for r in results if r["wave"] == "burst"]
    results = [r for r in results if r["wave"] != "burst"]
    assert len(results) == 3 * len(requests) and len(burst) == 40, results
    busy = [r for r in burst if r["status"] == 503 and isinstance(r["body"], dict)
            and r["body"]["error"]["code"] == "busy"]
    h.log("stall: burst of %d GET /sources/:id: %d busy (503, Retry-After, in %.2fs at most), "
          "the others %s, slowest %.2fs" % (
              len(burst), len(busy), max([r["took"] for r in busy] or [0]),
              sorted({str(r["status"]) for r in burst if r not in busy}),
              max(r["took"] for r in burst)))
    assert busy, "no request refused past the bound"
    for r in burst:
        assert r["status"] is not None and r["took"] < 25, r
        assert r["status"] in (200, 503), r
    for r in busy:
        assert r["retry"] and r["ctype"].startswith("application/json") and r["took"] < 2, r
    for r in sorted(results, key=lambda r: (r["wave"], r["req"])):
        err = r["body"]["error"]["code"] if r["status"] == 503 and isinstance(r["body"], dict) \
            else ""
        h.log("stall: wave %d %-16s sent at %4.1fs answered %s %s in %.2fs" % (
            r["wave"], r["req"], r["sent"], r["status"], err, r["took"]))
        assert r["status"] is not None, r
        # The store's socket timeout is 20 s; nothing waits much past it.
        assert r["took"] < 25, r
        if r["status"] == 503:
            assert r["ctype"].startswith("application/json"), r
            assert isinstance(r["body"], dict) and r["body"]["error"]["code"] in (
                "store_unavailable", "busy"), r
        else:
            assert r["status"] in (200, 201), r
        # Once the store is known down, the answer is immediate: 503, or
        # for /metrics the process's own samples with the store down.
        if r["wave"] > 0:
            assert r["took"] < 2, r
            if r["req"] == "GET /metrics":
                assert r["status"] == 200 and "auditrelay_store_up 0" in r["body"], r
            else:
                assert r["status"] == 503, r
    down = [x for x in health if x[1] == 503]
    h.log("stall: %d healthz during the stall, %d degraded (503), slowest %.3fs" % (
        len(health), len(down), max(x[2] for x in health)))
    assert down, "healthz never reported the store down"
    assert ar.pids_by_name() == pids, "a daemon was restarted during the stall"
    # Everything works again.
    ar.wait_healthy(30)

    def back():
        st, b, _ = ar.api("GET", "/sources/" + sid)
        return st == 200 and b["id"] == sid
    h.wait_for(back, 30, "GET /sources/:id again")
    st, b, _ = ar.api("GET", "/sources")
    assert st == 200 and sid in {x["id"] for x in b["sources"]}, b
    st, b, _ = ar.api("GET", "/metrics")
    assert st == 200 and "auditrelay_store_up 1" in b, b[:500]
    st, b, _ = ar.api("POST", "/add-source", add_body(new_key(sim, "stall3"), recv.url))
    assert st == 201, b
    assert ar.pids_by_name() == pids, "a daemon was restarted"


if __name__ == "__main__":
    h.run_tests([test_endpoints, test_google_refuses_or_unreachable, test_bad_requests,
                 test_canary_secrets, test_private_networks_refused, test_master_key_refused,
                 test_store_stall_api],
                "api")
