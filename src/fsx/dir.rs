//! Reading a directory others can write: `fstatat` relative to open
//! directory descriptors, listings streamed or read in chunks; never writes.

use super::beneath::beneath;
pub use super::entry::{io_err, Found, Stat};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::{fstatat, Mode};
use std::ffi::{CStr, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `lstat` of `path` relative to `dir`; `None` when there is nothing there
/// (including "a parent is not a directory" and "a parent is a symbolic
/// link": inside a queue, what lies behind a link is never looked at).
pub fn stat_at(dir: impl AsFd, path: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<Option<Stat>> {
    let path = Path::new(path.as_ref());
    if path.as_os_str().as_bytes().contains(&b'/') {
        return match beneath(dir.as_fd(), path) {
            Ok(b) => stat_one(b.dir(), b.name),
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EXDEV) => Ok(None),
            Err(e) => Err(io_err(e)),
        };
    }
    stat_one(dir, path)
}

fn stat_one(dir: impl AsFd, path: &(impl AsRef<OsStr> + ?Sized)) -> io::Result<Option<Stat>> {
    match fstatat(dir, Path::new(path.as_ref()), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st.into())),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// Opens a directory below `dir` for reading and for `*at` calls; `None`
/// when it does not exist (or is not a directory, or is a symlink).
pub fn open_dir_at(
    dir: impl AsFd,
    path: &(impl AsRef<OsStr> + ?Sized),
) -> io::Result<Option<OwnedFd>> {
    open_dir(dir, path.as_ref(), false)
}

/// Opens a directory the operator named (a queue, its parent, the base),
/// following symlinks: queues are often links to other disks. `None` when
/// it does not exist.
pub fn open_named_dir(
    dir: impl AsFd,
    path: &(impl AsRef<OsStr> + ?Sized),
) -> io::Result<Option<OwnedFd>> {
    open_dir(dir, path.as_ref(), true)
}

fn open_dir(dir: impl AsFd, path: &OsStr, follow: bool) -> io::Result<Option<OwnedFd>> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    match nix::fcntl::openat(dir, Path::new(path), flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        // Inside a queue, a non-directory or a symlink in a directory's
        // place counts as missing; the layout check reports its type.
        Err(Errno::ENOTDIR | Errno::ELOOP) if !follow => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

/// The next entries of a directory, `getdents64` straight into `chunk`
/// (8-byte aligned, as the kernel writes `linux_dirent64`); empty at the
/// end. Directories read in turns (queue-stat's buckets read in step)
/// need their own reading positions and no more: `readdir` would hold a
/// 32 KiB buffer per directory.
pub fn read_chunk<'a>(fd: &OwnedFd, chunk: &'a mut [u64]) -> io::Result<&'a [u8]> {
    let size = std::mem::size_of_val(chunk);
    // SAFETY: the kernel writes at most `size` bytes into `chunk`.
    let got = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            chunk.as_mut_ptr().cast::<u8>(),
            size,
        )
    };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: the kernel wrote the first `got` (<= size) bytes.
    Ok(unsafe { std::slice::from_raw_parts(chunk.as_ptr().cast::<u8>(), got) })
}

/// Calls `each(name, d_type)` for the entries of one chunk but `.` and
/// `..`.
pub fn for_each_in(
    mut chunk: &[u8],
    mut each: impl FnMut(&CStr, Option<Type>) -> io::Result<()>,
) -> io::Result<()> {
    while !chunk.is_empty() {
        let (name, kind, length) = dirent(chunk)?;
        chunk = &chunk[length..];
        if !matches!(name.to_bytes(), b"." | b"..") {
            each(name, kind)?;
        }
    }
    Ok(())
}

/// The `linux_dirent64` at the start of `record`: its name, its kind and
/// the record's length (`d_ino` u64, `d_off` i64, `d_reclen` u16,
/// `d_type` u8, then the NUL-terminated name; getdents64(2)).
fn dirent(record: &[u8]) -> io::Result<(&CStr, Option<Type>, usize)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed directory entry");
    let length = match record.get(16..18) {
        Some(&[a, b]) => usize::from(u16::from_ne_bytes([a, b])),
        _ => return Err(bad()),
    };
    let name = record.get(19..length).ok_or_else(bad)?;
    let name = CStr::from_bytes_until_nul(name).map_err(|_| bad())?;
    let kind = match record[18] {
        libc::DT_REG => Some(Type::File),
        libc::DT_DIR => Some(Type::Directory),
        libc::DT_LNK => Some(Type::Symlink),
        libc::DT_FIFO => Some(Type::Fifo),
        libc::DT_SOCK => Some(Type::Socket),
        libc::DT_BLK => Some(Type::BlockDevice),
        libc::DT_CHR => Some(Type::CharacterDevice),
        _ => None,
    };
    Ok((name, kind, length))
}

/// Calls `each(name)` for every entry of the directory `fd` except `.` and
/// `..`, streaming (the listing is never held whole).
pub fn for_each_name(
    fd: &OwnedFd,
    mut each: impl FnMut(&OsStr) -> io::Result<()>,
) -> io::Result<()> {
    let dup = fd.try_clone()?;
    let mut dir = Dir::from_fd(dup).map_err(io_err)?;
    for entry in dir.iter() {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        each(OsStr::from_bytes(name))?;
    }
    Ok(())
}

/// Like [`for_each_name`], with each entry's type as the directory listing
/// gives it (`d_type`), looked up with `fstatat` only where the file system
/// does not say; an entry gone meanwhile is skipped.
pub fn for_each_typed(
    fd: &OwnedFd,
    mut each: impl FnMut(&OsStr, Found) -> io::Result<()>,
) -> io::Result<()> {
    use nix::dir::Type;
    let dup = fd.try_clone()?;
    let mut dir = Dir::from_fd(dup).map_err(io_err)?;
    for entry in dir.iter() {
        let entry = entry.map_err(io_err)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            Some(Type::Directory) => Found::Dir,
            Some(Type::File) => Found::File,
            Some(Type::Fifo) => Found::Fifo,
            Some(_) => Found::Other,
            None => match stat_at(fd, name)? {
                Some(st) => st.kind,
                None => continue,
            },
        };
        each(name, kind)?;
    }
    Ok(())
}

/// Every entry of the directory `fd` with its facts. Used for one split
/// subdirectory at a time, whose size does not grow with the queue.
pub fn list_with_stats(fd: &OwnedFd) -> io::Result<Vec<(OsString, Stat)>> {
    let mut out = Vec::new();
    for_each_name(fd, |name| {
        // An entry that vanished between readdir and fstatat (a live queue)
        // is simply not there.
        if let Some(st) = stat_at(fd, name)? {
            out.push((name.to_owned(), st));
        }
        Ok(())
    })?;
    Ok(out)
}
