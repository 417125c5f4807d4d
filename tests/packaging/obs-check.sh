#!/bin/sh
# Offline checks of the OBS package: _service is well-formed and vendors
# with update=false into a tar/xz archive; the spec parses (rpmspec -P);
# the .dsc's Debtransform-Tar + the vendor archive + Debtransform-Files-Tar
# make a 3.0 (quilt) source package (dpkg-source -b) that unpacks again
# with vendor/ at the top (dpkg-source -x).
set -eu
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sh "$(dirname "$0")/sources.sh" "$OUT")
OBS=$OUT/obs
rm -rf "$OBS" && mkdir -p "$OBS/upload" "$OBS/src"
sh "$ROOT/packaging/obs/assemble.sh" "$OBS/upload"
cp "$OUT/qmail-multi-$VERSION.tar.xz" "$OUT/vendor.tar.xz" "$OBS/upload/"

python3 - "$OBS/upload/_service" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "services", root.tag
vendor = [s for s in root if s.get("name") == "cargo_vendor"]
assert len(vendor) == 1, "no cargo_vendor service"
params = {p.get("name"): p.text for p in vendor[0]}
assert params.get("update") == "false", params
assert params.get("compression") in ("xz", "gz", "bz2"), params
print("obs-check: _service ok:", params)
PY

rpmspec -P "$OBS/upload/qmail-multi.spec" >"$OBS/spec.parsed"
grep -q '^Source1: *vendor.tar.xz' "$OBS/spec.parsed"
echo "obs-check: rpmspec -P ok"

dsc=$OBS/upload/qmail-multi.dsc
field() { sed -n "s/^$1: *//p" "$dsc"; }
src=$(field Debtransform-Tar)
deb=$(field Debtransform-Files-Tar)
ver=$(field Version)
upstream=${ver%-*}
[ "$upstream" = "$VERSION" ] || {
	echo "obs-check: $dsc says $ver, Cargo.toml $VERSION" >&2
	exit 1
}
cp "$OBS/upload/$src" "$OBS/src/qmail-multi_$upstream.orig.tar.xz"
cp "$OBS/upload/vendor.tar.xz" "$OBS/src/qmail-multi_$upstream.orig-vendor.tar.xz"
tar -C "$OBS/src" -xf "$OBS/upload/$src"
tree=$OBS/src/qmail-multi-$upstream
tar -C "$tree" -xf "$OBS/upload/vendor.tar.xz"
tar -C "$tree" -xf "$OBS/upload/$deb" debian
(cd "$OBS/src" && dpkg-source -b "qmail-multi-$upstream" >"$OBS/dpkg-source.log" 2>&1) || {
	cat "$OBS/dpkg-source.log" >&2
	exit 1
}
(cd "$OBS/src" && dpkg-source -x "qmail-multi_$ver.dsc" unpacked >>"$OBS/dpkg-source.log" 2>&1)
test -f "$OBS/src/unpacked/vendor/libc-"*/Cargo.toml
test -x "$OBS/src/unpacked/debian/rules"
echo "obs-check: dpkg-source built and unpacked qmail-multi_$ver.dsc"
