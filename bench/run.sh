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
echo "== backlog throughput: 20 000, 200 000 and 2 000 000 events vs a bare relay and the store's ceiling"
$PY bench/throughput.py --events 20000 200000 ${AR_BENCH_BIG:+2000000} --json bench-throughput.json
echo "== store: every command of a 200 000-event backlog by collection (calls, time, bytes)"
$PY bench/storetrace.py -- $PY bench/throughput.py --events 200000 --json /dev/null
echo "== store: one write of the state of sources, per-source documents against a document per partition"
$PY bench/statewrite.py --sources 1000 10000
echo "== flow: 50 sources x 10 events/s for 5 minutes, latency from publication"
$PY bench/flow.py --sources 50 --rate 10 --interval 1 --seconds 300 --json bench-flow.json
echo "== store stall: the store SIGSTOPped for 60 s under flow"
$PY bench/flow.py --sources 20 --rate 10 --interval 1 --seconds 180 --stall 60 --json bench-stall.json
echo "== scale: 10 000 idle sources at 300 s (no restart, every source polled within 1.1x)"
AR_SCALE_SOURCES=${AR_SCALE_SOURCES:-10000} AR_SCALE_INTERVAL=${AR_SCALE_INTERVAL:-300} \
	AR_SCALE_STRICT=1 $PY tests/system/test_scale.py
echo "== whole pipeline: events/s delivered, time to first batch, peak RSS"
$PY bench/e2e.py --sources 4 --rate 100 --seconds 60
echo "== chaos soak: 10 minutes of random kill -9 (lost and duplicated must be 0)"
AR_CHAOS_SECONDS=${AR_SOAK_SECONDS:-600} $PY -c '
import sys; sys.path.insert(0, "tests/system")
import harness as h, test_ha as t
h.run_tests([t.test_chaos_kill_children], "soak")'
