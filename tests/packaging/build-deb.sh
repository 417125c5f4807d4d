#!/bin/sh
# Builds the Debian source and binary packages offline from OUT's archives
# (sources.sh) and packaging/debian, then runs lintian (errors fail).
# Uses Debian's own toolchain (cargo-web/rustc-web) when installed; else
# rustup's cargo with dpkg-buildpackage -d (build dependencies unchecked).
# usage: build-deb.sh OUT [REVISION]   (REVISION > 1: a changelog entry is
# added, for upgrade tests). Prints the path of the .deb last.
set -eu
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
REV=${2:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sh "$(dirname "$0")/sources.sh" "$OUT")
# The tree sits where build-rpm.sh unpacks its own (_builddir): the same
# paths let both builds reuse one cargo target directory.
DEB=$OUT/build
rm -rf "$DEB" && mkdir -p "$DEB"
cp "$OUT/qmail-multi-$VERSION.tar.xz" "$DEB/qmail-multi_$VERSION.orig.tar.xz"
cp "$OUT/vendor.tar.xz" "$DEB/qmail-multi_$VERSION.orig-vendor.tar.xz"
TREE=$DEB/qmail-multi-$VERSION
tar -C "$DEB" -xf "$DEB/qmail-multi_$VERSION.orig.tar.xz"
tar -C "$TREE" -xf "$OUT/vendor.tar.xz"
cp -a "$ROOT/packaging/debian" "$TREE/debian"
if [ "$REV" != 1 ]; then
	{
		printf 'qmail-multi (%s-%s) unstable; urgency=medium\n\n' "$VERSION" "$REV"
		printf '  * Rebuild (upgrade test).\n\n'
		printf ' -- qmail-multi developers <qmail-multi@packages.invalid>  %s\n\n' "$(date -R)"
		cat "$ROOT/packaging/debian/changelog"
	} >"$TREE/debian/changelog"
fi

if dpkg-query -W -f='${Status}' cargo-web 2>/dev/null | grep -q 'ok installed' ||
	dpkg-query -W -f='${Status}' cargo 2>/dev/null | grep -q 'ok installed'; then
	PATH=/usr/sbin:/usr/bin:/sbin:/bin
	DEPS=''
	echo "build-deb: Debian's cargo: $(cargo --version)"
else
	DEPS=-d
	echo "build-deb: no Debian cargo package: rustup's $(cargo --version), dpkg-buildpackage -d"
fi
export PATH
mkdir -p "$OUT/cargo-target"
cd "$TREE"
CARGO_TARGET_DIR=$OUT/cargo-target DEB_BUILD_OPTIONS="nocheck parallel=2" \
	dpkg-buildpackage -us -uc $DEPS >"$DEB/build.log" 2>&1 || {
	tail -n 60 "$DEB/build.log"
	exit 1
}
cd "$DEB"
lintian --fail-on error --tag-display-limit 0 qmail-multi_"$VERSION-$REV"_*.changes
echo "build-deb: lintian found no error"
mkdir -p "$OUT/debs"
for f in qmail-multi_"$VERSION-$REV"_*.deb; do cp "$f" "$OUT/debs/"; done
echo "$OUT/debs/$(ls qmail-multi_"$VERSION-$REV"_*.deb | head -n 1)"
