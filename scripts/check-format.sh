#!/usr/bin/env bash
# Fails listing every tracked .c/.h file that clang-format (.clang-format
# at the top) would change; prints nothing else but a count. The layout
# is that of Debian bookworm's clang-format 14 (scripts/setup.sh installs
# it): another version may format some lines otherwise. To fix a file:
# clang-format -i FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null ||
    { echo "check-format: clang-format not found (scripts/setup.sh installs it)"; exit 1; }
ver=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
[ "$ver" = 14 ] ||
    echo "check-format: clang-format $ver, the layout is clang-format 14's: some lines may differ"
n=0 drift=0
while IFS= read -r f; do
	n=$((n + 1))
	if ! clang-format --style=file "$f" | cmp -s - "$f"; then
		echo "$f"
		drift=$((drift + 1))
	fi
done < <(git ls-files '*.c' '*.h')
if [ $drift -gt 0 ]; then
	echo "check-format: $drift of $n files drift from .clang-format (clang-format -i FILE)"
	exit 1
fi
echo "check-format: $n files as .clang-format lays them out"
