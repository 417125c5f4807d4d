//! Who holds a lock on a file, asked without ever taking or waiting for
//! one: `/proc/locks` (every kind, by device and inode) and `F_GETLK`.

use super::dir::io_err;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use std::io::{self, BufRead};
use std::os::fd::OwnedFd;

/// The locked files listed in `/proc/locks`: (major, minor, inode).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockTable(Vec<(u32, u32, u64)>);

impl LockTable {
    /// Reads `/proc/locks` once per run; empty when it cannot be read
    /// (then only `F_GETLK` answers).
    pub fn read() -> LockTable {
        let Ok(f) = std::fs::File::open("/proc/locks") else {
            return LockTable::default();
        };
        let mut t = LockTable::default();
        for line in io::BufReader::new(f).lines().map_while(Result::ok) {
            t.add_line(&line);
        }
        t
    }

    /// One line: `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; a
    /// waiter (`1: -> FLOCK ...`) is no holder.
    pub fn add_line(&mut self, line: &str) {
        let mut words = line.split_whitespace().skip(1);
        let Some(kind) = words.next() else { return };
        if kind == "->" {
            return;
        }
        // kind, advisory/mandatory, read/write, pid, then the file.
        let Some(file) = words.nth(3) else { return };
        let mut parts = file.split(':');
        let (Some(maj), Some(min), Some(ino), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if let (Ok(maj), Ok(min), Ok(ino)) = (
            u32::from_str_radix(maj, 16),
            u32::from_str_radix(min, 16),
            ino.parse::<u64>(),
        ) {
            self.0.push((maj, min, ino));
        }
    }

    /// Nothing listed (or `/proc/locks` unreadable).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn holds(&self, dev: u64, ino: u64) -> bool {
        let (maj, min) = (libc::major(dev), libc::minor(dev));
        self.0.contains(&(maj, min, ino))
    }
}

/// [`LockTable::read`] on a thread of its own, started at once and
/// joined when first needed.
///
/// Reading `/proc/locks` costs no CPU but makes the reader wait out an
/// RCU grace period, 10-20 ms here: the kernel's `locks_start()` takes
/// `file_rwsem` for writing (`percpu_down_write`, linux fs/locks.c), and
/// a per-CPU rwsem's writer waits for every CPU to leave its read side.
/// At 50,000 messages that wait was a fifth of queue-stat's time; on a
/// thread of its own it passes while the first queue is scanned.
pub struct PendingLocks {
    reader: std::cell::Cell<Option<std::thread::JoinHandle<LockTable>>>,
    table: std::cell::OnceCell<LockTable>,
}

impl PendingLocks {
    pub fn start() -> PendingLocks {
        // No thread to be had: read it when first needed, as before.
        let reader = std::thread::Builder::new()
            .name("proc-locks".into())
            .spawn(LockTable::read)
            .ok();
        PendingLocks {
            reader: std::cell::Cell::new(reader),
            table: std::cell::OnceCell::new(),
        }
    }

    /// The table, waiting for the reader the first time.
    pub fn table(&self) -> &LockTable {
        self.table.get_or_init(|| match self.reader.take() {
            Some(handle) => handle.join().unwrap_or_default(),
            None => LockTable::read(),
        })
    }
}

/// Whether a write lock on all of `fd`'s file would conflict with a POSIX
/// record (or OFD) lock someone else holds. `F_GETLK` only asks: it takes
/// nothing and never waits, and a read-only descriptor is enough.
pub fn write_lock_conflicts(fd: &OwnedFd) -> io::Result<bool> {
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(fd, FcntlArg::F_GETLK(&mut probe)).map_err(io_err)?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_holders_and_skips_waiters() {
        let mut t = LockTable::default();
        t.add_line("1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF");
        t.add_line("2: POSIX  ADVISORY  WRITE 99 00:2a:18446744073709551615 0 EOF");
        t.add_line("2: -> FLOCK  ADVISORY  WRITE 1235 08:03:77 0 EOF");
        t.add_line("3: OFDLCK ADVISORY  READ  -1 103:02:42 0 EOF");
        t.add_line("garbage");
        t.add_line("");
        assert_eq!(t.0, [(0xfd, 1, 5678), (0, 0x2a, u64::MAX), (0x103, 2, 42)]);
        let dev = libc::makedev(0xfd, 1);
        assert!(t.holds(dev, 5678));
        assert!(!t.holds(dev, 5679));
        assert!(!t.holds(libc::makedev(8, 3), 77), "a waiter holds nothing");
    }
}
