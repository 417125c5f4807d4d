//! Opening a directory by path as root when other users can write near it
//! (a queue, its base): a symlink on the way is followed only when root
//! (or, for a run that is not root's, the invoking user) owns it.
//! Otherwise a qmailq-owned `BASE/queue2 -> /root/private` would have
//! queue-fix chown and chmod whatever the link names.

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// Opens the directory `path`, one component at a time; `Ok(None)` when
/// its last component does not exist. A symlink anywhere on the way that
/// someone other than root or the effective user owns is an error naming
/// it and its owner.
pub fn open_dir_trusted(path: &Path) -> io::Result<Option<OwnedFd>> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut fd = open(start, dir_flags, Mode::empty()).map_err(io::Error::from)?;
    let parts: Vec<Component> = path.components().collect();
    let mut walked = PathBuf::from(if path.is_absolute() { "/" } else { "" });
    let me = nix::unistd::geteuid().as_raw();
    for (i, part) in parts.iter().enumerate() {
        let name = match part {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => "..".as_ref(),
            Component::Normal(n) => *n,
        };
        walked.push(name);
        let last = i + 1 == parts.len();
        fd = match openat(&fd, name, dir_flags | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ENOENT) if last => return Ok(None),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| named(&walked, e.into()))?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
                    return Err(named(&walked, io::Error::other("not a directory")));
                }
                if st.st_uid != 0 && st.st_uid != me {
                    return Err(named(
                        &walked,
                        io::Error::other(format!(
                            "a symlink owned by uid {}, not root: refused (its owner could point it anywhere)",
                            st.st_uid
                        )),
                    ));
                }
                match openat(&fd, name, dir_flags, Mode::empty()) {
                    Ok(next) => next,
                    Err(Errno::ENOENT) if last => return Ok(None),
                    Err(e) => return Err(named(&walked, e.into())),
                }
            }
            Err(e) => return Err(named(&walked, e.into())),
        };
    }
    Ok(Some(fd))
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", crate::fsx::escape::path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn own_links_are_followed_and_missing_ends_are_none() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        symlink("real", t.path().join("link")).unwrap();
        assert!(open_dir_trusted(&t.path().join("link")).unwrap().is_some());
        assert!(open_dir_trusted(&t.path().join("link/../real"))
            .unwrap()
            .is_some());
        assert!(open_dir_trusted(&t.path().join("none")).unwrap().is_none());
        std::fs::write(t.path().join("file"), b"").unwrap();
        let e = open_dir_trusted(&t.path().join("file")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(open_dir_trusted(&t.path().join("none/deeper")).is_err());
    }

    #[test]
    fn a_link_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chown of a symlink to another user needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        let link = t.path().join("link");
        symlink("real", &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(4321), None).unwrap();
        let e = open_dir_trusted(&link.join(".")).unwrap_err();
        assert!(e.to_string().contains("owned by uid 4321"), "{e}");
        let e = open_dir_trusted(&link).unwrap_err();
        assert!(e.to_string().contains("not root: refused"), "{e}");
    }
}
