//! What one directory entry is: its kind and the facts `fstat` gives,
//! and the io error for an errno.

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag};
use std::io;

/// What kind of object a directory entry turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Dir,
    File,
    Fifo,
    /// Symlink, socket, device: never right anywhere in a queue.
    Other,
}

impl Found {
    pub fn word(self) -> &'static str {
        match self {
            Found::Dir => "a directory",
            Found::File => "a regular file",
            Found::Fifo => "a named pipe",
            Found::Other => "a special file",
        }
    }
}

/// The facts queue-fix needs about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Found,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits only (`& 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub dev: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Hard links: a file linked from outside the queue has more than the
    /// layout expects.
    pub nlink: u64,
}

impl From<FileStat> for Stat {
    fn from(st: FileStat) -> Stat {
        let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let kind = if fmt == SFlag::S_IFDIR {
            Found::Dir
        } else if fmt == SFlag::S_IFREG {
            Found::File
        } else if fmt == SFlag::S_IFIFO {
            Found::Fifo
        } else {
            Found::Other
        };
        Stat {
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            size: st.st_size as u64,
            ino: st.st_ino,
            dev: st.st_dev,
            mtime: st.st_mtime,
            nlink: st.st_nlink,
        }
    }
}

/// An io error for `errno`, keeping the cause for diagnostics.
pub fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}
