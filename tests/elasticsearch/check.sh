#!/usr/bin/env bash
# Elasticsearch export against a real Elasticsearch 7.17 (see check.py).
# Usage: tests/elasticsearch/check.sh [BUILD_BIN_DIR]   (default: build/bin)
# Prints "elasticsearch: SKIP ..." and exits 0 without Java or the zip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
bin=${1:-${AR_BIN_DIR:-$src/build/bin}}
export AR_BIN_DIR=$(cd "$bin" && pwd) AR_SOURCE_DIR=$src
# The system tests' harness runs on the system python3 (pymongo).
exec /usr/bin/python3 "$here/check.py"
