//! The kernel's own cost of a repair's and a retire's moves, for
//! `bench/queue-fix.sh` (never packaged): the bare system calls queue-fix
//! makes per message, in the order it makes them, with nothing checked,
//! planned, printed or synced. Its growth from one queue size to another
//! is the floor for queue-fix's own (on tmpfs the kernel's work per name
//! grows with the number of names it holds: dentry hash chains, the
//! directories' offset trees, the caches).
//!
//! `move-floor repair QUEUE SPLIT` — a queue filled by `stat-bench-fill
//! ... misnamed`: every `mess` file stat'ed as its bucket's listing gives
//! it, then it and its `info` and `remote` renamed to the inode's name in
//! the inode's bucket.
//!
//! `move-floor retire BASE SPLIT COUNT` — `BASE/queue<COUNT+1>` filled by
//! `stat-bench-fill` moved into `BASE/queue1..queue<COUNT>`: each `mess`
//! file stat'ed, linked into its destination, `info` and `remote` renamed
//! there, the old `mess` names removed 1,024 at a time.
//!
//! Prints the seconds the moves took.

use nix::fcntl::{openat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

fn dir(path: &Path) -> OwnedFd {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of one bucket, as its listing gives them.
fn names(fd: &OwnedFd) -> impl Iterator<Item = OsString> {
    let dup = openat(fd, ".", OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    let mut d = nix::dir::Dir::from_fd(dup).unwrap();
    let all: Vec<OsString> = d
        .iter()
        .map(|e| OsStr::from_bytes(e.unwrap().file_name().to_bytes()).to_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    all.into_iter()
}

/// `dirs[k][s]`: directory `kind[k]/s` of a queue.
fn buckets(queue: &Path, split: u64) -> Vec<Vec<OwnedFd>> {
    ["mess", "info", "remote"]
        .iter()
        .map(|k| {
            (0..split)
                .map(|s| dir(&queue.join(k).join(s.to_string())))
                .collect()
        })
        .collect()
}

fn repair(queue: &Path, split: u64) -> usize {
    let q = buckets(queue, split);
    let mut moved = 0;
    for s in 0..split as usize {
        // Read whole first: names renamed into a later bucket are then
        // seen there again, already right, as queue-fix sees them.
        for name in names(&q[0][s]) {
            let Ok(st) = fstatat(&q[0][s], name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let to = st.st_ino.to_string();
            if name.as_bytes() == to.as_bytes() {
                continue;
            }
            let t = (st.st_ino % split) as usize;
            for k in &q {
                renameat2(
                    &k[s],
                    name.as_os_str(),
                    &k[t],
                    to.as_str(),
                    RenameFlags::RENAME_NOREPLACE,
                )
                .unwrap();
            }
            moved += 1;
        }
    }
    moved
}

fn retire(base: &Path, split: u64, count: u64) -> usize {
    let src = buckets(&base.join(format!("queue{}", count + 1)), split);
    let dests: Vec<_> = (1..=count)
        .map(|n| buckets(&base.join(format!("queue{n}")), split))
        .collect();
    let mut moved = 0;
    let mut old = Vec::new();
    for s in 0..split as usize {
        for name in names(&src[0][s]) {
            let st = fstatat(&src[0][s], name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
            let d = &dests[(st.st_ino % count) as usize];
            linkat(
                &src[0][s],
                name.as_os_str(),
                &d[0][s],
                name.as_os_str(),
                AtFlags::empty(),
            )
            .unwrap();
            for k in 1..3 {
                renameat2(
                    &src[k][s],
                    name.as_os_str(),
                    &d[k][s],
                    name.as_os_str(),
                    RenameFlags::RENAME_NOREPLACE,
                )
                .unwrap();
            }
            old.push((s, name));
            if old.len() == 1024 {
                for (s, n) in old.drain(..) {
                    unlinkat(&src[0][s], n.as_os_str(), UnlinkatFlags::NoRemoveDir).unwrap();
                }
            }
            moved += 1;
        }
        for (s, n) in old.drain(..) {
            unlinkat(&src[0][s], n.as_os_str(), UnlinkatFlags::NoRemoveDir).unwrap();
        }
    }
    moved
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: move-floor repair QUEUE SPLIT | move-floor retire BASE SPLIT COUNT");
        std::process::exit(100)
    };
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let t = Instant::now();
    let moved = match args.get(1).map(String::as_str) {
        Some("repair") if args.len() == 4 => repair(Path::new(&args[2]), num(3)),
        Some("retire") if args.len() == 5 => retire(Path::new(&args[2]), num(3), num(4)),
        _ => usage(),
    };
    eprintln!("moved {moved} messages");
    println!("{:.3}", t.elapsed().as_secs_f64());
}
