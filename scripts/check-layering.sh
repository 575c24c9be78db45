#!/usr/bin/env bash
# The layering of the tree (docs/ARCHITECTURE.md, lib/*/README.md), as a
# table: each folder, and the folders of ours its files may include. Fails
# naming the file and line of every include outside its folder's row, of
# every include not written from the tree's top ("lib/store/store.h"), of
# a lib/ line that logs above debug or exits, and of a CMakeLists.txt
# whose ar_* libraries differ from the row. The build enforces the same
# (a folder's headers are on the include path only of what links it);
# this says it in one sentence. The tests (tests/) may include anything.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allow=(
	[lib/base]=""
	[lib/store]="lib/base"
	[lib/ipc]="lib/base"
	[lib/net]="lib/base"
	[lib/crypto]="lib/base"
	[lib/google]="lib/base lib/net lib/crypto"
	[lib/batch]="lib/base"
	[runtime]="lib/base lib/ipc lib/store"
	[supervisor]="lib/base lib/ipc lib/crypto"
	[apid]="lib/base lib/store lib/ipc lib/net lib/crypto lib/google runtime"
	[fetcherd]="lib/base lib/store lib/ipc lib/crypto lib/google lib/batch runtime"
	[deliverd]="lib/base lib/store lib/ipc lib/net lib/crypto lib/batch runtime"
	[tools]="lib/base"
)
# The generated protobuf-c header, included by its bare name.
declare -A generated=([ipc.pb-c.h]=lib/ipc)

status=0
fail() {	# fail FILE:LINE MESSAGE
	echo "$1: $2"
	status=1
}

# The folder a path belongs to: the longest row that prefixes it.
folder_of() {
	local p=$1 f best=
	for f in "${!allow[@]}"; do
		case $p in
		"$f"/*) [ ${#f} -gt ${#best} ] && best=$f ;;
		esac
	done
	echo "$best"
}

# Every folder of the tree holds a row (a new lib/ folder needs one).
for d in lib/*/; do
	d=${d%/}
	[ -n "${allow[$d]+x}" ] || fail "$d" "a folder with no row in scripts/check-layering.sh"
done

for own in $(printf "%s\n" "${!allow[@]}" | LC_ALL=C sort); do
	[ -d "$own" ] || { fail "$own" "a row for a folder that does not exist"; continue; }
	while IFS= read -r f; do
		while IFS=: read -r line inc; do
			target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/' <<<"$inc")
			if [ -n "${generated[$target]+x}" ]; then
				[ "${generated[$target]}" = "$own" ] ||
				    fail "$f:$line" "includes \"$target\": only ${generated[$target]} includes the generated protocol (include its header)"
				continue
			fi
			to=$(folder_of "$target")
			if [ -z "$to" ]; then
				fail "$f:$line" "includes \"$target\": not a file of a folder of ours, written from the tree's top (\"lib/store/store.h\")"
				continue
			fi
			if [ ! -f "$target" ]; then
				fail "$f:$line" "includes \"$target\": no such file"
				continue
			fi
			[ "$to" = "$own" ] && continue
			case " ${allow[$own]} " in
			*" $to "*) ;;
			*) fail "$f:$line" "includes \"$target\": $own may include ${allow[$own]:-nothing of ours}${allow[$own]:+ and itself}, not $to" ;;
			esac
		done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
	done < <(find "$own" -name '*.[ch]' | LC_ALL=C sort)
done

# lib/ never logs above debug and never exits (it returns -errno with a
# message); the daemons and runtime/ decide. Aborting on out-of-memory,
# as util_xcalloc() documents, is not an exit.
while IFS= read -r hit; do
	fail "${hit%%: *}" "lib/ logs above debug or exits: ${hit#*: }"
done < <(grep -nE '\blog_(err|warn|warning|notice|info)[[:space:]]*\(|LOG_LEVEL_(ERR|WARNING|NOTICE|INFO)[[:space:]]*,|\b(_?exit|_Exit|quick_exit)[[:space:]]*\(' \
    $(find lib -name '*.c' ! -path lib/base/log.c | LC_ALL=C sort) | sed 's/^\([^:]*:[0-9]*\):[[:space:]]*/\1: /' || true)

# Each folder's CMakeLists.txt links exactly the ar_* libraries of its row.
for own in $(printf "%s\n" "${!allow[@]}" | LC_ALL=C sort); do
	cm=$own/CMakeLists.txt
	[ -f "$cm" ] || continue
	want=$(for d in ${allow[$own]}; do echo "ar_$(basename "$d")"; done | LC_ALL=C sort -u | xargs)
	have=$(tr '\n' ' ' <"$cm" | grep -oE 'target_link_libraries\([^)]*\)' |
	    grep -oE '\bar_[a-z]+\b' | grep -vx "ar_$(basename "$own")" | LC_ALL=C sort -u | xargs || true)
	[ "$want" = "$have" ] ||
	    fail "$cm" "links ${have:-no ar_* library}, the row says ${want:-none}"
done

[ $status -eq 0 ] && echo "layering: every include, lib/ log line and CMake link follows the table"
exit $status
