#!/usr/bin/env python3
"""A webhook receiver for the demo: verifies each POST's Standard Webhooks
signature with the secret in SECRET_FILE (re-read until it appears) and
prints one line per batch and a few of its logs.

usage: demo_receiver.py PORT SECRET_FILE
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import time

PORT, SECRET_FILE = int(sys.argv[1]), sys.argv[2]
seen_ids = set()
batches = logs = dups = 0


def secret():
    try:
        with open(SECRET_FILE) as f:
            return f.read().strip()
    except OSError:
        return None


def verify(sec, mid, ts, body, header):
    key = base64.b64decode(sec.split("_", 1)[1])
    mac = hmac.new(key, ("%s.%s." % (mid, ts)).encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(want, s) for s in header.split())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        global batches, logs, dups
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sec = secret()
        ok = sec is not None and verify(sec, self.headers.get("webhook-id", ""),
                                        self.headers.get("webhook-timestamp", ""), body,
                                        self.headers.get("webhook-signature", ""))
        doc = json.loads(body)
        stamp = time.strftime("%H:%M:%S")
        if doc.get("type") == "logs":
            batches += 1
            new = [l for l in doc["logs"] if l["id"] not in seen_ids]
            dups += len(doc["logs"]) - len(new)
            seen_ids.update(l["id"] for l in doc["logs"])
            logs += len(new)
            print("%s receiver: batch %s webhook-id=%s signature=%s logs=%d (total %d, repeats %d)"
                  % (stamp, doc["batchId"][:8], self.headers.get("webhook-id"),
                     "valid" if ok else "INVALID", len(doc["logs"]), logs, dups), flush=True)
            for l in doc["logs"][:2]:
                print("    %s %-6s %-28s %s %s" % (l["timestamp"], l["application"], l["eventName"],
                                                   l["actor"].get("email"), l["actor"].get("ipAddress")),
                      flush=True)
        else:
            print("%s receiver: %s %s signature=%s" % (stamp, doc.get("type"), json.dumps(doc)[:200],
                                                      "valid" if ok else "INVALID"), flush=True)
        out = b'{"ok":true}' if ok else b'{"error":"bad signature"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
