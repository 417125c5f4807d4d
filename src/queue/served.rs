//! Which queues are in service: the one rule that `queue-fix --base`,
//! queue-stat and the provisioning use to tell a queue that something
//! delivers from an orphan.
//!
//! The configured range is `QUEUE_START .. QUEUE_START+QUEUE_COUNT`. In
//! IndiMail 3.x's dynamic mode (`indimail-mta-x/qscheduler.c`, commit
//! 015694f155f0945c497354b4c2da42925e00969b, `dynamic_queue`) qscheduler
//! writes two `int`s to `/dev/shm/qscheduler`:
//! - `q[0]`, `qcount`: the queues in use, each with a qmail-send running.
//!   It starts at qscheduler's own `QUEUE_COUNT` and grows by one whenever
//!   the total load passes `QUEUE_COUNT × QUEUE_LOAD` while below
//!   `QUEUE_MAX` (creating `queue<qcount+1>` with queue-fix when missing,
//!   then starting its qmail-send). It never shrinks while qscheduler runs;
//!   a restart starts again from `QUEUE_COUNT`.
//! - `q[1]`, `qconf`: how many queue directories `queue1, queue2, …` exist
//!   (counted at start, up to `QUEUE_MAX`, raised as the count grows past
//!   it). A directory counted here but beyond `q[0]` has no qmail-send: it
//!   is not served, and mail left in it is an orphan's.
//!
//! So the queues in service are the configured range extended to `q[0]`
//! when that is larger; segment N describes queue `QUEUE_START+N-1`
//! (qscheduler numbers from 1: with it, `QUEUE_START` is 1).
//!
//! qscheduler unlinks no segment when it stops, so a count it left behind
//! would hide the mail of the queues it had grown, which no qmail-send then
//! delivers. The tools that judge orphans (queue-fix `--base`, queue-stat,
//! and the provisioning through queue-fix) therefore take the count only
//! while qscheduler runs: it holds an exclusive lock on
//! `QMAILHOME/queue/qscheduler` for as long as it does (`qscheduler.c`
//! `main()`, same commit: `chdir(auto_qmail)`,
//! `open_trunc("queue/qscheduler")`, `lock_exnb`). qmail-multi takes the
//! count as it is (its choice only spreads mail, and it must stay cheap).

use std::ops::Range;
use std::path::{Path, PathBuf};

/// qscheduler's lock file, relative to `QMAILHOME`.
pub const SCHEDULER_LOCK: &str = "queue/qscheduler";

/// The queue numbers in service: the configured range, extended to the
/// count qscheduler has in use when that is larger.
pub fn served_range(start: u32, count: u32, scheduler_in_use: Option<u32>) -> Range<u32> {
    let n = count.max(scheduler_in_use.unwrap_or(0));
    start..start.saturating_add(n)
}

/// qscheduler's count of queues in use, when its segment exists and is
/// trusted (see [`super::scheduler`]); `None` otherwise.
pub fn scheduler_in_use() -> Option<u32> {
    super::scheduler::read_in_use().ok()
}

/// `QMAILHOME` from the environment (empty is unset), else the default.
pub fn qmailhome() -> PathBuf {
    match std::env::var_os("QMAILHOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(super::config::DEFAULT_QMAILHOME),
    }
}

/// Whether qscheduler runs: something holds a lock on its lock file
/// under `qmailhome`. Only looks (`/proc/locks`, `F_GETLK`): taking the
/// lock even for a moment could make a starting qscheduler give up.
pub fn scheduler_running(qmailhome: &Path) -> bool {
    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, Mode, SFlag};
    let Ok(fd) = nix::fcntl::open(
        &qmailhome.join(SCHEDULER_LOCK),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let Ok(st) = fstat(&fd) else { return false };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return false;
    }
    crate::fsx::locks::LockTable::read().holds(st.st_dev, st.st_ino)
        || crate::fsx::locks::write_lock_conflicts(&fd).unwrap_or(false)
}

/// qscheduler's count of queues in use for the tools that judge orphans:
/// only while qscheduler runs (see the module's text).
pub fn running_scheduler_in_use() -> Option<u32> {
    if scheduler_running(&qmailhome()) {
        scheduler_in_use()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qscheduler_only_ever_extends_the_configured_range() {
        assert_eq!(served_range(1, 5, None), 1..6);
        assert_eq!(served_range(1, 5, Some(3)), 1..6);
        assert_eq!(served_range(1, 5, Some(8)), 1..9);
        assert_eq!(served_range(0, 2, Some(4)), 0..4);
        assert_eq!(served_range(u32::MAX - 1, 5, None), u32::MAX - 1..u32::MAX);
    }

    #[test]
    fn qscheduler_runs_only_while_its_lock_file_is_locked() {
        use std::os::fd::AsRawFd;
        let home = tempfile::tempdir().unwrap();
        assert!(!scheduler_running(home.path()));
        std::fs::create_dir(home.path().join("queue")).unwrap();
        let lock = std::fs::File::create(home.path().join(SCHEDULER_LOCK)).unwrap();
        assert!(!scheduler_running(home.path()));
        // As qscheduler's lock_exnb: flock, exclusive.
        assert_eq!(
            unsafe { nix::libc::flock(lock.as_raw_fd(), nix::libc::LOCK_EX) },
            0
        );
        assert!(scheduler_running(home.path()));
        drop(lock);
        assert!(!scheduler_running(home.path()));
    }
}
