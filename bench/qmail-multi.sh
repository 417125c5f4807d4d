#!/bin/sh
# qmail-multi figures, each against a baseline measured in the same run:
#  (a) burst balance and missing-queue failures: upstream now%count,
#      uniform random, ours (in process, over 10 real queues);
#  (b) per-injection cost: COUNT injections straight into the test
#      depositor versus through qmail-multi (the depositor fsyncs, as
#      qmail-queue does);
#  (c) the filter path, FILTERARGS=cat;
#  (d) start-up: ours/C per call against a small C reference multiplexer
#      built here with cc -O2 (reads the variables, stats the queues, sets
#      QUEUEDIR, execs; with DYNAMIC_QUEUE it reads qscheduler's segments
#      as upstream does), both in front of a trivial C queue program,
#      paired and interleaved, for the no-filter path and DYNAMIC_QUEUE,
#      for qmail-multi as the packages build it (static) and as a plain
#      `cargo build` makes it (dynamic);
#  (e) DYNAMIC_QUEUE selection over 10 and 100 queues against one injection.
# (d, DYNAMIC_QUEUE) and (e) need root (qscheduler's segments are root's)
# and no running qscheduler; they are skipped otherwise.
# Usage: bench/qmail-multi.sh [COUNT]   (default 2000; release build)
set -eu
count=${1:-2000}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins --examples
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qmail-multi-bench.XXXXXX")
# Both builds of qmail-multi: plain `cargo build` (dynamic) and the static
# one the packages ship (packaging/debian/rules, the RPM spec).
cp "$target/qmail-multi" "$scratch/qmail-multi-dynamic"
cargo rustc --release --quiet --bin qmail-multi -- -C target-feature=+crt-static
cp "$target/qmail-multi" "$scratch/qmail-multi-static"
shm_made=
cleanup() {
	for f in $shm_made; do rm -f "$f"; done
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
split=23
bench="$target/examples/multi-bench"
"$bench" queues "$scratch" $split
echo "qmail-multi benchmark: $(nproc) CPUs, scratch on $(df -P "$scratch" | awk 'NR==2 {print $1}')"
"$bench" select "$scratch"
CONFSPLIT=$split "$bench" inject "$count" \
	"$target/examples/test-qmail-queue" "$scratch/qmail-multi-static" "$scratch"

# (d) The C reference and a trivial queue program.
cat > "$scratch/ref.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* Least loaded queue (0-based) from qscheduler's segments, -1 if none. */
static int least_loaded(void)
{
	int fd, count, q[5], best = -1, j;
	double min = 0, l, r;
	char name[64];

	if ((fd = open("/dev/shm/qscheduler", O_RDONLY)) == -1)
		return -1;
	if (read(fd, &count, sizeof count) != sizeof count)
		count = 0;
	close(fd);
	for (j = 0; j < count; j++) {
		snprintf(name, sizeof name, "/dev/shm/queue%d", j + 1);
		if ((fd = open(name, O_RDONLY)) == -1)
			return -1;
		if (read(fd, q, sizeof q) != sizeof q)
			q[4] = 1;
		close(fd);
		if (q[4] || q[2] <= 0 || q[3] <= 0)
			continue;
		l = (double) q[0] / q[2];
		r = (double) q[1] / q[3];
		if (r > l)
			l = r;
		if (best == -1 || l < min)
			min = l, best = j;
	}
	return best;
}

int main(int argc, char **argv)
{
	char *base = getenv("QUEUE_BASE"), *prog = getenv("QUEUEPROG"), *s;
	char path[4096];
	int count = 10, start = 1, n = -1, i;
	unsigned long long min_free = 0;
	struct stat st;
	struct statvfs sv;

	(void) argc;
	if ((s = getenv("QUEUE_COUNT")))
		count = atoi(s);
	if ((s = getenv("QUEUE_START")))
		start = atoi(s);
	if ((s = getenv("MIN_FREE")))
		min_free = strtoull(s, 0, 10);
	if (!base || !prog || count < 1)
		_exit(55);
	if (chdir((s = getenv("QMAILHOME")) ? s : "/"))
		_exit(61);
	if (getenv("DYNAMIC_QUEUE"))
		n = least_loaded();
	if (n < 0) {
		srandom(getpid() ^ time(0));
		n = random() % count;
	}
	for (i = 0; i < count; i++) {
		snprintf(path, sizeof path, "%s/queue%d", base, start + (n + i) % count);
		if (stat(path, &st) || !S_ISDIR(st.st_mode) || statvfs(path, &sv))
			continue;
		if (sv.f_files && !sv.f_favail)
			continue;
		if ((unsigned long long) sv.f_bavail * sv.f_frsize < min_free)
			continue;
		setenv("QUEUEDIR", path, 1);
		argv[0] = prog;
		execv(prog, argv);
		_exit(120);
	}
	_exit(62);
}
C
cat > "$scratch/qq.c" <<'C'
#include <unistd.h>
int main(void)
{
	char buf[4096];
	while (read(0, buf, sizeof buf) > 0) ;
	while (read(1, buf, sizeof buf) > 0) ;
	return 0;
}
C
cc -O2 -o "$scratch/qmail-multi-ref" "$scratch/ref.c"
cc -O2 -o "$scratch/qq" "$scratch/qq.c"
startups=$((count < 500 ? 500 : count))
echo "(d) start-up per call, $startups pairs, in front of a trivial queue program (medians):"
for build in static dynamic; do
	echo "  qmail-multi as built $build:"
	"$bench" startup "$startups" "$scratch/qq" "$scratch/qmail-multi-$build" "$scratch/qmail-multi-ref" "$scratch" plain
done

# qscheduler's segments, when we may make them: root-owned, mode 0644.
segments() { # COUNT
	perl -e 'print pack("i", $ARGV[0])' "$1" > /dev/shm/qscheduler
	shm_made="$shm_made /dev/shm/qscheduler"
	i=1
	while [ "$i" -le "$1" ]; do
		# Loads differ per queue, none disabled.
		perl -e 'print pack("i5", $ARGV[0] % 7, $ARGV[0] % 5, 10, 10, 0)' "$i" > "/dev/shm/queue$i"
		shm_made="$shm_made /dev/shm/queue$i"
		i=$((i + 1))
	done
	chmod 0644 /dev/shm/qscheduler /dev/shm/queue*
}
if [ "$(id -u)" != 0 ]; then
	echo "    DYNAMIC_QUEUE     : skipped: qscheduler's segments are root's; run as root"
elif [ -e /dev/shm/qscheduler ]; then
	echo "    DYNAMIC_QUEUE     : skipped: /dev/shm/qscheduler exists (a qscheduler runs here)"
else
	segments 10
	for build in static dynamic; do
		echo "  qmail-multi as built $build:"
		"$bench" startup "$startups" "$scratch/qq" "$scratch/qmail-multi-$build" "$scratch/qmail-multi-ref" "$scratch" dynamic
	done
	echo "(e) DYNAMIC_QUEUE selection (read the segments, order, probe) in process:"
	CONFSPLIT=$split "$bench" dynamic-cost 10 "$scratch" "$target/examples/test-qmail-queue" "$scratch/qmail-multi-static"
	big="$scratch/hundred"
	mkdir "$big"
	"$bench" queues-n "$big" $split 100
	segments 100
	CONFSPLIT=$split "$bench" dynamic-cost 100 "$big" "$target/examples/test-qmail-queue" "$scratch/qmail-multi-static"
fi
