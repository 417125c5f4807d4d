//! Reading one queue's directories: counts, sizes and ages, with queue-fix's
//! walking (directory descriptors, `fstatat`, one split bucket at a time
//! over worker threads). Nothing is held per message, so memory does not
//! grow with the queue; nothing is written, locked or renamed. A file that
//! vanishes between the listing and its `fstatat` was delivered meanwhile
//! and is simply not counted.

use super::model::Counts;
use crate::fix::observe::{for_each_name, open_dir_at, split_subdirs, stat_at, Found};
use crate::queue::layout::{self, INTD, MESS, TODO};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// The split directories read, by role.
const INFO: &str = "info";
const LOCAL: &str = "local";
const REMOTE: &str = "remote";
const BOUNCE: &str = "bounce";
const SPLIT_DIRS: [&str; 6] = [MESS, INFO, TODO, INTD, LOCAL, REMOTE];

/// Open descriptors of the split directories that exist (index as
/// [`SPLIT_DIRS`]).
struct Dirs([Option<OwnedFd>; 6]);

/// Reads the queue whose root is `root`, `now` being the scan's clock
/// (seconds since the epoch).
pub fn scan(root: &OwnedFd, now: i64, threads: usize) -> io::Result<Counts> {
    debug_assert!(SPLIT_DIRS
        .iter()
        .all(|d| layout::entry(d).is_split() && layout::MESSAGE_DIRS.contains(d)));
    let mut buckets = Vec::new();
    let mut fds: [Option<OwnedFd>; 6] = Default::default();
    for (slot, dir) in fds.iter_mut().zip(SPLIT_DIRS) {
        let Some(fd) = open_dir_at(root, dir).map_err(|e| named(dir, e))? else {
            continue;
        };
        buckets.extend(split_subdirs(&fd).map_err(|e| named(dir, e))?.0);
        *slot = Some(fd);
    }
    buckets.sort_unstable();
    buckets.dedup();
    let dirs = Dirs(fds);
    let total = Mutex::new(Counts::default());
    let first_error = Mutex::new(None::<io::Error>);
    let threads = threads.clamp(1, buckets.len().max(1));
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let (buckets, dirs, total, first_error) = (&buckets, &dirs, &total, &first_error);
            scope.spawn(move || {
                let mut mine = Counts::default();
                for &sub in buckets.iter().skip(worker).step_by(threads) {
                    if let Err(e) = bucket(dirs, sub, now, &mut mine) {
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
    if let Some(fd) = open_dir_at(root, BOUNCE).map_err(|e| named(BOUNCE, e))? {
        counts.bounces = count_names(&fd).map_err(|e| named(BOUNCE, e))?;
    }
    Ok(counts)
}

/// Subdirectory `sub` of every split directory.
fn bucket(dirs: &Dirs, sub: u32, now: i64, c: &mut Counts) -> io::Result<()> {
    let name = sub.to_string();
    let at = |dir: &str| format!("{dir}/{name}");
    let mut fds: [Option<OwnedFd>; 6] = Default::default();
    for ((slot, parent), dir) in fds.iter_mut().zip(&dirs.0).zip(SPLIT_DIRS) {
        if let Some(parent) = parent {
            // A bucket removed meanwhile is an empty one.
            *slot = open_dir_at(parent, &name).map_err(|e| named(&at(dir), e))?;
        }
    }
    let [mess, info, todo, intd, local, remote] = &fds;
    if let Some(m) = mess {
        for_each_name(m, |file| {
            let Some(st) = stat_at(m, file)? else {
                return Ok(());
            };
            if st.kind != Found::File {
                return Ok(());
            }
            // qmail-send and qmail-qread date a message by its info file
            // once there is one.
            let born = match info {
                Some(i) => match stat_at(i, file)? {
                    Some(ist) if ist.kind == Found::File => ist.mtime,
                    _ => st.mtime,
                },
                None => st.mtime,
            };
            c.add_message(st.size, now.saturating_sub(born).max(0) as u64);
            Ok(())
        })
        .map_err(|e| named(&at(MESS), e))?;
    }
    if let Some(t) = todo {
        c.preprocess += count_names(t).map_err(|e| named(&at(TODO), e))?;
    }
    if let Some(i) = intd {
        // intd and todo are two links of one envelope: count a message once.
        for_each_name(i, |file| {
            let in_todo = match todo {
                Some(t) => stat_at(t, file)?.is_some(),
                None => false,
            };
            if !in_todo {
                c.preprocess += 1;
            }
            Ok(())
        })
        .map_err(|e| named(&at(INTD), e))?;
    }
    if let Some(l) = local {
        c.local += count_names(l).map_err(|e| named(&at(LOCAL), e))?;
    }
    if let Some(r) = remote {
        c.remote += count_names(r).map_err(|e| named(&at(REMOTE), e))?;
    }
    Ok(())
}

fn count_names(fd: &OwnedFd) -> io::Result<u64> {
    let mut n = 0;
    for_each_name(fd, |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

fn named(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}
