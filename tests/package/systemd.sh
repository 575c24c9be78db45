#!/usr/bin/env bash
# The Debian package as its users run it: under a real systemd (PID 1) in a
# throw-away systemd-nspawn container, on machines whose own PID 1 is not
# systemd.
#
#   tests/package/systemd.sh            # build, boot, check, clean up
#
# Builds the .deb (packaging/build-deb.sh), makes a Debian bookworm root
# once with debootstrap from the mirror apt already uses (cached in
# $AR_SYSD_BASE, default /var/tmp/auditrelay-sysd: ~250 MB, ~1 min; the
# package's run-time dependencies are installed into it then, so later runs
# need no download), boots an ephemeral copy of it with the .deb visible at
# /debs, and runs tests/package/systemd_checks.py: apt-get install, a store
# (FerretDB) and the Google simulator started on this host (the container
# shares the host's loopback), each check printed as PASS or FAIL. The
# container is powered off and every process stopped by pid on exit.
#
# Needs root; installs debootstrap, systemd-container, dpkg-dev and
# debhelper with apt-get when they are missing. Needs build/bin/ (the
# normal build: the store and the simulator come from it). Exit 0 all
# checks passed, 1 a check failed, 77 cannot run here (not root).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${AR_SYSD_BASE:-/var/tmp/auditrelay-sysd}
ROOT=$BASE/root
NAME=arpkg$$
DEBDIR=$BASE/debs-$NAME
CG=auditrelay-$NAME
t0=$(date +%s)
nspawn_pid=
leader=

say() { printf 'systemd: %s\n' "$*"; }
. "$top/tests/package/tools.sh"
die() { printf 'systemd: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { say "SKIP: must run as root"; exit 77; }

# The Debian mirror this machine's apt uses (only Debian's mirrors are
# reachable on CI machines).
mirror() {
	local m
	m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
	[ -n "$m" ] || m=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2> /dev/null || true)
	[ -n "$m" ] || m=http://deb.debian.org/debian
	echo "$m"
}

# The first child of pid $1 (the container's systemd under nspawn), from
# /proc: a fresh machine may have no procps.
child_of() {
	local d
	for d in /proc/[0-9]*; do
		[ "$(awk '/^PPid:/ {print $2}' "$d/status" 2> /dev/null)" = "$1" ] &&
		    { echo "${d#/proc/}"; return 0; }
	done
	return 0
}

# Tools: the container, the root and the package build.
need_tools systemd-nspawn=systemd-container debootstrap=debootstrap \
    dpkg-buildpackage=dpkg-dev dh=debhelper
for b in auditrelay-test-ferretdb auditrelay-google-sim; do
	[ -x "$top/build/bin/$b" ] || die "build/bin/$b missing: build the tree first (cmake --build build)"
done

cleanup() {
	local rc=$?
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2> /dev/null; then
		if [ -n "$leader" ]; then
			nsenter -t "$leader" -a systemctl poweroff > /dev/null 2>&1 || true
		fi
		for _ in $(seq 100); do
			kill -0 "$nspawn_pid" 2> /dev/null || break
			sleep 0.2
		done
		kill -0 "$nspawn_pid" 2> /dev/null && kill -KILL "$nspawn_pid" 2> /dev/null
		wait "$nspawn_pid" 2> /dev/null || true
	fi
	for h in systemd unified; do
		[ -d "/sys/fs/cgroup/$h/$CG" ] &&
		    find "/sys/fs/cgroup/$h/$CG" -depth -type d -exec rmdir {} + 2> /dev/null
	done
	rm -rf "$DEBDIR"
	[ "$rc" -ne 0 ] || rm -f "$BASE/$NAME.log"
	say "done in $(( $(date +%s) - t0 ))s (exit $rc)"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The package.
mkdir -p "$BASE" "$DEBDIR"
log=$BASE/build-deb.log
tb=$(date +%s)
if ! "$top/packaging/build-deb.sh" "$DEBDIR" > "$log" 2>&1; then
	tail -30 "$log" >&2
	die "packaging/build-deb.sh failed (log $log)"
fi
deb=$(tail -1 "$log")
[ -f "$deb" ] || die "no .deb at $deb"
rm -f "$DEBDIR"/*dbgsym* "$DEBDIR"/*.buildinfo "$DEBDIR"/*.changes
say "built $(basename "$deb") in $(( $(date +%s) - tb ))s"

# 2. The root, once: bookworm with systemd, then the package's run-time
# dependencies (read from the .deb), so that installing it needs no mirror.
if [ ! -x "$ROOT/lib/systemd/systemd" ]; then
	tr=$(date +%s)
	say "building the bookworm root in $ROOT (once; from $(mirror))"
	rm -rf "$ROOT.new"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
	    bookworm "$ROOT.new" "$(mirror)" > "$BASE/debootstrap.log" 2>&1 ||
	    die "debootstrap failed, see $BASE/debootstrap.log"
	echo sysdtest > "$ROOT.new/etc/hostname"
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$ROOT.new/etc/apt/sources.list.d/"
		rm -f "$ROOT.new/etc/apt/sources.list"
	fi
	mv "$ROOT.new" "$ROOT"
	say "root ready in $(( $(date +%s) - tr ))s"
fi
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
    grep -v '^$' | sort -u | tr '\n' ' ')
if [ "$(cat "$ROOT/.auditrelay-deps" 2> /dev/null)" != "$deps" ]; then
	td=$(date +%s)
	say "installing the package's dependencies into the root: $deps"
	chroot "$ROOT" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $deps" > "$BASE/deps.log" 2>&1 ||
	    die "apt-get install in the root failed, see $BASE/deps.log"
	chroot "$ROOT" apt-get clean
	echo "$deps" > "$ROOT/.auditrelay-deps"
	say "dependencies installed in $(( $(date +%s) - td ))s"
fi

# 3. Boot a throw-away copy. The host has no systemd bus: --register=no
# --keep-unit; a cgroup of its own so that it can be cleaned up.
tboot=$(date +%s.%N)
for h in systemd unified; do mkdir -p "/sys/fs/cgroup/$h/$CG" 2> /dev/null || true; done
(
	for h in systemd unified; do
		echo $BASHPID > "/sys/fs/cgroup/$h/$CG/cgroup.procs" 2> /dev/null || true
	done
	exec setsid systemd-nspawn -q -D "$ROOT" --ephemeral -M "$NAME" -b \
	    --register=no --keep-unit --console=pipe --bind-ro="$DEBDIR":/debs \
	    > "$BASE/$NAME.log" 2>&1 < /dev/null
) &
nspawn_pid=$!
for _ in $(seq 300); do	# up to 60 s
	l=$(child_of "$nspawn_pid")
	if [ -n "$l" ]; then
		s=$(nsenter -t "$l" -a systemctl is-system-running --wait 2> /dev/null || true)
		case "$s" in running|degraded) leader=$l; break ;; esac
	fi
	kill -0 "$nspawn_pid" 2> /dev/null || break
	sleep 0.2
done
[ -n "$leader" ] || { cat "$BASE/$NAME.log" >&2; die "the container did not boot"; }
say "container $NAME booted in $(awk -v a="$tboot" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')s (leader pid $leader)"

# 4. The checks.
AR_SYSD_LEADER=$leader AR_SYSD_DEB=/debs/$(basename "$deb") \
    python3 "$top/tests/package/systemd_checks.py"
