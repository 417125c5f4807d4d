//! Whether a queue may receive new mail: the probe qmail-multi runs on
//! every candidate, public so other tools (a read-only status report)
//! judge a queue exactly as qmail-multi does.
//!
//! Runs as any user: it needs search permission on the queue's parent
//! only, never inside the queue (roots are mode 0750 qmailq:qmail). That is
//! why a disabled queue is recognised by [`DISABLED_ROOT_BIT`] on the root's
//! own mode, which `queue-fix --disable` sets next to the marker file; the
//! marker itself is honoured too when the caller can see it (root, group
//! qmail), so a marker made by hand takes effect for them at once. The bit
//! alone disables, for every caller alike, since an unprivileged one cannot
//! look further: left without a regular marker (an interrupted enable, a
//! hand-set bit), it keeps new mail away until `queue-fix` (which follows
//! the marker) reports and clears it.

use nix::errno::Errno;
use nix::sys::stat::{lstat, stat, SFlag};
use std::fmt;
use std::path::Path;

use crate::queue::layout::{DISABLED_NAME, DISABLED_ROOT_BIT, MESSAGE_INODES};

/// Free inodes a queue's filesystem must have: four messages' worth, since
/// concurrent injections all read the same count before any of them
/// writes, and qmail-send needs inodes to move a message along.
pub const MIN_FREE_INODES: u64 = 4 * MESSAGE_INODES;

/// What the probe found out about one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Usable,
    /// The queue directory does not exist.
    Missing,
    /// Something other than a directory has the queue's name.
    NotADirectory,
    /// Fewer than `MIN_FREE` bytes are available to unprivileged writers.
    ShortOfSpace {
        available: u64,
        min_free: u64,
    },
    /// Too few free inodes for a whole message (plus margin).
    ShortOfInodes {
        available: u64,
        needed: u64,
    },
    /// An administrator disabled it (`queue-fix --disable`).
    Disabled,
    /// stat or statvfs failed for another reason.
    Unreachable(Errno),
}

impl Health {
    pub fn is_usable(self) -> bool {
        self == Health::Usable
    }

    /// Short of space or inodes: heals as qmail-send delivers.
    pub fn is_short(self) -> bool {
        matches!(
            self,
            Health::ShortOfSpace { .. } | Health::ShortOfInodes { .. }
        )
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Usable => f.write_str("usable"),
            Health::Missing => f.write_str("does not exist"),
            Health::NotADirectory => f.write_str("is not a directory"),
            Health::ShortOfSpace {
                available,
                min_free,
            } => write!(
                f,
                "has {available} bytes available, below MIN_FREE={min_free}"
            ),
            Health::ShortOfInodes { available, needed } => write!(
                f,
                "has {available} free inodes on its filesystem, fewer than the {needed} a message needs"
            ),
            Health::Disabled => f.write_str("is disabled"),
            Health::Unreachable(e) => write!(f, "cannot be examined: {}", e.desc()),
        }
    }
}

/// A filesystem's free-space figures as statvfs reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsFigures {
    pub blocks_available: u64,
    pub fragment_size: u64,
    /// Total inodes; 0 when the filesystem does not count inodes.
    pub files: u64,
    pub files_available: u64,
}

/// Judges a directory's filesystem; `MIN_FREE` is compared in bytes.
pub fn judge(fs: FsFigures, min_free: Option<u64>) -> Health {
    if fs.files != 0 && fs.files_available < MIN_FREE_INODES {
        return Health::ShortOfInodes {
            available: fs.files_available,
            needed: MIN_FREE_INODES,
        };
    }
    if let Some(min_free) = min_free {
        let bytes = u128::from(fs.blocks_available) * u128::from(fs.fragment_size);
        if bytes < u128::from(min_free) {
            return Health::ShortOfSpace {
                available: bytes as u64, // below min_free, so it fits
                min_free,
            };
        }
    }
    Health::Usable
}

/// The health of the queue at `queue` (its root directory) for new mail,
/// with `MIN_FREE` bytes required when given. Never changes anything.
pub fn probe(queue: &Path, min_free: Option<u64>) -> Health {
    let root = match stat(queue) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Health::Missing,
        Err(Errno::ENOTDIR) => return Health::NotADirectory,
        Err(e) => return Health::Unreachable(e),
    };
    if SFlag::from_bits_truncate(root.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Health::NotADirectory;
    }
    if root.st_mode & DISABLED_ROOT_BIT != 0 || marker_visible(queue) {
        return Health::Disabled;
    }
    match nix::sys::statvfs::statvfs(queue) {
        Ok(s) => judge(
            FsFigures {
                blocks_available: s.blocks_available(),
                fragment_size: s.fragment_size(),
                files: s.files(),
                files_available: s.files_available(),
            },
            min_free,
        ),
        Err(Errno::ENOENT) => Health::Missing,
        Err(e) => Health::Unreachable(e),
    }
}

/// Whether the marker is there, as far as the caller can see (EACCES for
/// an unprivileged caller: the root's bit decides then). Only a regular
/// file is the marker, for every tool (`queue::disable`): a directory, a
/// FIFO, a symlink or a socket under its name is ignored here, reported
/// and set aside by queue-fix. A regular file with more links still counts:
/// nothing ever writes to it or changes its owner or mode.
fn marker_visible(queue: &Path) -> bool {
    lstat(&queue.join(DISABLED_NAME))
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_free_space_in_bytes_without_overflow() {
        let fs = |bavail, frsize, files, favail| FsFigures {
            blocks_available: bavail,
            fragment_size: frsize,
            files,
            files_available: favail,
        };
        // 1.5 MiB free: upstream's megabyte truncation calls this 1 MB.
        let f = fs(384, 4096, 100, 50);
        assert_eq!(judge(f, Some(1_572_864)), Health::Usable);
        assert!(matches!(
            judge(f, Some(1_572_865)),
            Health::ShortOfSpace {
                available: 1_572_864,
                ..
            }
        ));
        assert_eq!(judge(f, None), Health::Usable);
        // The product overflows 64 bits: plenty of space.
        assert_eq!(
            judge(fs(u64::MAX, 4096, 0, 0), Some(u64::MAX)),
            Health::Usable
        );
        // Too few inodes refuses even with no MIN_FREE; the bound is a whole
        // message's worth with margin, not 1.
        assert_eq!(
            judge(fs(1000, 4096, 100, 0), None),
            Health::ShortOfInodes {
                available: 0,
                needed: MIN_FREE_INODES
            }
        );
        assert!(judge(fs(1000, 4096, 100, MIN_FREE_INODES - 1), None).is_short());
        assert!(judge(fs(1000, 4096, 100, MIN_FREE_INODES), None).is_usable());
        // A filesystem that counts no inodes (files == 0) is not full.
        assert_eq!(judge(fs(1000, 4096, 0, 0), None), Health::Usable);
    }
}
