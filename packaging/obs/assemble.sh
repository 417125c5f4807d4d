#!/bin/sh
# Fills OUTDIR with the files to commit to the OBS package (the service
# run adds the two archives). usage: assemble.sh OUTDIR
set -eu
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cp "$HERE/_service" "$HERE/qmail-multi.dsc" "$OUT/"
cp -L "$HERE/qmail-multi.spec" "$OUT/qmail-multi.spec"
tar -C "$HERE/../debian" --owner=0 --group=0 -cJf "$OUT/debian.tar.xz" .
