//! `FILTERARGS`: the message goes through `/bin/sh -c "$FILTERARGS"`
//! before it is queued. The filter's output is spooled to an unlinked
//! temporary file (the filter writes straight into it, so memory does not
//! grow with the message), and only its exit status decides what happens.

use super::fatal::Fatal;
use crate::exit::QueueExit;
use nix::sys::signal::{SigSet, Signal};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// Variables a filter must not see, so one that re-injects cannot loop.
/// The pass counter goes too: mail a filter injects is a new injection.
pub const HIDDEN_FROM_FILTER: [&str; 3] = [
    "FILTERARGS",
    "SPAMFILTER",
    crate::queue::config::PASSES_VARIABLE,
];

/// What the filter's exit status means for the injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 0: queue the filter's output.
    Pass,
    /// 2 or 99: drop the message on purpose and report success.
    Blackhole,
    /// Anything else: stop with this status.
    Refuse(QueueExit),
}

/// The contract's table from the filter's exit status to the outcome.
pub fn verdict(status: ExitStatus) -> Verdict {
    match (status.code(), status.signal()) {
        (Some(0), _) => Verdict::Pass,
        // 99: qmail-qfilter's code for the same thing.
        (Some(2 | 99), _) => Verdict::Blackhole,
        (Some(100 | 31), _) => Verdict::Refuse(QueueExit::PermanentlyRefused),
        (Some(88), _) => Verdict::Refuse(QueueExit::Custom),
        (None, Some(_)) => Verdict::Refuse(QueueExit::FilterCrashed),
        _ => Verdict::Refuse(QueueExit::TemporarilyRefused),
    }
}

/// Descriptor 0 as a File that is never closed here.
fn stdin_file() -> ManuallyDrop<File> {
    // SAFETY: descriptor 0 is open for the whole run (std reopens it on
    // /dev/null at start-up if it was closed); ManuallyDrop keeps it open.
    ManuallyDrop::new(unsafe { File::from_raw_fd(0) })
}

/// An unlinked read-write temporary file in `tmpdir`.
fn temp_file(tmpdir: &Path) -> Result<File, Fatal> {
    let template = tmpdir.join("qmail-multi.XXXXXX");
    let (fd, path) = nix::unistd::mkstemp(&template).map_err(|e| {
        Fatal::new(
            QueueExit::TempFileFailed,
            format!(
                "creating a temporary file {}: {}",
                crate::fsx::escape::path(&template),
                e.desc()
            ),
        )
    })?;
    // The filter and the queue program get it only as 0 or 1, never leaked.
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let file = File::from(fd);
    std::fs::remove_file(&path).map_err(|e| {
        Fatal::new(
            QueueExit::TempFileFailed,
            format!(
                "unlinking the temporary file {}: {e}",
                crate::fsx::escape::path(&path)
            ),
        )
    })?;
    Ok(file)
}

/// Reads descriptor 0 to its end, so a caller still writing the message
/// is never cut off by EPIPE.
pub fn drain_stdin() -> Result<(), Fatal> {
    io::copy(&mut *stdin_file(), &mut io::sink())
        .map(drop)
        .map_err(|e| {
            Fatal::new(
                QueueExit::CannotReadInput,
                format!("reading the message: {e}"),
            )
        })
}

/// `MAKE_SEEKABLE`: the message copied into a temporary file, rewound,
/// as the filter's input.
fn spooled_input(tmpdir: &Path) -> Result<Stdio, Fatal> {
    let mut spool = temp_file(tmpdir)?;
    io::copy(&mut *stdin_file(), &mut spool).map_err(|e| {
        Fatal::new(
            QueueExit::CannotReadInput,
            format!(
                "spooling the message to {}: {e}",
                crate::fsx::escape::path(tmpdir)
            ),
        )
    })?;
    spool.seek(SeekFrom::Start(0)).map_err(|e| {
        Fatal::new(
            QueueExit::TempFileFailed,
            format!("rewinding the spooled message: {e}"),
        )
    })?;
    Ok(Stdio::from(spool))
}

/// Runs the filter on descriptor 0. On [`Verdict::Pass`] descriptor 0 is
/// the filter's output, rewound; otherwise the caller's message has been
/// read to its end.
pub fn run(command: &OsStr, make_seekable: bool, tmpdir: &Path) -> Result<Verdict, Fatal> {
    let input = if make_seekable {
        spooled_input(tmpdir)?
    } else {
        Stdio::inherit()
    };
    let mut output = temp_file(tmpdir)?;
    let child_output = output.try_clone().map_err(|e| {
        Fatal::new(
            QueueExit::PipeFailed,
            format!("duplicating the temporary file: {e}"),
        )
    })?;
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c").arg(command).stdin(input).stdout(child_output);
    for name in HIDDEN_FROM_FILTER {
        sh.env_remove(name);
    }
    // The alarm stays blocked until the filter's pid is recorded, so an
    // alarm that comes while it starts still kills it (the child starts
    // with an empty mask: std resets it before exec).
    let alarm = SigSet::from(Signal::SIGALRM);
    let _ = alarm.thread_block();
    let spawned = sh.spawn();
    if let Ok(child) = &spawned {
        super::guard::filter_running(child.id() as i32);
    }
    let _ = alarm.thread_unblock();
    let mut child = spawned.map_err(|e| {
        let exit = match e.raw_os_error().map(nix::errno::Errno::from_raw) {
            Some(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOMEM) => QueueExit::ForkFailed,
            _ => QueueExit::CannotExec,
        };
        Fatal::new(exit, format!("starting /bin/sh for FILTERARGS: {e}"))
    })?;
    // Our copies of the child's descriptors go, so nothing but the filter
    // holds the spool open for writing.
    drop(sh);
    let waited = child.wait();
    super::guard::filter_running(0);
    let status = waited.map_err(|e| {
        Fatal::new(
            QueueExit::WaitFailed,
            format!("waiting for the filter: {e}"),
        )
    })?;
    let verdict = verdict(status);
    if !make_seekable && verdict != Verdict::Pass && verdict != Verdict::Blackhole {
        // Refused: the caller learns it from the status; no need to read on.
        return Ok(verdict);
    }
    if !make_seekable {
        drain_stdin()?;
    }
    if verdict == Verdict::Pass {
        output.seek(SeekFrom::Start(0)).map_err(|e| {
            Fatal::new(
                QueueExit::TempFileFailed,
                format!("rewinding the filter's output: {e}"),
            )
        })?;
        nix::unistd::dup2_stdin(&output).map_err(|e| {
            Fatal::new(
                QueueExit::PipeFailed,
                format!("making the filter's output descriptor 0: {}", e.desc()),
            )
        })?;
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        let exited = |c: i32| verdict(ExitStatus::from_raw(c << 8));
        assert_eq!(exited(0), Verdict::Pass);
        assert_eq!(exited(2), Verdict::Blackhole);
        assert_eq!(exited(99), Verdict::Blackhole);
        assert_eq!(exited(31), Verdict::Refuse(QueueExit::PermanentlyRefused));
        assert_eq!(exited(100), Verdict::Refuse(QueueExit::PermanentlyRefused));
        assert_eq!(exited(88), Verdict::Refuse(QueueExit::Custom));
        assert_eq!(exited(1), Verdict::Refuse(QueueExit::TemporarilyRefused));
        assert_eq!(exited(7), Verdict::Refuse(QueueExit::TemporarilyRefused));
        assert_eq!(exited(111), Verdict::Refuse(QueueExit::TemporarilyRefused));
        assert_eq!(
            verdict(ExitStatus::from_raw(9)),
            Verdict::Refuse(QueueExit::FilterCrashed)
        );
    }
}
