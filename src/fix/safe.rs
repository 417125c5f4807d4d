//! Changes below a queue root that never follow a symbolic link.
//!
//! queue-fix runs as root in directories the qmail accounts can write; a
//! symlink planted in `info/5` must not lead a chown, chmod, rename or
//! unlink out of the queue. Every call resolves the parent directory with
//! `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` (or, where that system
//! call is unavailable, one `O_NOFOLLOW` open per component) and acts on
//! the last name relative to it; the last name itself is never followed.

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fchmod, fchmodat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, linkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// The directory holding a path's last name, and that name.
pub struct Beneath<'a> {
    held: Option<OwnedFd>,
    root: &'a OwnedFd,
    pub name: &'a OsStr,
}

impl Beneath<'_> {
    pub fn dir(&self) -> &OwnedFd {
        self.held.as_ref().unwrap_or(self.root)
    }
}

/// Resolves `path` (relative, no `..`) below `root` without following a
/// symlink in any directory on the way.
pub fn beneath<'a>(root: &'a OwnedFd, path: &'a Path) -> Result<Beneath<'a>, Errno> {
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let parent = path.parent().unwrap_or(Path::new(""));
    if parent.as_os_str().is_empty() || parent == Path::new(".") {
        return Ok(Beneath {
            held: None,
            root,
            name,
        });
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let how = nix::fcntl::OpenHow::new().flags(flags).resolve(
        nix::fcntl::ResolveFlag::RESOLVE_NO_SYMLINKS | nix::fcntl::ResolveFlag::RESOLVE_BENEATH,
    );
    let held = match nix::fcntl::openat2(root, parent, how) {
        Ok(fd) => fd,
        Err(Errno::ENOSYS | Errno::EPERM) => walk(root, parent, flags)?,
        Err(e) => return Err(e),
    };
    Ok(Beneath {
        held: Some(held),
        root,
        name,
    })
}

fn walk(root: &OwnedFd, parent: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let mut fd: Option<OwnedFd> = None;
    for c in parent.components() {
        let Component::Normal(part) = c else {
            return Err(Errno::EXDEV);
        };
        let next = openat(fd.as_ref().unwrap_or(root), part, flags, Mode::empty())?;
        fd = Some(next);
    }
    fd.ok_or(Errno::EINVAL)
}

/// `.`: the queue directory, held open as `root`.
fn is_root_itself(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new(".")
}

pub fn mkdir(root: &OwnedFd, path: &Path, mode: u32) -> Result<(), Errno> {
    let b = beneath(root, path)?;
    mkdirat(b.dir(), b.name, Mode::from_bits_truncate(mode))
}

pub fn mkfifo(root: &OwnedFd, path: &Path, mode: u32) -> Result<(), Errno> {
    let b = beneath(root, path)?;
    mknodat(
        b.dir(),
        b.name,
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(mode),
        0,
    )
}

pub fn chown(root: &OwnedFd, path: &Path, uid: u32, gid: u32) -> Result<(), Errno> {
    if is_root_itself(path) {
        return nix::unistd::fchown(root, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    }
    let b = beneath(root, path)?;
    fchownat(
        b.dir(),
        b.name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// chmod through a descriptor opened with `O_NOFOLLOW` (Linux cannot chmod
/// a path without following it). An unprivileged caller that cannot open
/// the file (mode 000) falls back to the path: it has no rights to abuse.
pub fn chmod(root: &OwnedFd, path: &Path, mode: u32) -> Result<(), Errno> {
    let mode = Mode::from_bits_truncate(mode);
    if is_root_itself(path) {
        return fchmod(root, mode);
    }
    let b = beneath(root, path)?;
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    match openat(b.dir(), b.name, flags, Mode::empty()) {
        Ok(fd) => fchmod(&fd, mode),
        Err(Errno::EACCES) if !nix::unistd::geteuid().is_root() => {
            fchmodat(b.dir(), b.name, mode, FchmodatFlags::FollowSymlink)
        }
        Err(e) => Err(e),
    }
}

pub fn link(from_root: &OwnedFd, from: &Path, to_root: &OwnedFd, to: &Path) -> Result<(), Errno> {
    let (f, t) = (beneath(from_root, from)?, beneath(to_root, to)?);
    linkat(f.dir(), f.name, t.dir(), t.name, AtFlags::empty())
}

pub fn rename_noreplace(
    from_root: &OwnedFd,
    from: &Path,
    to_root: &OwnedFd,
    to: &Path,
) -> Result<(), Errno> {
    let (f, t) = (beneath(from_root, from)?, beneath(to_root, to)?);
    renameat2(
        f.dir(),
        f.name,
        t.dir(),
        t.name,
        RenameFlags::RENAME_NOREPLACE,
    )
}

pub fn rename(from_root: &OwnedFd, from: &Path, to_root: &OwnedFd, to: &Path) -> Result<(), Errno> {
    let (f, t) = (beneath(from_root, from)?, beneath(to_root, to)?);
    renameat(f.dir(), f.name, t.dir(), t.name)
}

pub fn unlink(root: &OwnedFd, path: &Path) -> Result<(), Errno> {
    let b = beneath(root, path)?;
    unlinkat(b.dir(), b.name, UnlinkatFlags::NoRemoveDir)
}

/// Opens (or creates) a file; the last name is never followed.
pub fn open(root: &OwnedFd, path: &Path, flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
    let b = beneath(root, path)?;
    openat(
        b.dir(),
        b.name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
}
