//! Reading one queue's directories: counts, sizes and ages, with
//! descriptors, over worker threads that each read a group of split
//! buckets in step.
//!
//! The cost is one `fstatat` per message and nothing else per file: a
//! message's size and age both come from its `mess` file (its mtime is the
//! injection time: qmail-queue writes it once and never touches it again),
//! and every other directory is counted from its listing alone, the kind of
//! an entry taken from `d_type` (a `stat` only where the filesystem answers
//! `DT_UNKNOWN`). `info` is not read at all. Nothing is held per message,
//! so memory does not grow with the queue; nothing is written, locked or
//! renamed. A file that vanishes between the listing and its `fstatat` was
//! delivered meanwhile and is simply not counted.
//!
//! `todo` and `intd` are split or flat as `BIGTODO` says ([`Layout`]); both
//! shapes are counted wherever they are found, and what lies in the shape
//! the configuration does not choose is counted apart as well
//! ([`Counts::misplaced`]): qmail-send never sees it.
//!
//! The buckets of a group are read in step, a few kilobytes of entries
//! from each in turn, not one bucket after the other: message N lies in
//! bucket N mod split, so the entries read in one round are messages
//! injected one after the other, whose dentries and inodes the kernel
//! allocated side by side. On a tmpfs (where a directory lists in the
//! order its entries were made) a round then finds most of what it looks
//! up already in the CPU's caches: `perf stat queue-stat QUEUE` on a
//! tmpfs queue of 1,000,000 messages split 151 (`examples/stat-bench-fill`)
//! took 1.16 s reading the buckets one by one (commit 80095f1) and 0.92 s
//! in step, and `bench/queue-stat.sh` measures 4.9-5.0 times the 200,000
//! time at 1,000,000 (it was 5.1-6.05). Where a directory lists in hash
//! order (ext4, XFS) the order is as good as any.

use super::model::Counts;
use crate::fsx::dir::{for_each_in, io_err, read_chunk};
use crate::queue::layout::{Layout, INTD, MESS, TODO};
use crate::queue::name::parse_subdir;
use nix::dir::Type;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const LOCAL: &str = "local";
const REMOTE: &str = "remote";
const BOUNCE: &str = "bounce";
/// The split directories read, by role (`info` is not: see the module).
const SPLIT_DIRS: [&str; 5] = [MESS, TODO, INTD, LOCAL, REMOTE];

/// Why a queue cannot be counted at all.
pub fn no_mess(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{MESS}: {what}"))
}

/// Without mess/ there is no queue to count: 0 messages would be a lie
/// (qmail-queue fails on every injection into it). A symlink in its place
/// is not followed, as queue-fix does not.
fn mess_is_a_directory(root: &OwnedFd) -> io::Result<()> {
    match lstat_at(root, c"mess")? {
        None => Err(no_mess("missing")),
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
            Err(no_mess("a symbolic link, not a directory"))
        }
        Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(no_mess("not a directory")),
        Some(_) => Ok(()),
    }
}

/// Reads the queue whose root is `root`, `now` being the scan's clock
/// (seconds since the epoch).
pub fn scan(root: &OwnedFd, layout: &Layout, now: i64, threads: usize) -> io::Result<Counts> {
    mess_is_a_directory(root)?;
    let mut counts = Counts::default();
    let mut buckets = Vec::new();
    let mut fds: [Option<OwnedFd>; 5] = Default::default();
    for (slot, dir) in fds.iter_mut().zip(SPLIT_DIRS) {
        let Some(fd) = open_dir(root, dir).map_err(|e| named(dir, e))? else {
            if dir == MESS {
                // Replaced since the look above.
                return Err(no_mess("missing"));
            }
            continue;
        };
        let flat_files = top_level(&fd, &mut buckets).map_err(|e| named(dir, e))?;
        if dir == TODO {
            counts.preprocess += flat_files;
            if layout.is_split_dir(TODO) {
                counts.misplaced += flat_files;
            }
        }
        *slot = Some(fd);
    }
    // intd/I beside todo/I is one envelope (two links of one inode): an
    // intd file counts only while qmail-queue has not linked it into todo.
    if let Some(intd) = &fds[2] {
        // Listed once already, for its subdirectories.
        rewind(intd).map_err(|e| named(INTD, e))?;
        let flat = intd_only(intd, fds[1].as_ref()).map_err(|e| named(INTD, e))?;
        counts.preprocess += flat;
        if layout.is_split_dir(INTD) {
            counts.misplaced += flat;
        }
    }
    buckets.sort_unstable();
    buckets.dedup();
    let dirs = &fds;
    let flat_todo = !layout.is_split_dir(TODO);
    let total = Mutex::new(counts);
    let first_error = Mutex::new(None::<io::Error>);
    let groups: Vec<&[u32]> = buckets.chunks(GROUP).collect();
    let threads = threads.clamp(1, groups.len().max(1));
    // Each worker takes the next group when it is done with one: on a
    // busy machine a worker that is scheduled does the work of one that
    // is not, instead of waiting for its fixed share.
    let next = AtomicUsize::new(0);
    let work = || {
        let mut mine = Counts::default();
        let mut chunk = vec![0u64; CHUNK_BYTES / 8];
        while let Some(subs) = groups.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = group(dirs, subs, now, flat_todo, &mut chunk, &mut mine) {
                first_error.lock().unwrap().get_or_insert(e);
                return;
            }
        }
        total.lock().unwrap().merge(&mine);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        // The calling thread is a worker too: one thread fewer to start.
        work();
    });
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    let mut counts = total.into_inner().unwrap();
    if let Some(fd) = open_dir(root, BOUNCE).map_err(|e| named(BOUNCE, e))? {
        counts.bounces = count_files(&fd).map_err(|e| named(BOUNCE, e))?;
    }
    Ok(counts)
}

/// Buckets read in step by one worker: 16 of a queue split 151 keep
/// 80 directories open per worker, far below any descriptor limit, and
/// one round stays within the caches.
const GROUP: usize = 16;

/// Bytes of entries read from one directory in one turn: about 128
/// entries of a queue's names.
const CHUNK_BYTES: usize = 4096;

/// Buckets `subs` of every split directory, read in step (see the
/// module): each round reads one chunk from every directory still open,
/// `mess` of every bucket first, then `todo`, and so on.
fn group(
    dirs: &[Option<OwnedFd>; 5],
    subs: &[u32],
    now: i64,
    flat_todo: bool,
    chunk: &mut [u64],
    c: &mut Counts,
) -> io::Result<()> {
    let names: Vec<String> = subs.iter().map(u32::to_string).collect();
    let at = |dir: &str, sub: &str| format!("{dir}/{sub}");
    // open[kind][i]: directory `kind` (in SPLIT_DIRS order) of bucket
    // subs[i], `None` when the bucket has none; todo/S stays open after
    // its reading, as intd/S/I is looked up there.
    let mut open: [Vec<Option<OwnedFd>>; 5] = Default::default();
    for ((row, parent), dir) in open.iter_mut().zip(dirs).zip(SPLIT_DIRS) {
        for name in &names {
            row.push(match parent {
                // A bucket removed meanwhile is an empty one.
                Some(parent) => open_dir(parent, name).map_err(|e| named(&at(dir, name), e))?,
                None => None,
            });
        }
    }
    let mut read_out = [(); 5].map(|_| vec![false; subs.len()]);
    let mut waiting = 0;
    loop {
        let mut more = false;
        for kind in 0..SPLIT_DIRS.len() {
            for i in 0..subs.len() {
                let Some(fd) = open[kind][i].as_ref().filter(|_| !read_out[kind][i]) else {
                    continue;
                };
                let shown = || at(SPLIT_DIRS[kind], &names[i]);
                let got = read_chunk(fd, chunk).map_err(|e| named(&shown(), e))?;
                if got.is_empty() {
                    read_out[kind][i] = true;
                    continue;
                }
                more = true;
                let todo = open[1][i].as_ref();
                for_each_in(got, |file, what| {
                    match kind {
                        0 => add_message(fd, file, what, now, c)?,
                        1 => waiting += u64::from(kind_of(fd, file, what)? == Some(Type::File)),
                        2 => waiting += u64::from(intd_only_one(fd, file, what, todo)?),
                        3 => c.local += u64::from(kind_of(fd, file, what)? == Some(Type::File)),
                        _ => c.remote += u64::from(kind_of(fd, file, what)? == Some(Type::File)),
                    }
                    Ok(())
                })
                .map_err(|e| named(&shown(), e))?;
            }
        }
        if !more {
            break;
        }
    }
    c.preprocess += waiting;
    if flat_todo {
        c.misplaced += waiting;
    }
    Ok(())
}

/// One entry of `mess/S`: a message when it is a regular file.
fn add_message(
    dir: &OwnedFd,
    file: &CStr,
    kind: Option<Type>,
    now: i64,
    c: &mut Counts,
) -> io::Result<()> {
    if !matches!(kind, Some(Type::File) | None) {
        return Ok(());
    }
    let Some(st) = lstat_at(dir, file)? else {
        return Ok(());
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFREG {
        let age = now.saturating_sub(st.st_mtime).max(0) as u64;
        c.add_message(st.st_size.max(0) as u64, age);
    }
    Ok(())
}

/// The top of a split (or flat) directory: adds its numbered
/// subdirectories to `buckets` and returns how many files lie there.
fn top_level(fd: &OwnedFd, buckets: &mut Vec<u32>) -> io::Result<u64> {
    let mut files = 0;
    each_entry(fd, |name, kind| {
        match kind_of(fd, name, kind)? {
            Some(Type::File) => files += 1,
            Some(Type::Directory) => {
                if let Some(n) = parse_subdir(name.to_bytes()) {
                    buckets.push(n);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(files)
}

/// Files of `intd` (one directory level) without a `todo` link beside them.
fn intd_only(intd: &OwnedFd, todo: Option<&OwnedFd>) -> io::Result<u64> {
    let mut n = 0;
    each_entry(intd, |name, kind| {
        n += u64::from(intd_only_one(intd, name, kind, todo)?);
        Ok(())
    })?;
    Ok(n)
}

/// Whether one entry of `intd` is a file without a `todo` link beside it.
fn intd_only_one(
    intd: &OwnedFd,
    name: &CStr,
    kind: Option<Type>,
    todo: Option<&OwnedFd>,
) -> io::Result<bool> {
    if kind_of(intd, name, kind)? != Some(Type::File) {
        return Ok(false);
    }
    Ok(match todo {
        Some(t) => lstat_at(t, name)?.is_none(),
        None => true,
    })
}

/// The regular files of a directory, from its listing.
fn count_files(fd: &OwnedFd) -> io::Result<u64> {
    let mut n = 0;
    each_entry(fd, |name, kind| {
        if kind_of(fd, name, kind)? == Some(Type::File) {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
}

/// What an entry is: `d_type` decides, a `stat` only when the filesystem
/// gave `DT_UNKNOWN`; `None` when it vanished meanwhile.
fn kind_of(dir: &OwnedFd, name: &CStr, kind: Option<Type>) -> io::Result<Option<Type>> {
    if kind.is_some() {
        return Ok(kind);
    }
    Ok(
        lstat_at(dir, name)?.map(|st| match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Type::File,
            libc::S_IFDIR => Type::Directory,
            libc::S_IFLNK => Type::Symlink,
            libc::S_IFIFO => Type::Fifo,
            libc::S_IFSOCK => Type::Socket,
            libc::S_IFBLK => Type::BlockDevice,
            _ => Type::CharacterDevice,
        }),
    )
}

/// Calls `each(name, d_type)` for every entry but `.` and `..`, from the
/// descriptor's offset to the end; `None` is `DT_UNKNOWN`.
fn each_entry(
    fd: &OwnedFd,
    mut each: impl FnMut(&CStr, Option<Type>) -> io::Result<()>,
) -> io::Result<()> {
    let mut chunk = vec![0u64; 32768 / 8];
    loop {
        let got = read_chunk(fd, &mut chunk)?;
        if got.is_empty() {
            return Ok(());
        }
        for_each_in(got, &mut each)?;
    }
}

/// Back to the first entry of a directory listed before.
fn rewind(fd: &OwnedFd) -> io::Result<()> {
    nix::unistd::lseek(fd, 0, nix::unistd::Whence::SeekSet)
        .map(drop)
        .map_err(io_err)
}

/// `fstatat` without following a final symlink; `None` when nothing is
/// there. The name comes straight from the listing: no copy, no lookup
/// through a longer path.
fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated, `st` is written by the kernel on
    // success and read only then.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        // SAFETY: fstatat succeeded.
        return Ok(Some(unsafe { st.assume_init() }));
    }
    match Errno::last() {
        Errno::ENOENT | Errno::ENOTDIR => Ok(None),
        e => Err(io_err(e)),
    }
}

/// Opens a directory below `dir` without following a symlink; `None` when
/// there is none (or something else is there).
fn open_dir(dir: &OwnedFd, name: &str) -> io::Result<Option<OwnedFd>> {
    match nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

fn named(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}
