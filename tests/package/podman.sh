#!/usr/bin/env bash
# The Dockerfile, built and run for real with podman (Docker itself cannot
# run on these machines):
#
#   tests/package/podman.sh
#
# The Dockerfile's bases (debian:bookworm, debian:bookworm-slim) are
# imported from the bookworm root that tests/package/systemd.sh caches in
# $AR_SYSD_BASE (made here with debootstrap when missing), so that only
# Debian's package mirror is needed. podman runs with runc (crun refuses the
# hybrid cgroup hierarchy of these machines) and explicit ulimits (the
# defaults exceed what the machine allows). The image is then run with the
# host's network against a store (FerretDB), the Google simulator and a
# receiver on this host: /healthz, a source added through the API, signed
# batches delivered, a clean stop. Exit 77 when not root; needs build/bin/.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${AR_SYSD_BASE:-/var/tmp/auditrelay-sysd}
ROOT=$BASE/root
IMAGE=localhost/auditrelay:ci-$$
t0=$(date +%s)
say() { printf 'podman: %s\n' "$*"; }
. "$top/tests/package/tools.sh"

[ "$(id -u)" -eq 0 ] || { say "SKIP: must run as root"; exit 77; }
need_tools podman=podman runc=runc debootstrap=debootstrap
PODMAN=(podman --runtime "$(command -v runc)")
LIMITS=(--ulimit nofile=1024:20000 --ulimit nproc=4096:4096)

cleanup() {
	local rc=$?
	"${PODMAN[@]}" rmi -f "$IMAGE" > /dev/null 2>&1 || true
	# The build stage's image (~900 MB) is left dangling: drop it.
	"${PODMAN[@]}" image prune -f > /dev/null 2>&1 || true
	say "done in $(( $(date +%s) - t0 ))s (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$ROOT/lib/systemd/systemd" ]; then
	m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
	say "building the bookworm root in $ROOT (once)"
	rm -rf "$ROOT.new"
	mkdir -p "$BASE"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
	    bookworm "$ROOT.new" "${m:-http://deb.debian.org/debian}" > "$BASE/debootstrap.log" 2>&1
	cp /etc/apt/sources.list.d/debian.sources "$ROOT.new/etc/apt/sources.list.d/" 2> /dev/null &&
	    rm -f "$ROOT.new/etc/apt/sources.list"
	mv "$ROOT.new" "$ROOT"
fi
if ! "${PODMAN[@]}" image exists docker.io/library/debian:bookworm-slim; then
	ti=$(date +%s)
	tar -C "$ROOT" -c --exclude=./.auditrelay-deps . |
	    "${PODMAN[@]}" import - localhost/auditrelay-base:bookworm > /dev/null
	"${PODMAN[@]}" tag localhost/auditrelay-base:bookworm \
	    docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
	say "base images imported from $ROOT in $(( $(date +%s) - ti ))s"
fi

tb=$(date +%s)
if ! "${PODMAN[@]}" build --network=host "${LIMITS[@]}" -t "$IMAGE" "$top" \
    > "$BASE/podman-build.log" 2>&1; then
	tail -30 "$BASE/podman-build.log" >&2
	say "FAIL: podman build (log $BASE/podman-build.log)"
	exit 1
fi
say "PASS: podman build of the Dockerfile ($(( $(date +%s) - tb ))s, $("${PODMAN[@]}" image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}'))"

AR_PODMAN="${PODMAN[*]}" AR_PODMAN_LIMITS="${LIMITS[*]}" AR_PODMAN_IMAGE=$IMAGE \
    python3 "$top/tests/package/podman_checks.py"
