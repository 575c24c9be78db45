"""Leases against the real store: contenders race for the same epochs many
times; exactly one wins each; expiry and release hand over with a new
epoch."""
import os
import subprocess

import harness as h

BUILD = os.environ.get("AR_BUILD_DIR", os.path.join(h.BIN, ".."))


def test_race_one_winner_per_epoch(wd):
    store = h.Store(wd)
    rounds, procs = 200, 4
    r = subprocess.run([os.path.join(BUILD, "tests", "ar-lease-race"), store.uri, store.dbname,
                        str(procs), str(rounds)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wins = {}
    for line in r.stdout.split("\n"):
        if not line.strip():
            continue
        parts = line.split()
        for x in parts[1:]:
            wins.setdefault(int(x), []).append(parts[0])
    missing = [i for i in range(rounds) if i not in wins]
    double = {k: v for k, v in wins.items() if len(v) > 1}
    h.log("%d rounds, %d contenders: %d rounds won exactly once, %d double, %d none"
          % (rounds, procs, sum(1 for v in wins.values() if len(v) == 1), len(double), len(missing)))
    assert not double, double
    assert not missing, missing
    db = store.db()
    assert db.leases.count_documents({}) == rounds


if __name__ == "__main__":
    h.run_tests([test_race_one_winner_per_epoch], "lease")
