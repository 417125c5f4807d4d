//! Orphans: the `queueN` under a base, outside the queues in service,
//! that still hold mail (queue-stat reports them, queue-fix retires them).

use super::found::split_subdirs;
use super::layout::MESS;
use super::name::parse_subdir;
use crate::fsx::dir::{for_each_name, open_dir_at, open_named_dir};
use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Every `queueN` under `base` outside `served` that holds mail, with its
/// message count, sorted by N. `served` is
/// [`crate::queue::served::served_range`]: a queue qscheduler grew and
/// still serves is not an orphan. The special queues (`nqueue`, `slowq`,
/// `qmta`: [`crate::queue::special`]) never are, whatever they hold.
pub fn find_orphans(base: &Path, served: &Range<u32>) -> io::Result<Vec<(u32, u64)>> {
    let fd = open_named_dir(nix::fcntl::AT_FDCWD, base)?
        .ok_or_else(|| io::Error::other("not a directory"))?;
    let mut found = Vec::new();
    for_each_name(&fd, |name| {
        let text = name.to_str();
        if text.is_some_and(|t| super::special::find(t).is_some()) {
            return Ok(());
        }
        let Some(n) = text
            .and_then(|s| s.strip_prefix("queue"))
            .and_then(|d| parse_subdir(d.as_bytes()))
        else {
            return Ok(());
        };
        if served.contains(&n) {
            return Ok(());
        }
        if let Some(q) = open_named_dir(&fd, name).ok().flatten() {
            let held = count_messages(&q).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{}: {e}", crate::fsx::escape::path(&base.join(name))),
                )
            })?;
            if held > 0 {
                found.push((n, held));
            }
        }
        Ok(())
    })?;
    found.sort_unstable();
    Ok(found)
}

/// Number of `mess` files in a queue (every numeric subdirectory), for the
/// orphan report. Only names are read.
pub fn count_messages(root: &OwnedFd) -> io::Result<u64> {
    let Some(fd) = open_dir_at(root, MESS)? else {
        return Ok(0);
    };
    let mut n = 0u64;
    for sub in split_subdirs(&fd)?.0 {
        if let Some(sfd) = open_dir_at(&fd, &sub.to_string())? {
            for_each_name(&sfd, |_| {
                n += 1;
                Ok(())
            })?;
        }
    }
    Ok(n)
}
