#!/bin/sh
# Fills OUTDIR with the files to commit to the OBS package (the service
# run adds the two archives). usage: assemble.sh OUTDIR
set -eu
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cp "$HERE/_service" "$HERE/qmail-multi.dsc" "$HERE/build.script" "$OUT/"
cp -L "$HERE/qmail-multi.spec" "$OUT/qmail-multi.spec"
# Members under debian/: debtransform's 1.0 conversion strips that prefix,
# and its 3.0 (quilt) conversion keeps the tar as it is, where dpkg-source
# only takes debian/ from it.
tar -C "$HERE/.." --owner=0 --group=0 --sort=name -cJf "$OUT/debian.tar.xz" debian
