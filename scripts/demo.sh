#!/usr/bin/env bash
# The live demo, on a fresh machine: installs what it needs, builds, starts
# the store (FerretDB), the Google simulator, a receiver that verifies and
# prints signed batches, and auditrelay; adds a source through the API and
# shows Google-shaped logs arriving. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash scripts/setup.sh
export PATH="$PATH:/usr/local/go/bin"
cmake -S . -B build -DAR_TESTS=ON >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
BIN=$ROOT/build/bin

WORK=$(mktemp -d /tmp/auditrelay-demo-XXXXXX)
PIDS=()
cleanup() {
	trap - INT TERM EXIT
	echo
	echo "demo: stopping"
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: files kept in $WORK"
}
trap cleanup INT TERM EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() {	# wait_line FILE REGEX
	for _ in $(seq 1 600); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for '$2' in $1" >&2
	tail -20 "$1" >&2
	exit 1
}

echo "demo: starting the store (FerretDB 1.24, SQLite in $WORK/store)"
"$BIN/auditrelay-test-ferretdb" -listen 127.0.0.1:0 -dir "$WORK/store" >"$WORK/store.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/store.log" "listening on"
STORE=$(grep -oE '127\.0\.0\.1:[0-9]+' "$WORK/store.log" | head -1)

echo "demo: starting the Google simulator"
"$BIN/auditrelay-google-sim" --listen 127.0.0.1:0 --time-scale 600 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/sim.log" "listening on"
SIM=http://$(grep -oE '127\.0\.0\.1:[0-9]+' "$WORK/sim.log" | head -1)
curl -sf -XPOST "$SIM/_sim/tenants" -d '{"customerId":"C01demo","domain":"demo.example.com"}' >/dev/null
curl -sf -XPOST "$SIM/_sim/tenants/C01demo/admins" -d '{"email":"admin@demo.example.com"}' >/dev/null
curl -sf -XPOST "$SIM/_sim/tenants/C01demo/service-accounts" -d '{"name":"relay","projectId":"demo"}' >"$WORK/key.json"
for app in login admin drive token; do
	curl -sf -XPOST "$SIM/_sim/tenants/C01demo/applications/$app" -d '{"rate":2}' >/dev/null
done

RPORT=$(port)
echo "demo: starting the receiver on 127.0.0.1:$RPORT"
python3 scripts/demo_receiver.py "$RPORT" "$WORK/webhook-secret" &
PIDS+=($!)

API_PORT=$(port)
head -c 32 /dev/urandom | base64 >"$WORK/master.key"
chmod 600 "$WORK/master.key"
TOKEN=demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$WORK/auditrelay.conf" <<CONF
api_listen = 127.0.0.1:$API_PORT
mongodb_uri = mongodb://$STORE
google_token_url = $SIM/token
google_api_base = $SIM
crypto_master_key_file = $WORK/master.key
delivery_allow_private_networks = 1
fetch_min_interval = 10
fetch_initial_lookback = 300
runtime_dir = $WORK
CONF
echo "demo: starting auditrelayd (API on 127.0.0.1:$API_PORT)"
AUDITRELAY_API_TOKEN=$TOKEN "$BIN/auditrelayd" -c "$WORK/auditrelay.conf" 2>&1 | sed -u 's/^/    /' &
PIDS+=($!)
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null && break
	sleep 0.2
done

echo "demo: adding a Google Workspace source with auditrelayctl"
export AUDITRELAY_API_TOKEN=$TOKEN
CTL=("$BIN/auditrelayctl" --url "http://127.0.0.1:$API_PORT")
RESP=$("${CTL[@]}" --json add --key-file "$WORK/key.json" --subject admin@demo.example.com \
	--app login --app admin --app drive --app token --interval 10 \
	--callback "http://127.0.0.1:$RPORT/webhook")
python3 - "$RESP" "$WORK/webhook-secret" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if "id" not in r:
    sys.exit("demo: add-source failed: %s" % sys.argv[1])
open(sys.argv[2], "w").write(r["webhookSecret"])
print("demo: source %s added; signing secret handed to the receiver" % r["id"])
PY
echo "demo: auditrelayctl list:"
"${CTL[@]}" list | sed 's/^/    /'
echo "demo: logs flow below (Ctrl-C stops everything)"
wait
