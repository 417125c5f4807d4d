//! Reading one queue's directories: counts, sizes and ages, with
//! descriptors and one split bucket at a time over worker threads.
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

use super::model::Counts;
use crate::fix::observe::io_err;
use crate::queue::layout::{Layout, INTD, MESS, TODO};
use crate::queue::name::parse_subdir;
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::stat::Mode;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
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

/// Reads the queue whose root is `root`, `now` being the scan's clock
/// (seconds since the epoch).
pub fn scan(root: &OwnedFd, layout: &Layout, now: i64, threads: usize) -> io::Result<Counts> {
    // Without mess/ there is no queue to count: 0 messages would be a lie
    // (qmail-queue fails on every injection into it). A symlink in its
    // place is not followed, as queue-fix does not.
    match lstat_at(root, c"mess")? {
        None => return Err(no_mess("missing")),
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
            return Err(no_mess("a symbolic link, not a directory"))
        }
        Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            return Err(no_mess("not a directory"))
        }
        Some(_) => {}
    }
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
    let threads = threads.clamp(1, buckets.len().max(1));
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (buckets, total, first_error) = (&buckets, &total, &first_error);
            scope.spawn(move || {
                let mut mine = Counts::default();
                for &sub in buckets.iter().skip(worker).step_by(threads) {
                    if let Err(e) = bucket(dirs, sub, now, flat_todo, &mut mine) {
                        first_error.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
                total.lock().unwrap().merge(&mine);
            });
        }
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

/// Subdirectory `sub` of every split directory.
fn bucket(
    dirs: &[Option<OwnedFd>; 5],
    sub: u32,
    now: i64,
    flat_todo: bool,
    c: &mut Counts,
) -> io::Result<()> {
    let name = sub.to_string();
    let at = |dir: &str| format!("{dir}/{name}");
    let mut fds: [Option<OwnedFd>; 5] = Default::default();
    for ((slot, parent), dir) in fds.iter_mut().zip(dirs).zip(SPLIT_DIRS) {
        if let Some(parent) = parent {
            // A bucket removed meanwhile is an empty one.
            *slot = open_dir(parent, &name).map_err(|e| named(&at(dir), e))?;
        }
    }
    let [mess, todo, intd, local, remote] = &fds;
    if let Some(m) = mess {
        each_entry(m, |file, kind| {
            if !matches!(kind, Some(Type::File) | None) {
                return Ok(());
            }
            let Some(st) = lstat_at(m, file)? else {
                return Ok(());
            };
            if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Ok(());
            }
            let age = now.saturating_sub(st.st_mtime).max(0) as u64;
            c.add_message(st.st_size.max(0) as u64, age);
            Ok(())
        })
        .map_err(|e| named(&at(MESS), e))?;
    }
    let mut waiting = 0;
    if let Some(t) = todo {
        waiting += count_files(t).map_err(|e| named(&at(TODO), e))?;
    }
    if let Some(i) = intd {
        waiting += intd_only(i, todo.as_ref()).map_err(|e| named(&at(INTD), e))?;
    }
    c.preprocess += waiting;
    if flat_todo {
        c.misplaced += waiting;
    }
    if let Some(l) = local {
        c.local += count_files(l).map_err(|e| named(&at(LOCAL), e))?;
    }
    if let Some(r) = remote {
        c.remote += count_files(r).map_err(|e| named(&at(REMOTE), e))?;
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
        if kind_of(intd, name, kind)? != Some(Type::File) {
            return Ok(());
        }
        let linked = match todo {
            Some(t) => lstat_at(t, name)?.is_some(),
            None => false,
        };
        if !linked {
            n += 1;
        }
        Ok(())
    })?;
    Ok(n)
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

/// Calls `each(name, d_type)` for every entry but `.` and `..`, streaming;
/// `None` is `DT_UNKNOWN`.
fn each_entry(
    fd: &OwnedFd,
    mut each: impl FnMut(&CStr, Option<Type>) -> io::Result<()>,
) -> io::Result<()> {
    let mut dir = Dir::from_fd(fd.try_clone()?).map_err(io_err)?;
    for entry in dir.iter() {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        each(name, entry.file_type())?;
    }
    Ok(())
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
