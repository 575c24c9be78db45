#!/usr/bin/env python3
"""System test of auditrelay-google-sim.

Starts the simulator on an ephemeral 127.0.0.1 port and drives it over real
sockets: tokens (a JWT signed independently with the openssl CLI, and every
refusal), paging against the ground truth, ingestion lag, every fault kind,
the per-client quota, and the field names of every activity checked against
the discovery document's Activity schema. Python stdlib only.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

SRC = os.environ.get("AR_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(os.environ.get("AR_BIN_DIR", os.path.join(SRC, "build",
                                                             "bin")),
                   "auditrelay-google-sim")
# The parts of Google's discovery document the checks need, kept in the
# project (tests/data/google/README.md says where they come from).
DISCOVERY = os.path.join(SRC, "tests", "data", "google", "reports_v1.schema.json")
SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CID = "C01sim"
ADMIN = "admin@sim.example.com"
API = "/admin/reports/v1/activity/users/all/applications/"

PASSED = 0
FAILED = []
PORT = None
TMP = None


def check(cond, what):
    global PASSED
    if cond:
        PASSED += 1
    else:
        FAILED.append(what)
        print("FAIL:", what, flush=True)


def req(method, path, body=None, headers=None, timeout=20):
    """One request on a fresh connection: (status, headers, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    h = {"Connection": "close"}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def jreq(method, path, body=None, headers=None):
    st, h, b = req(method, path, body, headers)
    return st, h, json.loads(b) if b else None


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign_jwt(pem, claims, kid=None):
    """RS256 with the openssl CLI: independent of the project's crypto."""
    hdr = {"alg": "RS256", "typ": "JWT"}
    if kid:
        hdr["kid"] = kid
    si = b64u(json.dumps(hdr).encode()) + "." + \
        b64u(json.dumps(claims).encode())
    kf = os.path.join(TMP, "key.pem")
    with open(kf, "w") as f:
        f.write(pem)
    os.chmod(kf, 0o600)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", kf],
                         input=si.encode(), capture_output=True, check=True,
                         timeout=30).stdout
    os.unlink(kf)
    return si + "." + b64u(sig)


def claims(sa, **kw):
    now = int(time.time())
    c = {"iss": sa["client_email"], "sub": ADMIN, "scope": SCOPE,
         "aud": "http://127.0.0.1:%d/token" % PORT, "iat": now,
         "exp": now + 3600}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def token_req(assertion, grant=GRANT):
    body = urllib.parse.urlencode({"grant_type": grant,
                                   "assertion": assertion})
    return jreq("POST", "/token", body,
                {"Content-Type": "application/x-www-form-urlencoded"})


def get_token(sa, **kw):
    st, _, b = token_req(sign_jwt(sa["private_key"], claims(sa, **kw),
                                  sa["private_key_id"]))
    assert st == 200, (st, b)
    return b["access_token"]


def api(tok, app="login", **params):
    path = API + app
    if params:
        path += "?" + urllib.parse.urlencode(params)
    h = {"Authorization": "Bearer " + tok} if tok else {}
    return req("GET", path, None, h)


def api_json(tok, app="login", **params):
    st, h, b = api(tok, app, **params)
    return st, h, json.loads(b)


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % int((t % 1) * 1000)


# --- schema -----------------------------------------------------------------

def load_schema():
    with open(DISCOVERY) as f:
        d = json.load(f)
    s = d["schemas"]
    act = s["Activity"]["properties"]
    ev = act["events"]["items"]["properties"]
    par = ev["parameters"]["items"]["properties"]
    return {
        "page": set(s["Activities"]["properties"]),
        "activity": set(act),
        "id": set(act["id"]["properties"]),
        "actor": set(act["actor"]["properties"]),
        "event": set(ev),
        "param": set(par),
        "nested": set(s["NestedParameter"]["properties"]),
        "apps": set(d["resources"]["activities"]["methods"]["list"]
                    ["parameters"]["applicationName"]["enum"]),
    }


def check_shape(schema, page, app):
    """Every field name of a page against the discovery document."""
    ok = set(page) <= schema["page"]
    ok = ok and page.get("kind") == "admin#reports#activities"
    ok = ok and page["etag"].startswith('"') and page["etag"].endswith('"')
    for a in page.get("items", []):
        ok = ok and set(a) <= schema["activity"]
        ok = ok and a["kind"] == "admin#reports#activity"
        ok = ok and set(a["id"]) == schema["id"]
        ok = ok and a["id"]["applicationName"] == app
        ok = ok and isinstance(a["id"]["uniqueQualifier"], str)
        int(a["id"]["uniqueQualifier"])
        ok = ok and len(a["id"]["time"]) == 24 and a["id"]["time"][-1] == "Z"
        ok = ok and set(a["actor"]) <= schema["actor"]
        ok = ok and isinstance(a["actor"].get("profileId", ""), str)
        ok = ok and len(a["events"]) >= 1
        for e in a["events"]:
            ok = ok and set(e) <= schema["event"] and "name" in e
            for p in e.get("parameters", []):
                ok = ok and set(p) <= schema["param"] and "name" in p
                if "intValue" in p:
                    ok = ok and isinstance(p["intValue"], str)
                    int(p["intValue"])
                if "multiIntValue" in p:
                    ok = ok and all(isinstance(x, str)
                                    for x in p["multiIntValue"])
                for m in [p.get("messageValue")] + \
                        p.get("multiMessageValue", []):
                    if m is None:
                        continue
                    ok = ok and set(m) == {"parameter"}
                    for n in m["parameter"]:
                        ok = ok and set(n) <= schema["nested"]
        if not ok:
            print("bad activity:", json.dumps(a)[:400])
            return False
    return ok


def list_all(tok, app, maxr, start, end, limit=1000):
    """Page through; returns (items, pages, max page length)."""
    items, pages, biggest, ptok = [], 0, 0, None
    for _ in range(limit):
        p = {"maxResults": maxr, "startTime": start, "endTime": end}
        if ptok:
            p["pageToken"] = ptok
        st, _, b = api_json(tok, app, **p)
        assert st == 200, (st, b)
        pages += 1
        biggest = max(biggest, len(b.get("items", [])))
        items += b.get("items", [])
        ptok = b.get("nextPageToken")
        if not ptok:
            break
    return items, pages, biggest


def keys_of(items):
    out = []
    for a in items:
        for i, e in enumerate(a["events"]):
            out.append((a["id"]["customerId"], a["id"]["applicationName"],
                        a["id"]["time"], a["id"]["uniqueQualifier"], i,
                        e["name"]))
    return out


# --- tests -------------------------------------------------------------------

def test_help():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    for w in ["--listen", "--seed", "--time-scale", "--rate", "--no-lag",
              "--token-ttl", "--quota-per-minute", "--token-url",
              "/_sim/tenants", "/_sim/faults", "/_sim/events", "/_sim/stats",
              "/inject", "truncated_json", "no_delegation"]:
        check(w in out, "--help mentions " + w)
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True,
                       timeout=10)
    check(r.returncode == 0 and "auditrelay-google-sim" in r.stdout,
          "--version")


def setup_tenant():
    st, _, _ = jreq("POST", "/_sim/tenants",
                    {"customerId": CID, "domain": "sim.example.com"})
    check(st == 201, "tenant created")
    st, _, _ = jreq("POST", "/_sim/tenants",
                    {"customerId": CID, "domain": "sim.example.com"})
    check(st == 409, "duplicate tenant refused")
    check(jreq("POST", "/_sim/tenants/%s/admins" % CID,
               {"email": ADMIN})[0] == 200, "admin created")
    check(jreq("POST", "/_sim/tenants/%s/admins" % CID,
               {"email": "helpdesk@sim.example.com",
                "privileged": False})[0] == 200, "helpdesk created")
    st, _, sa = jreq("POST", "/_sim/tenants/%s/service-accounts" % CID,
                     {"name": "relay", "projectId": "sim-proj"})
    check(st == 201, "service account created")
    for k in ["type", "project_id", "private_key_id", "private_key",
              "client_email", "client_id", "auth_uri", "token_uri",
              "auth_provider_x509_cert_url", "client_x509_cert_url"]:
        check(k in sa, "key file has " + k)
    check(sa["type"] == "service_account", "key file type")
    check(sa["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n"),
          "PKCS#8 PEM")
    check(sa["client_email"] == "relay@sim-proj.iam.gserviceaccount.com",
          "client_email shape")
    check(len(sa["private_key_id"]) == 40, "private_key_id is 40 hex")
    st, _, other = jreq("POST", "/_sim/tenants/%s/service-accounts" % CID,
                        {"name": "other", "projectId": "sim-proj"})
    check(st == 201, "second service account")
    return sa, other


def test_tokens(sa, other):
    tok = get_token(sa)
    check(tok.startswith("ya29."), "access token looks like Google's")
    st, h, b = token_req(sign_jwt(sa["private_key"], claims(sa)))
    check(st == 200 and b["expires_in"] == 3599 and
          b["token_type"] == "Bearer" and set(b) ==
          {"access_token", "expires_in", "token_type"},
          "token body is Google's (no kid also fine)")
    # Google's own audience is accepted too.
    st, _, _ = token_req(sign_jwt(sa["private_key"], claims(
        sa, aud="https://oauth2.googleapis.com/token")))
    check(st == 200, "aud https://oauth2.googleapis.com/token accepted")

    def refused(c, pem, status, err, desc, what, kid=None, grant=GRANT):
        st, _, b = token_req(sign_jwt(pem, c, kid), grant)
        ok = st == status and b.get("error") == err and \
            (desc is None or b.get("error_description") == desc)
        check(ok, "token refusal: %s (got %s %s)" % (what, st, b))

    sig = "Invalid JWT Signature."
    refused(claims(sa), other["private_key"], 400, "invalid_grant", sig,
            "signed with another key")
    refused(claims(sa, iss="ghost@x.iam.gserviceaccount.com"),
            sa["private_key"], 401, "invalid_client",
            "The OAuth client was not found.", "unknown client")
    short = ("Invalid JWT: Token must be a short-lived token (60 minutes) "
             "and in a reasonable timeframe. Check your iat and exp values "
             "in the JWT claim.")
    now = int(time.time())
    refused(claims(sa, exp=now + 7200), sa["private_key"], 400,
            "invalid_grant", short, "exp - iat > 1 h")
    refused(claims(sa, iat=now - 7200, exp=now - 3700), sa["private_key"],
            400, "invalid_grant", short, "expired assertion")
    refused(claims(sa, iat=now + 1000, exp=now + 2000), sa["private_key"],
            400, "invalid_grant", short, "iat in the future")
    refused(claims(sa, aud="https://evil.example/token"), sa["private_key"],
            400, "invalid_grant", None, "wrong audience")
    refused(claims(sa, scope=None), sa["private_key"], 400, "invalid_scope",
            None, "missing scope")
    refused(claims(sa, scope="admin.googleapis.com"), sa["private_key"], 400,
            "invalid_scope", None, "malformed scope")
    refused(claims(sa, sub="nobody@sim.example.com"), sa["private_key"],
            400, "invalid_grant", "Invalid email or User ID", "unknown sub")
    unauth = ("Client is unauthorized to retrieve access tokens using this "
              "method, or client not authorized for any of the scopes "
              "requested.")
    refused(claims(sa, scope=SCOPE + " https://www.googleapis.com/auth/"
                   "admin.directory.user"), sa["private_key"], 400,
            "unauthorized_client", unauth, "scope not delegated")
    refused(claims(sa), sa["private_key"], 400, "unsupported_grant_type",
            None, "wrong grant_type", grant="client_credentials")
    st, _, b = token_req("not.a.jwt")
    check(st == 400 and b["error"] == "invalid_grant", "garbage assertion")

    sapath = "/_sim/tenants/%s/service-accounts/%s" % (CID,
                                                       sa["client_email"])
    jreq("POST", sapath, {"delegation": False})
    refused(claims(sa), sa["private_key"], 400, "unauthorized_client",
            unauth, "delegation removed")
    jreq("POST", sapath, {"delegation": True})
    jreq("POST", sapath, {"revokeKeys": True})
    refused(claims(sa), sa["private_key"], 400, "invalid_grant", sig,
            "key deleted")
    jreq("POST", sapath, {"restoreKeys": True})
    check(token_req(sign_jwt(sa["private_key"], claims(sa)))[0] == 200,
          "key restored")
    # The same through faults (count 1), then back to normal.
    for kind, err in [("revoked_key", "invalid_grant"),
                      ("no_delegation", "unauthorized_client")]:
        jreq("POST", "/_sim/faults", {"tenant": CID, "kind": kind,
                                      "count": 1})
        st, _, b = token_req(sign_jwt(sa["private_key"], claims(sa)))
        check(st == 400 and b["error"] == err, "fault " + kind)
        st, _, b = token_req(sign_jwt(sa["private_key"], claims(sa)))
        check(st == 200, "fault %s used up after count=1" % kind)
    jreq("DELETE", "/_sim/faults")


def test_auth(sa):
    tok = get_token(sa)
    st, h, b = api_json(None)
    check(st == 401 and b["error"]["errors"][0]["reason"] == "required" and
          b["error"]["status"] == "UNAUTHENTICATED", "no Authorization: 401")
    st, h, b = api_json("ya29.bogus")
    e = b["error"]
    check(st == 401 and e["code"] == 401 and
          e["errors"][0] == {"message": "Invalid Credentials",
                             "domain": "global", "reason": "authError",
                             "location": "Authorization",
                             "locationType": "header"} and
          e["message"].startswith("Request had invalid authentication "
                                  "credentials.") and
          "WWW-Authenticate" in h, "bad token: Google's 401")
    st, _, b = api_json(tok)
    check(st == 200, "good token: 200")
    helpdesk = get_token(sa, sub="helpdesk@sim.example.com")
    st, _, b = api_json(helpdesk)
    check(st == 403 and b["error"]["errors"][0]["reason"] ==
          "insufficientPermissions", "unprivileged admin: 403")
    st, _, b = jreq("POST", "/_sim/tokens/revoke", {"tenant": CID})
    check(st == 200 and b["revoked"] >= 2, "tokens revoked")
    check(api(tok)[0] == 401, "revoked token: 401")
    jreq("POST", "/_sim/settings", {"tokenTtlSeconds": 1})
    short = get_token(sa)
    check(api(short)[0] == 200, "fresh short token works")
    time.sleep(1.3)
    check(api(short)[0] == 401, "expired token: 401")
    jreq("POST", "/_sim/settings", {"tokenTtlSeconds": 3599})


def test_params(tok):
    def bad(what, status, reason, **p):
        app = p.pop("app", "login")
        st, _, b = api_json(tok, app, **p)
        check(st == status and b["error"]["code"] == status and
              b["error"]["errors"][0]["reason"] == reason,
              "param: %s (got %s %s)" % (what, st, str(b)[:200]))

    bad("unknown application", 400, "invalidParameter", app="nosuchapp")
    bad("maxResults 0", 400, "invalidParameter", maxResults=0)
    bad("maxResults 1001", 400, "invalidParameter", maxResults=1001)
    bad("startTime not RFC 3339", 400, "invalidParameter",
        startTime="yesterday")
    bad("endTime not RFC 3339", 400, "invalidParameter",
        endTime="2026-01-01 00:00:00")
    st, _, b = api_json(tok, startTime=rfc3339(time.time() - 200 * 86400))
    check(st == 400 and b["error"]["message"] ==
          "Invalid request: Start time is after end time.",
          "start beyond 180 days: Google's misleading 400")
    bad("unparsable pageToken", 400, "invalid", pageToken="garbage")
    bad("other customerId", 403, "forbidden", customerId="C0other")
    check(api(tok, customerId=CID)[0] == 200 and
          api(tok, customerId="my_customer")[0] == 200, "customerId ok")
    for app in ["admin", "drive", "token", "calendar", "workspace_studio"]:
        check(api(tok, app)[0] == 200, "application %s accepted" % app)


def test_inject_and_lag(tok, schema):
    t0 = time.time() - 30
    acts = [
        {"id": {"time": rfc3339(t0), "uniqueQualifier":
                "-2132132132132132132"},
         "actor": {"callerType": "USER", "email": "x@sim.example.com",
                   "profileId": "345345345345345345345"},
         "ipAddress": "192.0.2.2",
         "events": [{"type": "GROUP_SETTINGS", "name": "ADD_GROUP_MEMBER",
                     "parameters": [{"name": "USER_EMAIL",
                                     "value": "a@sim.example.com"}]},
                    {"type": "GROUP_SETTINGS", "name": "REMOVE_GROUP_MEMBER",
                     "parameters": [{"name": "USER_EMAIL",
                                     "value": "b@sim.example.com"}]}]},
        {"id": {"time": rfc3339(t0 + 1), "uniqueQualifier": "42"},
         "actor": {"email": "y@sim.example.com"}, "ipAddress": "192.0.2.3",
         "events": [{"type": "USER_SETTINGS", "name": "CHANGE_PASSWORD",
                     "parameters": [{"name": "COUNT", "intValue": "670"}]}]},
    ]
    st, _, b = jreq("POST", "/_sim/tenants/%s/inject" % CID,
                    {"application": "admin", "activities": acts})
    check(st == 200 and b["injected"] == 2, "inject 2 activities")
    # Visible only after 3600 sim seconds = 1 s at --time-scale 3600.
    late = [{"id": {"time": rfc3339(t0 + 2), "uniqueQualifier": "43"},
             "actor": {"email": "z@sim.example.com"},
             "events": [{"type": "USER_SETTINGS", "name": "CREATE_USER"}]}]
    jreq("POST", "/_sim/tenants/%s/inject" % CID,
         {"application": "admin", "activities": late,
          "visibleAfterSeconds": 3600})
    win = {"startTime": rfc3339(t0 - 1), "endTime": rfc3339(t0 + 10)}
    st, _, b = api_json(tok, "admin", **win)
    check(st == 200 and check_shape(schema, b, "admin"),
          "injected page shape")
    got = [a["id"]["uniqueQualifier"] for a in b.get("items", [])]
    check(got == ["42", "-2132132132132132132"],
          "injected newest first, late one hidden: %s" % got)
    check(b["items"][1]["events"][1]["name"] == "REMOVE_GROUP_MEMBER",
          "two events kept")
    st, _, b = api_json(tok, "admin", eventName="CHANGE_PASSWORD", **win)
    check([a["id"]["uniqueQualifier"] for a in b.get("items", [])] == ["42"],
          "eventName filter")
    st, _, b = api_json(tok, "admin", actorIpAddress="192.0.2.2", **win)
    check(len(b.get("items", [])) == 1, "actorIpAddress filter")
    st, _, b = req("GET", API.replace("/all/", "/y%40sim.example.com/") +
                   "admin?" + urllib.parse.urlencode(win), None,
                   {"Authorization": "Bearer " + tok})
    check(len(json.loads(b).get("items", [])) == 1, "userKey filter")
    truth = jreq("GET", "/_sim/events?tenant=%s&application=admin" % CID)[2]
    hidden = [e for e in truth["events"] if e["uniqueQualifier"] == "43"]
    check(len(hidden) == 1 and hidden[0]["visible"] is False,
          "ground truth shows the late event as not visible yet")
    for _ in range(40):
        time.sleep(0.1)
        b = api_json(tok, "admin", **win)[2]
        if len(b.get("items", [])) == 3:
            break
    check([a["id"]["uniqueQualifier"] for a in b.get("items", [])][0] ==
          "43", "late event appears later in an already-read window")
    st, _, b = api_json(tok, "admin", startTime=rfc3339(t0 + 100))
    check(st == 200 and "items" not in b and "nextPageToken" not in b,
          "empty page omits items and nextPageToken")


def test_generator_paging(tok, schema):
    jreq("POST", "/_sim/tenants/%s/applications/login" % CID,
         {"rate": 1500, "lag": {"minSeconds": 1, "meanSeconds": 60,
                                "tailProbability": 0.05,
                                "tailMaxSeconds": 1800}})
    # Every lag bounded (the default ones have tails of hours, seconds
    # here): all is visible after the pause below.
    short = {"minSeconds": 0, "meanSeconds": 60, "tailProbability": 0.05,
             "tailMaxSeconds": 1800}
    jreq("POST", "/_sim/tenants/%s/applications/token" % CID,
         {"rate": 200, "lag": short})
    jreq("POST", "/_sim/tenants/%s/applications/calendar" % CID,
         {"rate": 200, "lag": short})
    start = time.time()
    time.sleep(2.0)
    jreq("POST", "/_sim/tenants/%s/pause" % CID)
    time.sleep(0.8)    # > the longest lag (1800 s / 3600)
    end = time.time() + 1
    s, e = rfc3339(start - 5), rfc3339(end)
    for app in ["login", "token", "calendar"]:
        items, pages, biggest = list_all(tok, app, 250, s, e)
        truth = jreq("GET", "/_sim/events?tenant=%s&application=%s" %
                     (CID, app))[2]["events"]
        want = [(x["customerId"], x["applicationName"], x["time"],
                 x["uniqueQualifier"], x["eventIndex"], x["eventName"])
                for x in truth if s <= x["time"] < e]
        got = keys_of(items)
        check(len(got) == len(set(got)), "%s: no duplicates" % app)
        check(sorted(got) == sorted(want) and len(want) > 100,
              "%s: paging returns exactly the ground truth (%d events, "
              "%d pages)" % (app, len(want), pages))
        check(biggest <= 250, "%s: pages within maxResults" % app)
        times = [(a["id"]["time"], int(a["id"]["uniqueQualifier"]))
                 for a in items]
        check(times == sorted(times, reverse=True), "%s: newest first" % app)
        pg = api_json(tok, app, maxResults=50, startTime=s, endTime=e)[2]
        check(check_shape(schema, pg, app), "%s: field names match the "
              "discovery document" % app)
        multi = sum(1 for a in items if len(a["events"]) > 1)
        check(app == "token" or multi > 0, "%s: multi-event activities" %
              app)
    # A page token is bound to its query.
    pg = api_json(tok, "login", maxResults=10, startTime=s, endTime=e)[2]
    st, _, _ = api(tok, "login", maxResults=10, startTime=s,
                   pageToken=pg["nextPageToken"])
    check(st == 400, "page token of another query refused")
    # Determinism: the same seed gives the same kinds of events.
    jreq("POST", "/_sim/tenants/%s/resume" % CID)
    for app in ["login", "token", "calendar"]:
        jreq("POST", "/_sim/tenants/%s/applications/%s" % (CID, app),
             {"rate": 0})
    return s, e


def test_faults(tok):
    def fault(**f):
        f.setdefault("tenant", CID)
        f.setdefault("application", "login")
        st, _, b = jreq("POST", "/_sim/faults", f)
        assert st == 201, (st, b)
        return b["id"]

    def clear():
        jreq("DELETE", "/_sim/faults")

    cases = [("rate_limit", 403, "rateLimitExceeded", "usageLimits", None),
             ("user_rate_limit", 403, "userRateLimitExceeded", "usageLimits",
              None),
             ("429", 429, "rateLimitExceeded", "global",
              "RESOURCE_EXHAUSTED"),
             ("503", 503, "backendError", "global", "UNAVAILABLE"),
             ("500", 500, "backendError", "global", "INTERNAL")]
    for kind, status, reason, domain, gstatus in cases:
        for ra in [None, 7]:
            f = {"kind": kind, "count": 1}
            if ra:
                f["retryAfter"] = ra
            fault(**f)
            st, h, b = api(tok)
            e = json.loads(b)["error"]
            ok = st == status and e["code"] == status and \
                e["errors"][0]["reason"] == reason and \
                e["errors"][0]["domain"] == domain and \
                (gstatus is None or e["status"] == gstatus)
            ok = ok and (h.get("Retry-After") == str(ra) if ra else
                         "Retry-After" not in h)
            check(ok, "fault %s retryAfter=%s (got %s %s)" %
                  (kind, ra, st, b[:200]))
            check(api(tok)[0] == 200, "fault %s count=1 used up" % kind)
    fault(kind="503", application="drive", count=1)
    check(api(tok, "login")[0] == 200, "fault scoped to its application")
    check(api(tok, "drive")[0] == 503, "fault hits its application")
    fault(kind="500", probability=0.0)
    check(all(api(tok)[0] == 200 for _ in range(5)), "probability 0")
    clear()
    fault(kind="500", probability=0.5)
    codes = [api(tok)[0] for _ in range(40)]
    check(5 < codes.count(500) < 35, "probability 0.5 fires about half: %d"
          % codes.count(500))
    clear()
    fault(kind="429", durationSeconds=0.5)
    check(api(tok)[0] == 429, "window fault active")
    time.sleep(0.7)
    check(api(tok)[0] == 200, "window fault over")
    clear()
    fault(kind="slow", delayMs=600, count=1)
    t = time.time()
    st = api(tok)[0]
    check(st == 200 and time.time() - t >= 0.55, "slow response delayed")
    fault(kind="reset", count=1)
    try:
        api(tok)
        check(False, "reset: connection should fail")
    except (ConnectionError, http.client.HTTPException, OSError):
        check(True, "reset")
    check(api(tok)[0] == 200, "after reset: served again")
    fault(kind="bad_json", count=1)
    st, _, b = api(tok)
    try:
        json.loads(b)
        check(False, "bad_json should not parse")
    except ValueError:
        check(st == 200, "bad_json: 200 with invalid JSON")
    fault(kind="truncated_json", count=1)
    st, _, b = api(tok, maxResults=20)
    try:
        json.loads(b)
        check(False, "truncated_json should not parse")
    except ValueError:
        check(st == 200 and b.startswith(b'{"kind":"admin#reports#'),
              "truncated_json: 200 with a cut page")
    p1 = api_json(tok, maxResults=5)[2]
    fault(kind="repeat_token", count=1)
    p2 = api_json(tok, maxResults=5, pageToken=p1["nextPageToken"])[2]
    check(p2["nextPageToken"] == p1["nextPageToken"],
          "repeat_token: the same token comes back")
    st, _, b = jreq("GET", "/_sim/faults")
    check(st == 200 and b["faults"][0]["fired"] == 1, "faults listed")
    clear()
    check(jreq("GET", "/_sim/faults")[2]["faults"] == [], "faults cleared")
    # Per-client quota like Google's.
    jreq("POST", "/_sim/settings", {"quotaPerMinute": 3})
    codes = [api(tok)[0] for _ in range(5)]
    st, h, b = api(tok)
    e = json.loads(b)["error"]
    check(codes[:3].count(200) >= 1 and st == 403 and
          e["errors"][0]["reason"] == "rateLimitExceeded" and
          "Quota exceeded" in e["message"] and "Retry-After" in h,
          "per-client quota: 403 rateLimitExceeded")
    jreq("POST", "/_sim/settings", {"quotaPerMinute": 0})
    check(api(tok)[0] == 200, "quota off again")


def test_stats():
    st, _, b = jreq("GET", "/_sim/stats")
    check(st == 200 and b["eventsServed"] > 0 and
          b["requests"]["activities"].get("200", 0) > 0 and
          b["requests"]["token"].get("200", 0) > 0 and
          b["requests"]["activities"].get("reset", 0) >= 1,
          "stats count requests by endpoint and status")
    st, _, b = jreq("GET", "/_sim/events?visible=0")
    check(st == 200 and "events" in b and "count" in b, "events ?visible=0")
    st, _, b = jreq("GET", "/_sim/tenants/%s" % CID)
    check(st == 200 and b["customerId"] == CID, "tenant detail")
    check(jreq("GET", "/_sim/nope")[0] == 404, "unknown control path 404")
    check(jreq("POST", "/_sim/tenants", b"{not json")[0] == 400,
          "control rejects bad JSON")


def main():
    global PORT, TMP
    if shutil.which("openssl") is None:
        print("openssl CLI missing: cannot sign JWTs independently")
        return 1
    schema = load_schema()
    TMP = tempfile.mkdtemp(prefix="gsim-")
    test_help()
    proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--seed", "7",
                             "--time-scale", "3600"],
                            stdout=subprocess.PIPE,
                            stderr=open(os.path.join(TMP, "sim.log"), "w"),
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        PORT = int(line.rsplit(":", 1)[1])
        sa, other = setup_tenant()
        test_tokens(sa, other)
        test_auth(sa)
        tok = get_token(sa)
        test_params(tok)
        test_inject_and_lag(tok, schema)
        test_generator_paging(tok, schema)
        test_faults(tok)
        test_stats()
    except Exception as e:  # report, then stop the simulator
        import traceback
        traceback.print_exc()
        FAILED.append("exception: %r" % e)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(timeout=10)
        check(rc == 0, "simulator exits 0 on SIGTERM")
        log = open(os.path.join(TMP, "sim.log")).read()
        check("PRIVATE KEY" not in log and "ya29." not in log,
              "no key or token in the simulator's log")
        if FAILED:
            print(log[-3000:])
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d checks passed, %d failed" % (PASSED, len(FAILED)))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
