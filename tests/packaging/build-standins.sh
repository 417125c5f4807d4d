#!/bin/sh
# Builds the stand-in packages of tests/pkg_packaging.rs's scenarios beside
# IndiMail, into OUT/standin:
#   indimail-mta-V-1.noarch.rpm, indimail-mta_V-1_all.deb  for V in 3.1.0
#     3.1.1: IndiMail's collision paths (indimail-standin/indimail-mta.spec)
#     and its upgrade refresh (indimail-standin/svctool)
#   host-base-1-1.noarch.rpm: no files; Provides what the RPMs given and
#     the stand-ins require from the base system (a scratch rpm database on
#     Debian is empty; the files are the host's underneath)
# usage: build-standins.sh OUT RPM... Prints the output directory.
set -eu
OUT=$(mkdir -p "$1/standin" && cd "$1/standin" && pwd)
shift
REQUIRES=$OUT/host-base.requires
{
	for rpm in "$@"; do rpm -qp --requires "$rpm"; done
	# The stand-ins' %post interpreter.
	echo /bin/sh
} | sed 's/ *$//' | grep -v -e '^rpmlib(' -e '^config(' -e '^$' | sort -u >"$REQUIRES"
HERE=$(cd "$(dirname "$0")" && pwd)/indimail-standin
TOP=$OUT/rpmbuild
rm -rf "$TOP" "$OUT"/*.rpm "$OUT"/*.deb && mkdir -p "$TOP"

for V in 3.1.0 3.1.1; do
	T=$OUT/tree-$V
	rm -rf "$T" && mkdir -p "$T/usr/sbin" "$T/usr/bin" "$T/usr/share/man/man8" "$T/usr/libexec/indimail"
	for p in qmail-multi qmail-queue qmail-dkim; do
		printf '#!/bin/sh\n# indimail-mta %s stand-in: %s\nexec /bin/true\n' "$V" "$p" >"$T/usr/sbin/$p"
	done
	printf '#!/bin/sh\n# indimail-mta %s stand-in: queue-fix\nexit 0\n' "$V" >"$T/usr/bin/queue-fix"
	cp "$HERE/svctool" "$T/usr/sbin/svctool"
	chmod 755 "$T"/usr/sbin/* "$T/usr/bin/queue-fix"
	install -m 0644 "$HERE/refresh-on-upgrade" "$T/usr/libexec/indimail/refresh-on-upgrade"
	for p in qmail-multi queue-fix; do
		printf '.TH %s 8 "" "indimail-mta %s stand-in"\n' "$p" "$V" | gzip -n9 >"$T/usr/share/man/man8/$p.8.gz"
	done

	rpmbuild -bb --quiet --define "_topdir $TOP" --define "standin_version $V" \
		--define "standin_tree $T" "$HERE/indimail-mta.spec" >"$TOP/build-$V.log" 2>&1 || {
		cat "$TOP/build-$V.log" >&2
		exit 1
	}

	D=$OUT/deb-$V
	rm -rf "$D" && mkdir -p "$D/DEBIAN"
	cp -a "$T/." "$D/"
	cat >"$D/DEBIAN/control" <<CONTROL
Package: indimail-mta
Version: $V-1
Architecture: all
Maintainer: qmail-multi tests <tests@packages.invalid>
Description: stand-in for IndiMail's indimail-mta (tests only)
 Owns IndiMail's paths; not IndiMail.
CONTROL
	# debian/indimail-mta.postinst.in: "configure" with the old version
	# in $2 is its upgrade branch, which refreshes the services.
	cat >"$D/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -n "${2:-}" ]; then
	. /usr/libexec/indimail/refresh-on-upgrade
fi
POSTINST
	chmod 755 "$D/DEBIAN/postinst"
	(cd "$D" && find usr -type f -exec md5sum {} + | sort -k2) >"$D/DEBIAN/md5sums"
	dpkg-deb --root-owner-group -Zxz -b "$D" "$OUT/indimail-mta_$V-1_all.deb" >/dev/null
done

cat >"$TOP/host-base.spec" <<SPEC
Name: host-base
Version: 1
Release: 1
Summary: the base system the scratch root borrows from the host (tests only)
License: GPL-3.0-or-later
BuildArch: noarch
$(sed 's/^/Provides: /' "$REQUIRES")
%description
Provides what the packages under test require from the base system.
%files
SPEC
rpmbuild -bb --quiet --define "_topdir $TOP" "$TOP/host-base.spec" >"$TOP/build-base.log" 2>&1 || {
	cat "$TOP/build-base.log" >&2
	exit 1
}
find "$TOP/RPMS" -name '*.rpm' -exec cp {} "$OUT/" \;
echo "$OUT"
