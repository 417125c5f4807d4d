#!/bin/sh
# Builds the Debian package the way an OBS worker does: Debian's obs-build
# (the build script OBS runs) takes the OBS upload (packaging/obs/assemble.sh
# plus the two archives the _service run would add), runs debtransform on
# the .dsc, sets up a chroot from a local directory of .debs and builds in
# it as an unprivileged user. The .debs come from `apt-get download` (the
# closure of tests/packaging/obs-debian12.conf's packages and the
# Build-Depends, resolved by apt against an empty dpkg database; the Rust
# toolchain pinned to the host's, so the result can be compared with
# build-deb.sh's); they are cached under OUT and reused while the list is
# unchanged. The build itself runs in a network namespace of its own, with
# no network. Needs root. usage: obs-build.sh OUT   Prints the .deb last.
set -eu
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=$(sh "$HERE/sources.sh" "$OUT")
OBS=$OUT/obs-build
CONF=$HERE/obs-debian12.conf
DEBS=$OUT/obs-debs
BUILDROOT=$OBS/root
mkdir -p "$OBS" "$DEBS"

# ---- the OBS upload, as `osc service manualrun` leaves it
rm -rf "$OBS/upload"
sh "$ROOT/packaging/obs/assemble.sh" "$OBS/upload"
cp "$OUT/qmail-multi-$VERSION.tar.xz" "$OUT/vendor.tar.xz" "$OBS/upload/"

# ---- the local package directory
conf_list() { sed -n "s/^$1: *//p" "$CONF" | tr ' ' '\n' | grep -v '^$'; }
pinned() {
	v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true)
	if [ -n "$v" ]; then echo "$1=$v"; else echo "$1"; fi
}
{
	conf_list Preinstall
	conf_list Required
	conf_list Support
	# Build-Depends: debhelper-compat (= 13) is provided by debhelper; the
	# toolchain is Debian's own, at the host's version when installed.
	echo debhelper
	pinned cargo-web
	pinned rustc-web
	pinned libstd-rust-web-dev
} | sort -u >"$OBS/wanted"
if ! cmp -s "$OBS/wanted" "$DEBS/.wanted"; then
	rm -rf "$DEBS" && mkdir -p "$DEBS"
	empty=$OBS/apt-empty && mkdir -p "$empty" && : >"$empty/status"
	# shellcheck disable=SC2046
	apt-get -o Dir::State::status="$empty/status" -o Debug::NoLocking=1 \
		install --print-uris -qq --no-install-recommends $(cat "$OBS/wanted") \
		>"$OBS/uris" 2>"$OBS/apt.log" || {
		cat "$OBS/apt.log" "$OBS/uris" >&2
		exit 1
	}
	# 'URI' name_version_arch.deb size hash -> name=version
	sed -n "s/^'[^']*' \([^_]*\)_\([^_]*\)_[^ ]*\.deb .*/\1=\2/p" "$OBS/uris" |
		sed 's/%3a/:/g' >"$OBS/download"
	(cd "$DEBS" && xargs apt-get download -qq <"$OBS/download") >"$OBS/download.log" 2>&1 || {
		cat "$OBS/download.log" >&2
		exit 1
	}
	cp "$OBS/wanted" "$DEBS/.wanted"
fi
echo "obs-build: $(ls "$DEBS"/*.deb | wc -l) packages in $DEBS"

# ---- the build, offline
# A network namespace of its own (loopback only) and a mount namespace of
# its own: the chroot's /proc, /sys and /dev/pts go away with it, even when
# the build fails half-way.
for m in proc sys dev/pts dev/shm; do
	if mountpoint -q "$BUILDROOT/$m" 2>/dev/null; then umount -l "$BUILDROOT/$m"; fi
done
rm -rf "$BUILDROOT"
# OBS gives its workers the job count; two cores here.
unshare --net --mount /usr/lib/obs-build/build --root "$BUILDROOT" --dist "$CONF" \
	--rpms "$DEBS" --jobs 2 --clean \
	"$OBS/upload/qmail-multi.dsc" >"$OBS/build.log" 2>&1 || {
	tail -n 80 "$OBS/build.log" >&2
	exit 1
}
grep -i -m1 'debtransform' "$OBS/build.log" || true
mkdir -p "$OBS/debs"
rm -f "$OBS/debs"/*
cp "$BUILDROOT"/usr/src/packages/DEBS/*.deb "$OBS/debs/"
# 1.3 GB of chroot; kept only when the build failed.
rm -rf "$BUILDROOT"
ls "$OBS/debs/"qmail-multi_"$VERSION"-*.deb | head -n 1
