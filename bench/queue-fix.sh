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
#     the price of durability (as root also from a tmpfs, every file copied).
# STRAYS and RETIRE in the environment change those two counts.
# Usage: bench/queue-fix.sh [MESSAGES]   (default 200000; data under
# $BENCH_DIR, default /var/tmp, deleted afterwards). Needs python3 and
# GNU time (/usr/bin/time, Debian package `time`).
set -eu
N=${1:-200000}
SMALL=$((N / 10))
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin queue-fix
QF=$PWD/target/release/queue-fix
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/queue-fix-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

python3 - "$QF" "$WORK" "$N" "$SMALL" "${STRAYS:-50000}" "${RETIRE:-20000}" <<'PY'
import os, sys, time, subprocess, resource, shutil

qf, work, n, small = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
strays, retire_n = int(sys.argv[5]), int(sys.argv[6])
SPLIT = 151

def fill(q, count):
    """Messages as qmail-queue and qmail-send leave them: mess named by its
    inode, info and remote beside it."""
    pid = os.path.join(q, "pid")
    for i in range(count):
        tmp = os.path.join(pid, "bench.%d" % i)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        ino = os.fstat(fd).st_ino
        sub = str(ino % SPLIT)
        os.link(tmp, os.path.join(q, "mess", sub, str(ino)))
        os.unlink(tmp)
        os.write(fd, b"Subject: bench %d\n\nbody\n" % i)
        os.close(fd)
        for d, body in (("info", b"Fbench@example.org\0"), ("remote", b"Trcpt%d@example.net\0" % i)):
            f = os.open(os.path.join(q, d, sub, str(ino)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(f, body)
            os.close(f)

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

# Misname every message: its files renamed to its inode + 1, in that name's
# subdirectory, as an interrupted or buggy tool might leave them.
t = time.monotonic()
for sub in os.listdir(os.path.join(big, "mess")):
    for name in os.listdir(os.path.join(big, "mess", sub)):
        wrong = str(int(name) + 1000000007)
        wsub = str(int(wrong) % SPLIT)
        for d in ("mess", "info", "remote"):
            os.rename(os.path.join(big, d, sub, name), os.path.join(big, d, wsub, wrong))
print("misnamed %d messages in %.1f s (python, for scale)" % (n, time.monotonic() - t))
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
    assert 1 <= p.returncode <= 99, "retire exit %d" % p.returncode
    return wall

tnosync = retire(False)
tsync = retire(True)
print("retire %d messages on one filesystem: %.2f s durable (fsync of every new name's "
      "directory before the old name goes), %.2f s without fsyncs: ratio %.1f, %.0f us per message"
      % (retire_n, tsync, tnosync, tsync / tnosync, (tsync - tnosync) / retire_n * 1e6))
if os.geteuid() == 0:
    tnosync = retire(False, across=True)
    tsync = retire(True, across=True)
    print("retire %d messages from a tmpfs (copied): %.2f s durable (fsync of every copy and "
          "directory before the source goes), %.2f s without fsyncs: ratio %.1f, %.0f us per message"
          % (retire_n, tsync, tnosync, tsync / tnosync, (tsync - tnosync) / retire_n * 1e6))
else:
    print("retire across filesystems: skipped (mounting a tmpfs needs root)")
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
