#!/usr/bin/env bash
# queue-stat benchmark: one queue grown through the sizes in $SIZES
# (mess + info + remote each, as qmail-send leaves them, injected over the
# last 5 hours), and at each size, in the same run:
#   - `queue-stat QUEUE` against the shell way of getting depth, sizes and
#     the oldest age: find QUEUE/mess -type f -printf '%T@ %s\n' | sort -n | wc -l
#     (best of 5 each after one warm-up; goal: ratio <= 0.5), wall time and
#     CPU time (user + system, the figure least disturbed by other load);
#   - the peak RSS of queue-stat (/usr/bin/time -f %M; goal: < 16 MB and
#     flat);
#   - at every size above $REF (default 200000, when it is one of the
#     sizes): queue-stat's time as a multiple of its time at $REF (goal:
#     linear, <= 5.5 at 5 times the messages).
# Usage: SIZES="50000 200000 1000000" bench/queue-stat.sh
#   (default SIZES="50000 200000", quick; ascending).
# Data goes on a tmpfs: as root one of its own, mounted for the run (no
# inode limit: /dev/shm allows only about as many inodes as RAM pages / 2,
# and 1,000,000 messages take 3,000,000 inodes and about 12 GB), else
# $BENCH_DIR (default /dev/shm); deleted afterwards. Needs GNU time
# (/usr/bin/time, Debian package `time`).
set -euo pipefail
SIZES=${SIZES:-50000 200000}
REF=${REF:-200000}
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --bin queue-stat --bin queue-fix --example stat-bench-fill
QS=$PWD/target/release/queue-stat
QF=$PWD/target/release/queue-fix
FILL=$PWD/target/release/examples/stat-bench-fill
if [ -z "${BENCH_DIR:-}" ] && [ "$(id -u)" = 0 ]; then
  WORK=$(mktemp -d /var/tmp/queue-stat-bench.XXXXXX)
  mount -t tmpfs -o size=${TMPFS_SIZE:-20g},nr_inodes=0,mode=0700 tmpfs "$WORK"
  trap 'umount "$WORK"; rmdir "$WORK"' EXIT
else
  WORK=$(mktemp -d "${BENCH_DIR:-/dev/shm}/queue-stat-bench.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
fi
trap 'exit 130' INT TERM
Q=$WORK/queue1
"$QF" --as-invoker "$Q" >/dev/null || true
"$QF" --as-invoker -N "$Q" >/dev/null
echo "queue $Q on $(stat -f -c %T "$WORK"), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# One run of a shell command line, output discarded: "wall cpu" in
# seconds (wall from the clock in ns; cpu = user + system of it and
# everything it ran, by GNU time).
run() {
  local t0 t1 cpu
  t0=$(date +%s%N)
  cpu=$(/usr/bin/time -f '%U %S' sh -c "$1" 2>&1 >/dev/null | tail -n1 | awk '{ printf "%.2f", $1 + $2 }')
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v c="$cpu" 'BEGIN { printf "%.4f %s\n", (b - a) / 1e9, c }'
}
# Best of 5 (wall and cpu each their minimum): load from other processes
# only ever adds time.
best() {
  for _ in 1 2 3 4 5; do run "$1"; done | sort -n | awk 'NR == 1 { w = $1 } { c = (NR == 1 || $2 < c) ? $2 : c } END { print w, c }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

have=0
declare -A WALL RSS
for n in $SIZES; do
  t0=$(date +%s)
  "$FILL" "$Q" $((n - have)) 151
  have=$n
  echo "filled to $n messages in $(($(date +%s) - t0)) s"
  # Both must see every message.
  got=$("$QS" --prometheus "$Q" | awk '/^qmail_queue_messages\{/ { print $2 }')
  found=$(find "$Q/mess" -type f -printf '%T@ %s\n' | sort -n | wc -l)
  [ "$got" = "$n" ] && [ "$found" = "$n" ] || { echo "count mismatch: queue-stat $got, find $found, expected $n"; exit 1; }
  STAT="'$QS' '$Q'"
  FIND="find '$Q/mess' -type f -printf '%T@ %s\n' | sort -n | wc -l"
  run "$STAT" >/dev/null
  run "$FIND" >/dev/null
  read -r ws cs <<<"$(best "$STAT")"
  read -r wf cf <<<"$(best "$FIND")"
  WALL[$n]=$ws
  RSS[$n]=$(/usr/bin/time -f %M "$QS" "$Q" 2>&1 >/dev/null | tail -n1)
  echo "$n messages: queue-stat $ws s, find|sort|wc $wf s, ratio $(ratio "$ws" "$wf") (goal <= 0.5);" \
    "CPU time $cs s vs $cf s, ratio $(ratio "$cs" "$cf"); queue-stat peak RSS ${RSS[$n]} KiB (goal < 16384)"
done
if [ -n "${WALL[$REF]:-}" ]; then
  for n in $SIZES; do
    [ "$n" -gt "$REF" ] || continue
    echo "scale $REF -> $n messages ($(ratio "$n" "$REF")x): queue-stat time ${WALL[$REF]} s -> ${WALL[$n]} s, ratio $(ratio "${WALL[$n]}" "${WALL[$REF]}") (goal <= 5.5 at 5x);" \
      "peak RSS ${RSS[$REF]} KiB -> ${RSS[$n]} KiB (goal flat, < 16384)"
  done
fi
