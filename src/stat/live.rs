//! Is qmail-send running on a queue? It holds an exclusive lock on
//! `lock/sendmutex` while it runs (`flock` on Linux builds, `fcntl` on
//! others). queue-stat must never take or wait for that lock, not even
//! for a moment (a starting qmail-send would block behind it), so unlike
//! queue-fix's probe it only looks:
//! - `/proc/locks` lists every lock of this pid namespace, of any kind,
//!   by device and inode;
//! - `F_GETLK` on a read-only descriptor reports a conflicting POSIX or
//!   OFD lock without taking one (and sees holders in other namespaces).

use crate::fsx::dir::{io_err, stat_at, Found};
use crate::fsx::locks::write_lock_conflicts;
pub use crate::fsx::locks::{LockTable, PendingLocks};
use crate::queue::layout::SENDMUTEX;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io;
use std::os::fd::OwnedFd;

/// `Some(true)` when something holds a lock on the queue's
/// `lock/sendmutex`; `Some(false)` also when there is no such file;
/// `None` when it cannot be told (no permission to look).
pub fn is_live(root: &OwnedFd, locks: &LockTable) -> Option<bool> {
    let st = match stat_at(root, SENDMUTEX) {
        Ok(Some(st)) if st.kind == Found::File => st,
        Ok(_) => return Some(false),
        Err(_) => return None,
    };
    if locks.holds(st.dev, st.ino) {
        return Some(true);
    }
    match posix_lock_held(root, st.ino) {
        Ok(held) => Some(held),
        // Not allowed to open it: the lock table was all there was to see.
        Err(e) if e.raw_os_error() == Some(Errno::EACCES as i32) => {
            if locks.is_empty() {
                None
            } else {
                Some(false)
            }
        }
        Err(_) => None,
    }
}

/// Asks the kernel whether a write lock would conflict, without taking one.
fn posix_lock_held(root: &OwnedFd, ino: u64) -> io::Result<bool> {
    let fd = nix::fcntl::openat(
        root,
        SENDMUTEX,
        OFlag::O_RDONLY
            | OFlag::O_CLOEXEC
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let st = nix::sys::stat::fstat(&fd).map_err(io_err)?;
    if st.st_ino != ino {
        // Replaced between the two looks: whatever holds the new one is
        // reported by the next run.
        return Ok(false);
    }
    write_lock_conflicts(&fd)
}
