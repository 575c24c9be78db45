#!/usr/bin/env bash
# Runs every benchmark and prints its figures (on demand; not part of the
# test suite: timings depend on the machine). Needs a build in build/.
#   bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export AR_BIN_DIR=${AR_BIN_DIR:-$PWD/build/bin}
PY=/usr/bin/python3
echo "== Google simulator: events served per second (1000-item pages)"
$PY tests/google-sim/bench_sim_throughput.py "$AR_BIN_DIR/auditrelay-google-sim"
echo "== deliverd: receiver back -> backlog of 50 000 logs drained"
$PY bench/deliver_backlog.py 50000
echo "== whole pipeline: events/s delivered, time to first batch, peak RSS"
$PY bench/e2e.py --sources 4 --rate 100 --seconds 60
echo "== chaos soak: 10 minutes of random kill -9 (lost and duplicated must be 0)"
AR_CHAOS_SECONDS=${AR_SOAK_SECONDS:-600} $PY -c '
import sys; sys.path.insert(0, "tests/system")
import harness as h, test_ha as t
h.run_tests([t.test_chaos_kill_children], "soak")'
