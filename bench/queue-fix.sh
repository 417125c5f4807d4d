#!/bin/sh
# queue-fix benchmark: prints figures as ratios against baselines measured
# in the same run.
#   - `queue-fix -N` on a 200,000-message queue (mess + info + remote each)
#     against `find QUEUE -printf '%i %u %g %m %y\n' >/dev/null`, the
#     kernel-bound floor for one walk of the same tree (goal: ratio <= 1.0);
#   - peak RSS of `queue-fix -N` at 20,000 and 200,000 messages (goal: flat,
#     < 32 MB);
#   - time to repair 200,000 misnamed messages;
#   - `queue-fix -N` on a queue holding 50,000 strays (files in info with no
#     mess) against the same `find -printf` walk (goal: ratio <= 2.0);
#   - `--retire` of 20,000 messages (one filesystem) with the fsyncs that
#     make every move durable, against the same retire with them switched
#     off by the undocumented benchmark hook QUEUE_FIX_UNSAFE_NO_FSYNC=1:
#     the price of durability; as root also from a tmpfs into $BENCH_DIR,
#     every file copied and made durable in batches (goal: ratio <= 1.5);
#   - with BIG set (e.g. BIG=1000000), on a tmpfs (as root one of its own,
#     mounted for the run without an inode limit; else $SCALE_DIR, default
#     /dev/shm), at MESSAGES and at BIG messages: `queue-fix -N` (against
#     find -printf), a repair of that many misnamed messages, and
#     `--retire` of that many from queue11 into queue1..queue10: wall time,
#     peak RSS (/usr/bin/time -f %M), and the ratio of the BIG time to the
#     MESSAGES time (goal: <= 5.5 at 5 times the messages; RSS flat,
#     < 16 MB); for the repair and the retire also their kernel floor,
#     the same renames and links made bare by examples/move-floor.rs on
#     the same queues, and how much faster than the floor queue-fix grows
#     (on tmpfs the kernel's own work per name grows with the names it
#     holds). About 12 GB of tmpfs at 1,000,000.
# STRAYS and RETIRE in the environment change those two counts.
# Usage: [BIG=1000000] bench/queue-fix.sh [MESSAGES]   (default 200000;
# data under $BENCH_DIR, default /var/tmp, deleted afterwards). Needs
# python3 and GNU time (/usr/bin/time, Debian package `time`).
set -eu
N=${1:-200000}
SMALL=$((N / 10))
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin queue-fix --example stat-bench-fill --example move-floor
QF=$PWD/target/release/queue-fix
FILL=$PWD/target/release/examples/stat-bench-fill
FLOOR=$PWD/target/release/examples/move-floor
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/queue-fix-bench.XXXXXX")
SCALE=
MOUNTED=
if [ -n "${BIG:-}" ]; then
  if [ -z "${SCALE_DIR:-}" ] && [ "$(id -u)" = 0 ]; then
    SCALE=$(mktemp -d /var/tmp/queue-fix-scale.XXXXXX)
    mount -t tmpfs -o size=${TMPFS_SIZE:-20g},nr_inodes=0,mode=0700 tmpfs "$SCALE"
    MOUNTED=1
  else
    SCALE=$(mktemp -d "${SCALE_DIR:-/dev/shm}/queue-fix-scale.XXXXXX")
  fi
fi
cleanup() {
  rm -rf "$WORK"
  if [ -n "$MOUNTED" ]; then umount "$SCALE" && rmdir "$SCALE"; elif [ -n "$SCALE" ]; then rm -rf "$SCALE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 - "$QF" "$WORK" "$N" "$SMALL" "${STRAYS:-50000}" "${RETIRE:-20000}" "$FILL" "${BIG:-0}" "$SCALE" "$FLOOR" <<'PY'
import os, sys, time, subprocess, resource, shutil

qf, work, n, small = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
strays, retire_n = int(sys.argv[5]), int(sys.argv[6])
filler, big_n, scale_dir, floor = sys.argv[7], int(sys.argv[8]), sys.argv[9], sys.argv[10]
SPLIT = 151

def fill(q, count, misnamed=False):
    """Messages as qmail-queue and qmail-send leave them: mess named by its
    inode, info and remote beside it (misnamed: every name its inode +
    1000000007, as an interrupted or buggy tool might leave them)."""
    subprocess.run([filler, q, str(count), str(SPLIT)] + (["misnamed"] if misnamed else []),
                   check=True)

def timed(argv, out=subprocess.DEVNULL):
    """Wall time and the child's peak RSS (KiB) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    p = subprocess.run(argv, stdout=out, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t
    return wall, p.returncode

def peak_rss(argv):
    """Peak RSS in KiB by GNU time (a small parent, so the figure is the
    program's own, not a forked interpreter's)."""
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    return int(p.stderr.strip().splitlines()[-1])

def best(argv, runs=5):
    return min(timed(argv)[0] for _ in range(runs))

queues = {}
for label, count in (("small", small), ("big", n)):
    q = os.path.join(work, "queue-" + label)
    subprocess.run([qf, "--as-invoker", q], stdout=subprocess.DEVNULL, check=False)
    t = time.monotonic()
    fill(q, count)
    print("filled %s with %d messages in %.1f s" % (q, count, time.monotonic() - t))
    queues[label] = q

big = queues["big"]
assert timed([qf, "--as-invoker", "-N", big])[1] == 0, "the fresh queue is not clean"
# Warm the caches once for both, then best of 5 each, interleaved.
timed(["find", big, "-printf", "%i %u %g %m %y\n"])
tf = min(timed(["find", big, "-printf", "%i %u %g %m %y\n"])[0] for _ in range(5))
tq = best([qf, "--as-invoker", "-N", big])
print("check %d messages: queue-fix -N %.3f s, find -printf %.3f s, ratio %.2f (goal <= 1.0)"
      % (n, tq, tf, tq / tf))
# A stricter floor: numeric ids, so no user/group name lookups in find.
tn = min(timed(["find", big, "-printf", "%i %U %G %m %y\n"])[0] for _ in range(5))
print("  stricter floor find -printf '%%i %%U %%G %%m %%y': %.3f s, ratio %.2f" % (tn, tq / tn))
rs = peak_rss([qf, "--as-invoker", "-N", queues["small"]])
rb = peak_rss([qf, "--as-invoker", "-N", big])
print("peak RSS of queue-fix -N: %d KiB at %d messages, %d KiB at %d messages (ratio %.2f, goal flat and < 32768 KiB)"
      % (rs, small, rb, n, rb / rs))

# Misnamed messages: every file named by its inode + 1000000007.
shutil.rmtree(big)
subprocess.run([qf, "--as-invoker", big], stdout=subprocess.DEVNULL, check=False)
fill(big, n, misnamed=True)
tr, code = timed([qf, "--as-invoker", big])
print("repair %d misnamed messages: %.2f s (exit %d), %.1f us per message; vs find walk %.1fx"
      % (n, tr, code, tr / n * 1e6, tr / tf))
assert timed([qf, "--as-invoker", "-N", big])[1] == 0, "not clean after the repair"
print("after the repair queue-fix -N exits 0")
shutil.rmtree(big)

# Strays: files in info whose mess does not exist, in their right
# subdirectories (each is looked up where its message would be).
sq = os.path.join(work, "queue-strays")
subprocess.run([qf, "--as-invoker", sq], stdout=subprocess.DEVNULL, check=False)
for i in range(strays):
    name = 1000000000 + i
    f = os.open(os.path.join(sq, "info", str(name % SPLIT), str(name)),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(f)
timed(["find", sq, "-printf", "%i %u %g %m %y\n"])
tf = min(timed(["find", sq, "-printf", "%i %u %g %m %y\n"])[0] for _ in range(5))
ts = best([qf, "--as-invoker", "-N", sq])
print("check %d strays: queue-fix -N %.3f s, find -printf %.3f s, ratio %.2f (goal <= 2.0)"
      % (strays, ts, tf, ts / tf))
shutil.rmtree(sq)

# Retire: queue2 (outside --count 1) moves into queue1, same filesystem.
# As root, also across filesystems: queue2 on a tmpfs, so every file is
# copied (and each copy synced) instead of linked.
def retire(durable, across=False):
    b = os.path.join(work, "retire-base")
    os.makedirs(b)
    if across:
        os.makedirs(os.path.join(b, "queue2"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs",
                        os.path.join(b, "queue2")], check=True)
    try:
        return retire_in(b, durable)
    finally:
        if across:
            subprocess.run(["umount", os.path.join(b, "queue2")])
        shutil.rmtree(b)

def retire_in(b, durable):
    for q in ("queue1", "queue2"):
        subprocess.run([qf, "--as-invoker", os.path.join(b, q)],
                       stdout=subprocess.DEVNULL, check=False)
    fill(os.path.join(b, "queue2"), retire_n)
    subprocess.run(["sync"])
    env = dict(os.environ)
    if not durable:
        env["QUEUE_FIX_UNSAFE_NO_FSYNC"] = "1"
    t = time.monotonic()
    p = subprocess.run([qf, "--as-invoker", "--base", b, "--count", "1", "--retire"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.monotonic() - t
    assert 0 <= p.returncode <= 99, "retire exit %d" % p.returncode
    return wall

tnosync = retire(False)
tsync = retire(True)
print("retire %d messages on one filesystem: %.2f s durable (fsync of every new name's "
      "directory before the old name goes), %.2f s without fsyncs: ratio %.1f, %.0f us per message"
      % (retire_n, tsync, tnosync, tsync / tnosync, (tsync - tnosync) / retire_n * 1e6))
if os.geteuid() == 0:
    tnosync = retire(False, across=True)
    tsync = retire(True, across=True)
    print("retire %d messages from a tmpfs (copied): %.2f s durable (copies made durable in "
          "batches: one syncfs after the copies, links and renames of 8,192 names, before the sources go), %.2f s "
          "without fsyncs: ratio %.2f (goal <= 1.5), %.0f us per message"
          % (retire_n, tsync, tnosync, tsync / tnosync, (tsync - tnosync) / retire_n * 1e6))
else:
    print("retire across filesystems: skipped (mounting a tmpfs needs root)")

# Scale: the same work at MESSAGES and at BIG messages on a tmpfs (the
# kernel's own cost of a file is then the smallest, so what grows with the
# queue is the program's own).
def measured(argv):
    """Wall time, peak RSS (KiB, by GNU time) and exit status of one run."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t
    return wall, int(p.stderr.strip().splitlines()[-1]), p.returncode

def count_mess(q):
    return sum(len(os.listdir(os.path.join(q, "mess", sub))) for sub in os.listdir(os.path.join(q, "mess")))

def new_queue(q):
    subprocess.run([qf, "--as-invoker", q], stdout=subprocess.DEVNULL, check=False)

if big_n:
    got = {}
    for size in (n, big_n):
        q = os.path.join(scale_dir, "queue1")
        new_queue(q)
        fill(q, size)
        walk = ["find", q, "-printf", "%i %u %g %m %y\n"]
        timed(walk)
        tf = min(timed(walk)[0] for _ in range(3))
        measured([qf, "--as-invoker", "-N", q])
        runs = [measured([qf, "--as-invoker", "-N", q]) for _ in range(3)]
        assert all(r[2] == 0 for r in runs), "the fresh queue is not clean"
        got[size, "check"] = (min(r[0] for r in runs), max(r[1] for r in runs), tf)
        shutil.rmtree(q)

        new_queue(q)
        fill(q, size, misnamed=True)
        tf = min(timed(walk)[0] for _ in range(3))
        wall, rss, code = measured([qf, "--as-invoker", q])
        assert code <= 99, "repair exit %d" % code
        assert timed([qf, "--as-invoker", "-N", q])[1] == 0, "not clean after the repair"
        assert count_mess(q) == size
        got[size, "repair"] = (wall, rss, tf)
        shutil.rmtree(q)
        # The kernel floor: the same renames, bare (examples/move-floor.rs).
        new_queue(q)
        fill(q, size, misnamed=True)
        got[size, "repair floor"] = float(subprocess.run(
            [floor, "repair", q, str(SPLIT)], check=True, capture_output=True, text=True).stdout)
        shutil.rmtree(q)

        b = os.path.join(scale_dir, "retire-base")
        os.makedirs(b)
        for i in range(1, 12):
            new_queue(os.path.join(b, "queue%d" % i))
        fill(os.path.join(b, "queue11"), size)
        tf = min(timed(["find", os.path.join(b, "queue11"), "-printf", "%i %u %g %m %y\n"])[0]
                 for _ in range(3))
        wall, rss, code = measured([qf, "--as-invoker", "--base", b, "--count", "10", "--retire"])
        assert code <= 99, "retire exit %d" % code
        moved = [count_mess(os.path.join(b, "queue%d" % i)) for i in range(1, 11)]
        assert sum(moved) == size and count_mess(os.path.join(b, "queue11")) == 0, moved
        got[size, "retire"] = (wall, rss, tf)
        shutil.rmtree(b)
        os.makedirs(b)
        for i in range(1, 12):
            new_queue(os.path.join(b, "queue%d" % i))
        fill(os.path.join(b, "queue11"), size)
        got[size, "retire floor"] = float(subprocess.run(
            [floor, "retire", b, str(SPLIT), "10"], check=True, capture_output=True, text=True).stdout)
        shutil.rmtree(b)
        for what, label in (("check", "queue-fix -N"), ("repair", "repair of misnamed"),
                            ("retire", "--retire into 10 queues")):
            wall, rss, tf = got[size, what]
            print("tmpfs, %d messages: %s %.2f s, peak RSS %d KiB; find -printf walk %.2f s, ratio %.2f"
                  % (size, label, wall, rss, tf, wall / tf))
            if (size, what + " floor") in got:
                fl = got[size, what + " floor"]
                print("  kernel floor of its moves (examples/move-floor.rs) %.2f s; queue-fix / floor %.2f"
                      % (fl, wall / fl))
    for what, label in (("check", "queue-fix -N"), ("repair", "repair of misnamed"),
                        ("retire", "--retire into 10 queues")):
        (ws, rs, _), (wb, rb, _) = got[n, what], got[big_n, what]
        print("scale %d -> %d messages (%.1fx): %s %.2f s -> %.2f s, ratio %.2f (goal <= 5.5 at 5x); "
              "peak RSS %d -> %d KiB (goal flat, < 16384)"
              % (n, big_n, big_n / n, label, ws, wb, wb / ws, rs, rb))
        if (n, what + " floor") in got:
            fs, fb = got[n, what + " floor"], got[big_n, what + " floor"]
            print("  its kernel floor %.2f s -> %.2f s, ratio %.2f: queue-fix grows %.2f times as fast as the floor"
                  % (fs, fb, fb / fs, (wb / ws) / (fb / fs)))
PY

# --- BIGTODO conversion (separate block) -----------------------------------
# Converting todo/intd between split (BIGTODO=1) and flat (BIGTODO=0) with
# CONVERT messages pending (default 20,000: mess plus the todo/intd pair
# qmail-queue leaves), each direction best of 3, durable (every moved
# name's directory fsynced before the next directory's moves), against two
# baselines of the same run: a re-split of the same queue (-s 151 -> 150,
# every message's mess, intd and todo moved) and the `find -printf` walk.
python3 - "$QF" "$WORK" "${CONVERT:-20000}" <<'PY'
import os, sys, time, subprocess, shutil

qf, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
q = os.path.join(work, "queue-convert")

def qfix(big_todo, split, *args):
    env = dict(os.environ, BIGTODO=str(big_todo))
    t = time.monotonic()
    p = subprocess.run([qf, "--as-invoker", "-s", str(split)] + list(args) + [q], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t, p.returncode

qfix(1, 151)
pid = os.path.join(q, "pid")
for i in range(n):
    tmp = os.path.join(pid, "bench.%d" % i)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    ino = os.fstat(fd).st_ino
    sub = str(ino % 151)
    os.link(tmp, os.path.join(q, "mess", sub, str(ino)))
    os.unlink(tmp)
    os.write(fd, b"Subject: bench %d\n\nbody\n" % i)
    os.close(fd)
    intd = os.path.join(q, "intd", sub, str(ino))
    f = os.open(intd, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(f, b"u0\0p1\0Fbench@example.org\0Trcpt%d@example.net\0\0" % i)
    os.close(f)
    os.link(intd, os.path.join(q, "todo", sub, str(ino)))
subprocess.run(["sync"])
assert qfix(1, 151, "-N")[1] == 0, "the filled queue is not clean"

def files(d):
    return sum(len(fs) for _, _, fs in os.walk(os.path.join(q, d)))

to_flat, to_split = [], []
for _ in range(3):
    t, code = qfix(0, 151)
    assert code < 100 and qfix(0, 151, "-N")[1] == 0, "split -> flat left problems"
    assert not any(e.is_dir() for e in os.scandir(os.path.join(q, "todo")))
    to_flat.append(t)
    t, code = qfix(1, 151)
    assert code < 100 and qfix(1, 151, "-N")[1] == 0, "flat -> split left problems"
    to_split.append(t)
assert files("todo") == n and files("intd") == n and files("mess") == n, "a message was lost"
tfind = min(
    (lambda t: (subprocess.run(["find", q, "-printf", "%i %u %g %m %y\n"], stdout=subprocess.DEVNULL),
                time.monotonic() - t)[1])(time.monotonic()) for _ in range(5))
# Baseline: the re-split of the same messages there and back (mess, intd
# and todo each moved), the older kind of bulk move.
resplit = []
for split in (150, 151):
    t, code = qfix(1, split)
    assert code < 100 and qfix(1, split, "-N")[1] == 0, "re-split left problems"
    resplit.append(t)
tr = min(resplit)
for label, ts in (("split -> flat (BIGTODO=1 -> 0)", to_flat), ("flat -> split (BIGTODO=0 -> 1)", to_split)):
    t = min(ts)
    print("convert %d messages %s: %.2f s, %.1f us per message; vs re-split %.2f s: ratio %.2f; "
          "vs find walk %.3f s: ratio %.1f" % (n, label, t, t / n * 1e6, tr, t / tr, tfind, t / tfind))
shutil.rmtree(q)
PY
