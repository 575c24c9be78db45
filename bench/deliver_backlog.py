#!/usr/bin/python3
"""Benchmark: time from "receiver back" to "backlog drained".

A source's callback answers 503 while 50 000 pending logs are stored (the
circuit breaker opens, the queue is held); then the receiver comes back and
we measure how long deliverd takes to get every log accepted (signature
verified) by the receiver and marked delivered in the store.

Usage: AR_BIN_DIR=build/bin /usr/bin/python3 bench/deliver_backlog.py [N]
Prints one line: "backlog drained: N logs in S s (R logs/s) ...".
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/system"))
import harness as h  # noqa: E402
import test_deliver as td  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    wd = h.Workdir("bench-deliver")
    ok = False
    try:
        # The default retry schedule's first step is 5 s; with the receiver
        # down for a while the next probe could be minutes away, which
        # measures the schedule, not deliverd. A 1 s step measures the drain.
        store, sim, ar, (recv,), key, admin = td.setup(
            wd.path, {"delivery_retry_schedule": "1", "log_verbose": "0",
                      "delivery_batch_max_logs": "500"})
        db = store.db()
        recv.status = 503
        sid = td.add_source(ar, key, admin, recv)
        t0 = time.monotonic()
        ids = td.seed_logs(db, sid, n, "bench")
        h.log("seeded %d logs in %.1fs" % (n, time.monotonic() - t0))
        h.wait_for(lambda: (h.deliver_state(db, sid) or {}).get("status") == "callback_failing",
                   120, "breaker open")
        time.sleep(2)
        want = set(ids)
        back = time.monotonic()
        recv.status = 200
        h.log("receiver back")

        def drained():
            return len(td.delivered_ids(recv, sid)) >= n
        h.wait_for(drained, 900, "backlog drained at the receiver", interval=0.2)
        t_recv = time.monotonic() - back
        h.wait_for(lambda: td.store_all_delivered(db, sid, n), 300, "store says delivered",
                   interval=0.5)
        t_store = time.monotonic() - back
        lost = want - td.delivered_ids(recv, sid)
        assert not lost, "%d lost" % len(lost)
        batches = len(td.check_consistent(recv, sid, ids))
        print("backlog drained: %d logs in %.1f s (%.0f logs/s) after the receiver came back; "
              "all recorded delivered in the store after %.1f s; %d batches of <= 500, "
              "retry schedule 1 s, 2-core host, Python receiver verifying every signature"
              % (n, t_recv, n / t_recv, t_store, batches), flush=True)
        ok = True
    finally:
        h.stop_all()
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
