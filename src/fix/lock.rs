//! Is a queue live? qmail-send holds an exclusive lock on `lock/sendmutex`
//! while it runs. qmail's `lock_ex` is `flock()` on Linux builds and
//! `fcntl`/`lockf` on others, and the two kinds do not see each other, so
//! both are probed.

use crate::fsx::dir::io_err;
use crate::fsx::locks::write_lock_conflicts;
use crate::queue::layout::SENDMUTEX;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::io;
use std::os::fd::OwnedFd;

/// `Ok(true)` when another process holds a lock on `lock/sendmutex`;
/// `Ok(false)` also when the file does not exist.
pub fn is_live(root: &OwnedFd) -> io::Result<bool> {
    // Opened only once checked to be a regular file (a device planted
    // there is never opened); anything else is no lock, and the layout
    // check sets it aside. A lock on a file with another name elsewhere
    // changes nothing in that file.
    let fd =
        match crate::fsx::beneath::open_regular(root, std::path::Path::new(SENDMUTEX), u64::MAX) {
            Ok((file, _)) => OwnedFd::from(file),
            Err(e) if e.raw_os_error().is_none() => return Ok(false),
            Err(e) => match e.raw_os_error().map(Errno::from_raw) {
                Some(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(false),
                _ => return Err(e),
            },
        };
    // A POSIX record lock held by anyone else shows up here.
    if write_lock_conflicts(&fd)? {
        return Ok(true);
    }
    // A BSD lock: try to take it without waiting; our own fresh open
    // description only conflicts with someone else's.
    match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
        Ok(held) => {
            drop(held);
            Ok(false)
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(io_err(e)),
    }
}
