//! Opening and changing names below a directory without ever following a
//! symbolic link.
//!
//! queue-fix runs as root in directories the qmail accounts can write; a
//! symlink planted in `info/5` must not lead a chown, chmod, rename or
//! unlink out of the queue. Every call resolves the parent directory with
//! `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` (or, where that system
//! call is unavailable, one `O_NOFOLLOW` open per component) and acts on
//! the last name relative to it; the last name itself is never followed.

use super::entry::{io_err, Found, Stat};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fchmodat, fstat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, fsync, linkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

/// `QUEUE_FIX_UNSAFE_NO_FSYNC=1` (a benchmark hook, undocumented) skips
/// every fsync, to measure what durability costs.
static NO_SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether moves are made durable (fsync of files and directories).
pub fn durable() -> bool {
    !NO_SYNC.load(std::sync::atomic::Ordering::Relaxed)
}

/// The benchmark hook's switch (see [`durable`]).
pub(crate) fn skip_fsyncs() {
    NO_SYNC.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The directory holding a path's last name, and that name.
pub struct Beneath<'a> {
    held: Option<OwnedFd>,
    root: BorrowedFd<'a>,
    pub name: &'a OsStr,
}

impl Beneath<'_> {
    pub fn dir(&self) -> BorrowedFd<'_> {
        match &self.held {
            Some(fd) => fd.as_fd(),
            None => self.root,
        }
    }
}

/// Resolves `path` (relative, no `..`) below `root` without following a
/// symlink in any directory on the way.
pub fn beneath<'a>(root: BorrowedFd<'a>, path: &'a Path) -> Result<Beneath<'a>, Errno> {
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

/// The directory holding `path`'s last name, resolved below `root` as
/// [`beneath`] does, as a descriptor of its own to act through for many
/// names (`None` when that directory is `root` itself).
pub fn parent_dir(root: &OwnedFd, path: &Path) -> Result<Option<OwnedFd>, Errno> {
    Ok(beneath(root.as_fd(), path)?.held)
}

fn walk(root: BorrowedFd<'_>, parent: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let mut fd: Option<OwnedFd> = None;
    for c in parent.components() {
        let Component::Normal(part) = c else {
            return Err(Errno::EXDEV);
        };
        let next = openat(
            fd.as_ref().map_or(root, |f| f.as_fd()),
            part,
            flags,
            Mode::empty(),
        )?;
        fd = Some(next);
    }
    fd.ok_or(Errno::EINVAL)
}

/// What an entry must still be when queue-fix changes its owner or mode:
/// what the plan saw. Checked on the descriptor that is then changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub kind: Found,
    /// `(dev, ino)` seen; `None` for an entry queue-fix just created.
    pub id: Option<(u64, u64)>,
    /// Most hard links allowed (directories are not checked).
    pub max_links: u64,
}

impl Expect {
    pub fn seen(st: &Stat, max_links: u64) -> Expect {
        Expect {
            kind: st.kind,
            id: Some((st.dev, st.ino)),
            max_links,
        }
    }
}

/// `.`: the queue directory, held open as `root`.
fn is_root_itself(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new(".")
}

pub fn mkdir(root: &OwnedFd, path: &Path, mode: u32) -> Result<(), Errno> {
    let b = beneath(root.as_fd(), path)?;
    mkdirat(b.dir(), b.name, Mode::from_bits_truncate(mode))
}

pub fn mkfifo(root: &OwnedFd, path: &Path, mode: u32) -> Result<(), Errno> {
    let b = beneath(root.as_fd(), path)?;
    mknodat(
        b.dir(),
        b.name,
        SFlag::S_IFIFO,
        Mode::from_bits_truncate(mode),
        0,
    )
}

pub fn link(from_root: &OwnedFd, from: &Path, to_root: &OwnedFd, to: &Path) -> Result<(), Errno> {
    let (f, t) = (
        beneath(from_root.as_fd(), from)?,
        beneath(to_root.as_fd(), to)?,
    );
    linkat(f.dir(), f.name, t.dir(), t.name, AtFlags::empty())
}

pub fn rename_noreplace(
    from_root: &OwnedFd,
    from: &Path,
    to_root: &OwnedFd,
    to: &Path,
) -> Result<(), Errno> {
    let (f, t) = (
        beneath(from_root.as_fd(), from)?,
        beneath(to_root.as_fd(), to)?,
    );
    renameat2(
        f.dir(),
        f.name,
        t.dir(),
        t.name,
        RenameFlags::RENAME_NOREPLACE,
    )
}

pub fn rename(from_root: &OwnedFd, from: &Path, to_root: &OwnedFd, to: &Path) -> Result<(), Errno> {
    let (f, t) = (
        beneath(from_root.as_fd(), from)?,
        beneath(to_root.as_fd(), to)?,
    );
    renameat(f.dir(), f.name, t.dir(), t.name)
}

pub fn unlink(root: &OwnedFd, path: &Path) -> Result<(), Errno> {
    let b = beneath(root.as_fd(), path)?;
    unlinkat(b.dir(), b.name, UnlinkatFlags::NoRemoveDir)
}

/// Opens (or creates) a file; the last name is never followed.
pub fn open(root: &OwnedFd, path: &Path, flags: OFlag, mode: u32) -> Result<OwnedFd, Errno> {
    let b = beneath(root.as_fd(), path)?;
    openat(
        b.dir(),
        b.name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
}

/// Opens `path` itself (never what a symlink points to) as an `O_PATH`
/// descriptor, which no open of a FIFO or device can block on or trigger,
/// and checks with `fstat` that it is still what the plan saw. Every change
/// to an existing entry's owner or mode goes through this descriptor, so
/// the object checked is the object changed.
pub fn open_checked(root: &OwnedFd, path: &Path, expect: &Expect) -> io::Result<(OwnedFd, Stat)> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = if is_root_itself(path) {
        openat(root, ".", flags, Mode::empty())
    } else {
        let b = beneath(root.as_fd(), path).map_err(io_err)?;
        openat(b.dir(), b.name, flags, Mode::empty())
    }
    .map_err(io_err)?;
    let st: Stat = fstat(&fd).map_err(io_err)?.into();
    check(expect, &st)?;
    Ok((fd, st))
}

/// Whether `st` is still the entry the plan was made from.
pub fn check(expect: &Expect, st: &Stat) -> io::Result<()> {
    if st.kind != expect.kind {
        return Err(io::Error::other(format!(
            "is now {}, not {} as when examined; left alone",
            st.kind.word(),
            expect.kind.word()
        )));
    }
    if expect.id.is_some_and(|id| id != (st.dev, st.ino)) {
        return Err(io::Error::other(
            "was replaced since it was examined; left alone",
        ));
    }
    if st.kind != Found::Dir && st.nlink > expect.max_links {
        return Err(io::Error::other(format!(
            "has {} hard links where the layout allows {}: another name, perhaps outside \
             the queue, shares this file; left alone",
            st.nlink, expect.max_links
        )));
    }
    Ok(())
}

/// chown of the checked descriptor (`AT_EMPTY_PATH`: the descriptor's own
/// inode, whatever names it has now).
pub fn chown_checked(
    root: &OwnedFd,
    path: &Path,
    expect: &Expect,
    uid: u32,
    gid: Option<u32>,
) -> io::Result<()> {
    let (fd, _) = open_checked(root, path, expect)?;
    fchownat(
        &fd,
        "",
        Some(Uid::from_raw(uid)),
        gid.map(Gid::from_raw),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(io_err)
}

/// chmod of the checked descriptor. Linux has no fchmod for `O_PATH`
/// descriptors before fchmodat2; `/proc/self/fd/N` names exactly that
/// inode (it is not a path lookup that a rename could redirect).
pub fn chmod_checked(root: &OwnedFd, path: &Path, expect: &Expect, mode: u32) -> io::Result<()> {
    let (fd, _) = open_checked(root, path, expect)?;
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fchmodat(
        nix::fcntl::AT_FDCWD,
        magic.as_str(),
        Mode::from_bits_truncate(mode),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| match e {
        Errno::ENOENT => io::Error::other("cannot change mode: /proc is not mounted"),
        e => io_err(e),
    })
}

/// Opens a regular file for reading, after checking through an `O_PATH`
/// descriptor that it is one (a FIFO would block the open, a device could
/// act on it) with no more links than `max_links`; the read descriptor is
/// reopened from that checked descriptor, so it is the same inode.
pub fn open_regular(root: &OwnedFd, path: &Path, max_links: u64) -> io::Result<(File, Stat)> {
    let expect = Expect {
        kind: Found::File,
        id: None,
        max_links,
    };
    let (fd, st) = open_checked(root, path, &expect)?;
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = nix::fcntl::open(
        magic.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let again: Stat = fstat(&file).map_err(io_err)?.into();
    if (again.dev, again.ino) != (st.dev, st.ino) {
        return Err(io::Error::other(
            "was replaced while being opened; left alone",
        ));
    }
    Ok((File::from(file), st))
}

/// fsync of the directory holding `path`'s last name: a new name there (or
/// a name gone) survives a power cut only once that directory is synced.
pub fn sync_parent(root: &OwnedFd, path: &Path) -> io::Result<()> {
    if !durable() {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new(""));
    if is_root_itself(parent) {
        return fsync(root).map_err(io_err);
    }
    let b = beneath(root.as_fd(), parent).map_err(io_err)?;
    let fd = openat(
        b.dir(),
        b.name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    fsync(&fd).map_err(io_err)
}

/// fsync of a file's data and metadata (unless durability is switched off
/// for a benchmark).
pub fn sync_file(f: &File) -> io::Result<()> {
    if durable() {
        f.sync_all()
    } else {
        Ok(())
    }
}
