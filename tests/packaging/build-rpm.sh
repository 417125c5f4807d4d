#!/bin/sh
# Builds the binary RPM offline from OUT's archives (sources.sh) and
# packaging/rpm, then runs rpmlint (errors fail). --nodeps: on Debian the
# rpm database is empty, so BuildRequires cannot be satisfied from it;
# cargo comes from the PATH (Debian's when installed).
# usage: build-rpm.sh OUT RELEASE DEFAULT_QUEUE_COUNT
set -eu
OUT=$(mkdir -p "$1" && cd "$1" && pwd) RELEASE=$2 COUNT=$3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sh "$(dirname "$0")/sources.sh" "$OUT")
TOP=$OUT/rpmbuild
rm -rf "$TOP" && mkdir -p "$TOP/SOURCES" "$TOP/SPECS" "$OUT/build"
cp "$OUT/qmail-multi-$VERSION.tar.xz" "$OUT/vendor.tar.xz" "$TOP/SOURCES/"
cp "$ROOT/packaging/rpm/qmail-multi.spec" "$TOP/SPECS/"
if [ -x /usr/bin/cargo ]; then PATH=/usr/sbin:/usr/bin:/sbin:/bin; fi
export PATH
mkdir -p "$OUT/cargo-target"
CARGO_TARGET_DIR=$OUT/cargo-target rpmbuild -bb --nodeps --nocheck \
	--define "_topdir $TOP" --define "_builddir $OUT/build" --define "pkg_release $RELEASE" \
	--define "default_queue_count $COUNT" \
	"$TOP/SPECS/qmail-multi.spec" >"$TOP/build.log" 2>&1 || {
	tail -n 60 "$TOP/build.log"
	exit 1
}
mkdir -p "$OUT/rpms"
RPM=$OUT/rpms/$(cd "$TOP/RPMS" && find . -name "qmail-multi-$VERSION-$RELEASE*.rpm" -printf '%f\n' | head -n 1)
find "$TOP/RPMS" -name "${RPM##*/}" -exec cp {} "$RPM" \;
rpmlint -r "$ROOT/packaging/rpm/qmail-multi.rpmlintrc" "$TOP/SPECS/qmail-multi.spec" "$RPM" >&2 || {
	echo "build-rpm: rpmlint found errors" >&2
	exit 1
}
echo "$RPM"
