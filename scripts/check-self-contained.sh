#!/usr/bin/env bash
# Fails when a tracked build, test or script file refers to a path outside
# the repository (a fresh clone has nothing beside it: no sibling
# reference directory, no sibling checkout). Documentation may mention such
# places; code may not. Checks: climbs to a sibling "shared" directory,
# "/shared/" paths, and "${CMAKE_SOURCE_DIR}/.." or "$SRC/.." style climbs
# out of the tree. The sibling's name is assembled below, so that this
# file does not itself name it.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
# Files whose content builds, tests or runs something.
all=$(git ls-files)	# not a git checkout: fail here
files=$(printf '%s\n' "$all" | grep -Ev '\.(md|[0-9])$|^docs/|^man/' || true)
sib=sha; sib=${sib}red
pat="(\\.\\./)+${sib}\\b|/${sib}/google|/work/${sib}|"'CMAKE_SOURCE_DIR\}/\.\.|SOURCE_DIR\)/\.\.|os\.path\.join\(SRC, *"\.\."'
for f in $files; do
	[ "$f" = scripts/check-self-contained.sh ] && continue
	[ -f "$f" ] || continue
	if hits=$(grep -nE "$pat" "$f"); then
		echo "$f: refers outside the repository:"
		echo "$hits" | sed 's/^/    /'
		status=1
	fi
done
[ $status -eq 0 ] && echo "self-contained: no build, test or script refers outside the repository"
exit $status
