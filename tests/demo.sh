#!/bin/sh
# Demonstration, as the current user, in a scratch directory: build, create
# ten queues with queue-fix, inject messages through qmail-multi (the queue
# program behind it is the test depositor, a faithful qmail-queue), and show
# how many landed in each queue, then queue-stat's view of them. MESSAGES=N changes the count; KEEP=1 keeps
# the scratch directory.
set -eu
cd "$(dirname "$0")/.."

messages=${MESSAGES:-3000}
count=10
split=23

cargo build --quiet --release --bins --example test-qmail-queue
bin=target/release
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qmail-multi-demo.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$scratch"' EXIT
base=$scratch/queue
mkdir "$base"

echo "== queue-fix creates queue1..queue$count under $base (owned by $(id -un))"
status=0
"$bin/queue-fix" --as-invoker -s "$split" --base "$base" --count "$count" >/dev/null || status=$?
[ "$status" -lt 100 ] || { echo "queue-fix failed with status $status" >&2; exit 1; }
"$bin/queue-fix" -N --as-invoker -s "$split" --base "$base" --count "$count"
echo "   queue-fix -N: clean"

echo "== injecting $messages messages through qmail-multi"
printf 'Fdemo@example.org\0Tpostmaster@example.org\0\0' >"$scratch/envelope"
export QUEUE_BASE="$base" QUEUE_COUNT="$count" QUEUE_START=1 CONFSPLIT="$split"
export QUEUEPROG="$PWD/$bin/examples/test-qmail-queue" SYNC=0 QMAILHOME="$scratch"
i=0
failed=0
while [ "$i" -lt "$messages" ]; do
  i=$((i + 1))
  printf 'Subject: demo %s\n\nmessage %s\n' "$i" "$i" >"$scratch/message"
  "$bin/qmail-multi" <"$scratch/message" 1<"$scratch/envelope" || failed=$((failed + 1))
done
unset QUEUE_BASE QUEUE_COUNT QUEUE_START QUEUEPROG QMAILHOME

echo "== messages per queue (mean $((messages / count)))"
total=0
n=1
while [ "$n" -le "$count" ]; do
  landed=$(find "$base/queue$n/mess" -type f | wc -l)
  total=$((total + landed))
  bar=$(printf '%*s' $((landed * 40 / (messages / count) / 2)) '' | tr ' ' '#')
  printf '   queue%-3s %6s %s\n' "$n" "$landed" "$bar"
  n=$((n + 1))
done
echo "   total $total of $messages injected, $failed failed"
"$bin/queue-fix" -N --as-invoker -s "$split" --base "$base" --count "$count"
echo "   queue-fix -N after injection: clean"
echo "== queue-stat: the same queues as an administrator sees them"
"$bin/queue-stat" --base "$base" --count "$count"
[ "$total" -eq "$messages" ] && [ "$failed" -eq 0 ]
