#!/bin/sh
# Prepares the source archives every package build uses, in OUT:
#   qmail-multi-VERSION.tar.xz   the crate (tracked and untracked files of
#                                the worktree, not ignored ones)
#   vendor.tar.xz                `cargo vendor` of Cargo.lock (crates.io is
#                                reachable here; the package builds are not
#                                allowed to reach it)
# Reused while Cargo.lock and the file list are unchanged.
set -eu
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
mkdir -p "$OUT"

lock=$(sha256sum "$ROOT/Cargo.lock" | cut -d' ' -f1)
if [ "$(cat "$OUT/vendor.stamp" 2>/dev/null)" != "$lock" ]; then
	rm -rf "$OUT/vendor" "$OUT/vendor.tar.xz"
	(cd "$ROOT" && cargo vendor --locked --versioned-dirs "$OUT/vendor" >"$OUT/vendor.log" 2>&1) || {
		cat "$OUT/vendor.log" >&2
		exit 1
	}
	tar -C "$OUT" -cf - vendor | xz -T2 -1 >"$OUT/vendor.tar.xz"
	echo "$lock" >"$OUT/vendor.stamp"
fi

rm -rf "$OUT/src" && mkdir -p "$OUT/src/qmail-multi-$VERSION"
files() {
	if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$ROOT" ls-files -z -co --exclude-standard
	else
		(cd "$ROOT" && find . -path ./target -prune -o -path ./vendor -prune -o \
			-path ./.git -prune -o ! -type d -print0)
	fi
}
files | (cd "$ROOT" && tar --null --no-recursion --ignore-failed-read -T - -cf -) |
	tar -C "$OUT/src/qmail-multi-$VERSION" -xf -
tar -C "$OUT/src" -cf - "qmail-multi-$VERSION" | xz -T2 -1 >"$OUT/qmail-multi-$VERSION.tar.xz"
echo "$VERSION"
