#!/usr/bin/env bash
# Runs every test of auditrelay on a fresh machine: installs dependencies,
# builds the normal and the ASan+UBSan trees, runs ctest (labels unit and
# system; bench is on demand) on both. Exit status non-zero on any failure.
#
#   scripts/test.sh            both builds
#   AR_TEST_SANITIZE=0 scripts/test.sh   normal build only
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
JOBS=$(nproc)

build() {	# build DIR [cmake options...]
	local dir=$1; shift
	cmake -S . -B "$dir" -DAR_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$JOBS"
}

status=0
echo "=== normal build"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build && ctest --output-on-failure -j2 -L unit) || status=1
# System tests start their own store, simulator and ports: two at a time.
(cd build && ctest --output-on-failure -j2 -L system) || status=1

if [ "${AR_TEST_SANITIZE:-1}" = 1 ]; then
	echo "=== ASan+UBSan build"
	build build-asan -DCMAKE_BUILD_TYPE=Debug -DAR_SANITIZE=ON
	# The FerretDB harness is Go: reuse the one built above.
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -L unit) || status=1
	# Daemons exit without freeing what the OS reclaims; leaks are
	# checked by the unit tests, memory errors everywhere.
	(cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
		ctest --output-on-failure -L system) || status=1
fi
exit $status
