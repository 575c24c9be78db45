#!/bin/sh
# Build the auditrelay Debian package from this working tree.
#
#   packaging/build-deb.sh [OUTDIR]
#
# Copies packaging/debian to debian/ at the top of the tree (git-ignored),
# runs "dpkg-buildpackage -us -uc -b", and moves the .deb, .buildinfo and
# .changes files from the parent directory into OUTDIR (default
# build-deb-out/ at the top of the tree). Prints the path of the .deb.
# Needs dpkg-dev, debhelper and the Build-Depends of packaging/debian/control.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-deb-out}
case "$out" in
/*) ;;
*) out=$(pwd)/$out ;;
esac

cd "$top"
if ! command -v dpkg-buildpackage > /dev/null; then
	echo "build-deb.sh: dpkg-buildpackage not found (apt-get install" \
	    "dpkg-dev debhelper)" >&2
	exit 1
fi
rm -rf debian
cp -a packaging/debian debian
trap 'rm -rf "$top/debian"' EXIT INT TERM

version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
: "${DEB_BUILD_OPTIONS:=parallel=$(nproc)}"
export DEB_BUILD_OPTIONS

dpkg-buildpackage -us -uc -b

mkdir -p "$out"
for f in "$top"/../auditrelay_"$version"_"$arch".deb \
    "$top"/../auditrelay-dbgsym_"$version"_"$arch".deb \
    "$top"/../auditrelay_"$version"_"$arch".buildinfo \
    "$top"/../auditrelay_"$version"_"$arch".changes; do
	[ -e "$f" ] && mv -f "$f" "$out"/
done
# The .changes file names the files beside it: keep them together.
echo "$out/auditrelay_${version}_${arch}.deb"
