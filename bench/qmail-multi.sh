#!/bin/sh
# qmail-multi figures, each against a baseline measured in the same run:
#  (a) burst balance and missing-queue failures: upstream now%count,
#      uniform random, ours (in process, over 10 real queues);
#  (b) per-injection cost: 2,000 injections straight into the test
#      depositor versus through qmail-multi (the depositor fsyncs, as
#      qmail-queue does);
#  (c) the filter path, FILTERARGS=cat.
# Usage: bench/qmail-multi.sh [COUNT]   (default 2000; release build)
set -eu
count=${1:-2000}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins --examples
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qmail-multi-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM
split=23
"$target/examples/multi-bench" queues "$scratch" $split
echo "qmail-multi benchmark: $(nproc) CPUs, scratch on $(df -P "$scratch" | awk 'NR==2 {print $1}')"
"$target/examples/multi-bench" select "$scratch"
CONFSPLIT=$split "$target/examples/multi-bench" inject "$count" \
	"$target/examples/test-qmail-queue" "$target/qmail-multi" "$scratch"
