# Sourced by the package tests (POSIX sh; the caller defines say()).

# need_tools COMMAND=PACKAGE...: install from Debian the packages of the
# commands this machine lacks (a fresh CI machine has none of them). NEED is
# left holding those packages (" pkg1 pkg2"); apt-get's status.
need_tools() {
	NEED=
	for _nt in "$@"; do
		command -v "${_nt%%=*}" > /dev/null || NEED="$NEED ${_nt#*=}"
	done
	[ -n "$NEED" ] || return 0
	say "installing$NEED"
	# shellcheck disable=SC2086 # one word a package
	apt-get update -qq &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $NEED > /dev/null
}
