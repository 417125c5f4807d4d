//! Disabling a queue: qmail-multi sends it no new mail while qmail-send
//! keeps delivering what it holds. Two traces, set and cleared together:
//! the marker file [`DISABLED`] at the root (what queue-fix checks against)
//! and [`DISABLED_ROOT_BIT`] on the root's mode (what an unprivileged
//! qmail-multi, which cannot search the root, can see).
//!
//! The queue path is the administrator's and may be a symlink to the
//! queue; below the root nothing is followed: the marker is created with
//! `O_EXCL|O_NOFOLLOW` and only a regular file is accepted or removed.
//! Each change is durable before the call returns (file and root fsynced).

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, Mode, SFlag};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::Path;

use super::layout::{DISABLED, DISABLED_NAME, DISABLED_ROOT_BIT};

/// Why a queue could not be disabled or enabled.
#[derive(Debug)]
pub struct DisableError {
    pub what: String,
    pub errno: Errno,
}

impl fmt::Display for DisableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.errno.desc())
    }
}

impl std::error::Error for DisableError {}

fn err(what: &str) -> impl Fn(Errno) -> DisableError + '_ {
    move |errno| DisableError {
        what: what.to_string(),
        errno,
    }
}

/// Whether the call changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Done,
    AlreadySo,
}

/// Opens a queue root (following only a symlink root or the invoking user
/// owns, as queue-fix does for the path it is given).
pub fn open_root(queue: &Path) -> Result<OwnedFd, DisableError> {
    match crate::fsx::trusted::open_dir_trusted(queue) {
        Ok(Some(fd)) => Ok(fd),
        Ok(None) => Err(err("cannot open the queue")(Errno::ENOENT)),
        Err(e) => Err(DisableError {
            errno: e.raw_os_error().map_or(Errno::EPERM, Errno::from_raw),
            what: format!("cannot open the queue ({e})"),
        }),
    }
}

/// What the marker is under an open root: `None` absent, `Some(true)` a
/// regular file, `Some(false)` something else in its place.
pub fn marker_at(root: &OwnedFd) -> Result<Option<bool>, Errno> {
    match fstatat(root, DISABLED_NAME, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG,
        )),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Disables (`true`) or enables (`false`) the queue at `queue`.
///
/// Disabling makes the marker first (owned like the root, which is
/// qmailq:qmail on a real queue) and then sets the root's bit; enabling
/// clears the bit first and then removes the marker, so an interrupted
/// call leaves a state `queue-fix` repairs toward the marker.
pub fn set_disabled(queue: &Path, disabled: bool) -> Result<Change, DisableError> {
    let root = open_root(queue)?;
    let st = fstat(&root).map_err(err("cannot stat the queue"))?;
    let mode = st.st_mode & 0o7777;
    let marker = marker_at(&root).map_err(err("cannot examine the marker"))?;
    if marker == Some(false) {
        return Err(DisableError {
            what: format!("{DISABLED_NAME} exists and is not a regular file; a repair by queue-fix sets it aside"),
            errno: Errno::EEXIST,
        });
    }
    let has_bit = mode & DISABLED_ROOT_BIT != 0;
    if disabled {
        if marker == Some(true) && has_bit {
            return Ok(Change::AlreadySo);
        }
        if marker.is_none() {
            let fd = openat(
                &root,
                DISABLED_NAME,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(DISABLED.mode),
            )
            .map_err(err("cannot create the marker"))?;
            // Root making it: hand it to the queue's owner, like the rest.
            if nix::unistd::geteuid().is_root() {
                fchown(
                    &fd,
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                )
                .map_err(err("cannot chown the marker"))?;
            }
            fchmod(&fd, Mode::from_bits_truncate(DISABLED.mode))
                .map_err(err("cannot chmod the marker"))?;
            fsync(&fd).map_err(err("cannot sync the marker"))?;
        }
        fchmod(&root, Mode::from_bits_truncate(mode | DISABLED_ROOT_BIT))
            .map_err(err("cannot chmod the queue"))?;
    } else {
        if marker.is_none() && !has_bit {
            return Ok(Change::AlreadySo);
        }
        fchmod(&root, Mode::from_bits_truncate(mode & !DISABLED_ROOT_BIT))
            .map_err(err("cannot chmod the queue"))?;
        fsync(&root).map_err(err("cannot sync the queue"))?;
        if marker == Some(true) {
            match unlinkat(&root, DISABLED_NAME, UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(err("cannot remove the marker")(e)),
            }
        }
    }
    fsync(&root).map_err(err("cannot sync the queue"))?;
    Ok(Change::Done)
}

/// Whether the queue at `queue` is disabled, as queue-fix sees it: the
/// marker is a regular file.
pub fn is_disabled(queue: &Path) -> Result<bool, DisableError> {
    let root = open_root(queue)?;
    Ok(marker_at(&root).map_err(err("cannot examine the marker"))? == Some(true))
}

/// What is under the marker's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Absent,
    /// A regular file: the queue is disabled.
    Regular,
    /// Anything else (its kind, in words): it disables nothing, for any
    /// tool, and does not belong in a queue.
    Other(&'static str),
}

impl Marker {
    pub fn disables(self) -> bool {
        self == Marker::Regular
    }

    /// For queue-fix's plan: why it is set aside, when it is.
    pub fn stray_cause(self) -> Option<String> {
        match self {
            Marker::Other(kind) => Some(format!(
                "{kind} where the {DISABLED_NAME} marker (a regular file) belongs; it disables nothing"
            )),
            _ => None,
        }
    }
}

/// The marker's kind under an open root, not following a symlink.
pub fn marker_kind_at(root: &OwnedFd) -> Result<Marker, Errno> {
    let st = match fstatat(root, DISABLED_NAME, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(Marker::Absent),
        Err(e) => return Err(e),
    };
    let t = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    Ok(if t == SFlag::S_IFREG {
        Marker::Regular
    } else if t == SFlag::S_IFDIR {
        Marker::Other("a directory")
    } else if t == SFlag::S_IFIFO {
        Marker::Other("a named pipe")
    } else if t == SFlag::S_IFLNK {
        Marker::Other("a symbolic link")
    } else if t == SFlag::S_IFSOCK {
        Marker::Other("a socket")
    } else {
        Marker::Other("a device")
    })
}

/// For queue-fix's check: says on stdout that the queue is disabled (a
/// state, not a problem) and returns whether it is, so the root's expected
/// mode carries [`DISABLED_ROOT_BIT`] (a bit without a regular marker is
/// then a wrong mode, cleared by a repair). Only a regular file disables;
/// anything else is [`stray_marker`]'s. A marker that cannot be examined
/// counts as absent.
pub fn note_disabled(root: &OwnedFd, queue: &Path) -> bool {
    let disabled = marker_kind_at(root).is_ok_and(Marker::disables);
    if disabled {
        println!(
            "{}: disabled: qmail-multi sends it no new mail (queue-fix --enable enables it)",
            crate::fsx::escape::path(queue)
        );
    }
    disabled
}

/// For queue-fix's plan: why the thing under the marker's name is set
/// aside, when it is not a regular file.
pub fn stray_marker(root: &OwnedFd) -> Option<String> {
    marker_kind_at(root).ok()?.stray_cause()
}
