#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a real auditrelay (FerretDB, the Google
# simulator, auditrelayd with a token) with every check; fails on a server
# error, an undocumented status, a schema violation or any other finding.
# Installs schemathesis with pip when missing. A few minutes at most.
#
# Usage: tests/openapi/check.sh [BUILD_BIN_DIR]   (default: build/bin)
# Env: OPENAPI_MAX_EXAMPLES (30), OPENAPI_MAX_TIME (150 s), AR_KEEP_TMP=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
bin=${1:-${AR_BIN_DIR:-$src/build/bin}}
bin=$(cd "$bin" && pwd)

for b in auditrelayd auditrelay-apid auditrelay-google-sim auditrelay-test-ferretdb; do
	if [ ! -x "$bin/$b" ]; then
		echo "openapi: $bin/$b is missing: build first (cmake --build)" >&2
		exit 1
	fi
done

# The python3 on PATH (pyenv's here) if it has pip, else the system one.
py=
for cand in "$(command -v python3 || true)" /usr/bin/python3; do
	if [ -n "$cand" ] && "$cand" -m pip --version >/dev/null 2>&1; then
		py=$cand
		break
	fi
done
if [ -z "$py" ]; then
	echo "openapi: no python3 with pip found" >&2
	exit 1
fi
if ! "$py" -c 'import schemathesis' >/dev/null 2>&1; then
	echo "openapi: installing schemathesis with $py -m pip"
	if ! "$py" -m pip install --quiet schemathesis; then
		"$py" -m pip install --quiet --break-system-packages schemathesis
	fi
fi
echo "openapi: $("$py" -m schemathesis.cli --version 2>/dev/null | tail -1)"

export AR_BIN_DIR=$bin AR_SOURCE_DIR=$src
exec "$py" "$here/run.py" --max-examples "${OPENAPI_MAX_EXAMPLES:-30}" \
    --max-time "${OPENAPI_MAX_TIME:-150}"
