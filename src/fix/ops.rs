//! The system calls behind the actions, each counted by the crash hook:
//! relative to the queue's descriptor, no symlink followed, moves durable.

use super::plan::{Expect, MessageMove, Want, MAX_LINKS, TEMP_SUFFIX};
use crate::fsx::beneath;
use crate::fsx::dir::{io_err, stat_at, Found};
use crate::queue::layout::{Kind, QUARANTINE};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counts changes to the queue; with `QUEUE_FIX_CRASH_AFTER=N` (a test
/// hook, undocumented) the process aborts just before change N+1, as a
/// crash would.
static STEPS: AtomicU64 = AtomicU64::new(0);
static CRASH_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);

/// Reads the crash hook from the environment; called once by the program.
pub fn arm_crash_hook() {
    if let Some(n) = std::env::var("QUEUE_FIX_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        CRASH_AFTER.store(n, Ordering::SeqCst);
    }
    if std::env::var_os("QUEUE_FIX_UNSAFE_NO_FSYNC").is_some_and(|v| v == "1") {
        beneath::skip_fsyncs();
    }
}

/// Called before every single change to the file system.
pub fn step() {
    if STEPS.fetch_add(1, Ordering::SeqCst) >= CRASH_AFTER.load(Ordering::SeqCst) {
        std::process::abort();
    }
}

pub(super) type Failure = (PathBuf, &'static str, io::Error);

/// `uid:gid`, or `uid` alone when any group is right (the group is kept).
pub(super) fn owner_text(uid: u32, gid: Option<u32>) -> String {
    match gid {
        Some(g) => format!("{uid}:{g}"),
        None => uid.to_string(),
    }
}

/// A callback given one path at a time.
pub type EachPath<'a> = dyn FnMut(&Path) + 'a;

pub(super) fn at(p: &Path, what: &'static str) -> impl FnOnce(Errno) -> Failure {
    let p = p.to_owned();
    move |e: Errno| (p, what, io_err(e))
}

/// rmdir, never recursive: a directory that gained an entry since it was
/// emptied (an injection under the old layout on a forced live queue) is
/// left for the next run, said as such.
pub(super) fn remove_empty_dir(root: &OwnedFd, path: &Path) -> Result<(), Failure> {
    use std::os::fd::AsFd;
    step();
    let b = beneath::beneath(root.as_fd(), path).map_err(at(path, "cannot remove directory"))?;
    match nix::unistd::unlinkat(b.dir(), b.name, nix::unistd::UnlinkatFlags::RemoveDir) {
        Ok(()) => beneath::sync_parent(root, path).map_err(|e| (path.to_owned(), "cannot sync", e)),
        Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) => Err((
            path.to_owned(),
            "cannot remove directory",
            io::Error::other("not empty after the conversion; left for the next run"),
        )),
        Err(e) => Err(at(path, "cannot remove directory")(e)),
    }
}

/// Owner and mode of an entry queue-fix just created.
pub(super) fn own(root: &OwnedFd, path: &Path, want: &Want) -> Result<(), Failure> {
    let expect = Expect {
        kind: match want.kind {
            Kind::Dir => Found::Dir,
            Kind::File { .. } => Found::File,
            Kind::Fifo => Found::Fifo,
        },
        id: None,
        max_links: MAX_LINKS,
    };
    step();
    beneath::chown_checked(root, path, &expect, want.uid, want.gid)
        .map_err(|e| (path.to_owned(), "cannot change owner", e))?;
    // mkdir and mknod honour the umask; the table's mode is exact.
    step();
    beneath::chmod_checked(root, path, &expect, want.mode)
        .map_err(|e| (path.to_owned(), "cannot change mode", e))?;
    beneath::sync_parent(root, path).map_err(|e| (path.to_owned(), "cannot sync", e))
}

/// The longest quarantine name: a file name is at most 255 bytes, and a
/// `.N` suffix may follow.
pub(super) const QUARANTINE_NAME_MAX: usize = 240;

/// The quarantine name of `path`: its path with `/` as `_`
/// (`info/5/123` → `info_5_123`). A name too long keeps its first bytes,
/// readable, and ends in a hash of the whole, so two long names that share
/// a beginning still differ; a name taken anyway gets `.1`, `.2`, ….
pub fn quarantine_name(path: &Path) -> Vec<u8> {
    let flat: Vec<u8> = path
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == b'/' { b'_' } else { b })
        .collect();
    if flat.len() <= QUARANTINE_NAME_MAX {
        return flat;
    }
    // FNV-1a: stable across builds, enough to tell names apart (a clash
    // only costs a `.N` suffix).
    let hash = flat.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut short = flat[..QUARANTINE_NAME_MAX - 21].to_vec();
    short.extend_from_slice(format!("~{hash:016x}.long").as_bytes());
    short
}

/// Makes sure `quarantine` is a directory: anything else there (a file, a
/// FIFO, a symlink) is renamed aside to `quarantine.was.<inode>` first.
pub(super) fn ensure_quarantine(root: &OwnedFd, want: &Want) -> Result<(), Failure> {
    let qdir = Path::new(QUARANTINE.path);
    match stat_at(root, qdir).map_err(|e| (qdir.to_owned(), "cannot look up", e))? {
        Some(st) if st.kind == Found::Dir => return Ok(()),
        Some(st) => {
            let aside = PathBuf::from(format!("{}.was.{}", QUARANTINE.path, st.ino));
            eprintln!(
                "queue-fix: warning: {}: {} where the quarantine directory belongs; renamed to {}",
                crate::fsx::escape::path(qdir),
                st.kind.word(),
                crate::fsx::escape::path(&aside)
            );
            step();
            match beneath::rename_noreplace(root, qdir, root, &aside) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(at(qdir, "cannot rename aside")(e)),
            }
        }
        None => {}
    }
    step();
    match beneath::mkdir(root, qdir, want.mode) {
        Ok(()) => own(root, qdir, want),
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(at(qdir, "cannot create directory")(e)),
    }
}

/// Renames `path` into the quarantine directory. One rename: interrupted,
/// the entry is either still in place or already aside; a rename moves the
/// name only, so a hard-linked file's other names are untouched. Returns
/// the new name.
pub fn set_aside(root: &OwnedFd, path: &Path, want: &Want) -> Result<PathBuf, Failure> {
    ensure_quarantine(root, want)?;
    let qdir = Path::new(QUARANTINE.path);
    let flat = quarantine_name(path);
    for n in 0u32..10_000 {
        let mut name = OsString::from(std::ffi::OsStr::from_bytes(&flat));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let to = qdir.join(name);
        step();
        match beneath::rename_noreplace(root, path, root, &to) {
            Ok(()) => {
                sync_both(root, &to, path)?;
                return Ok(to);
            }
            Err(Errno::ENOENT) => return Ok(to),
            Err(Errno::EEXIST) => continue,
            Err(e) => {
                return Err((
                    path.to_owned(),
                    "cannot move into the quarantine directory",
                    io_err(e),
                ))
            }
        }
    }
    Err((
        path.to_owned(),
        "cannot move into the quarantine directory",
        io::Error::other("10000 names taken"),
    ))
}

/// After a rename from `from` to `to`: the new name's directory first,
/// then the old one's.
pub(super) fn sync_both(root: &OwnedFd, to: &Path, from: &Path) -> Result<(), Failure> {
    beneath::sync_parent(root, to).map_err(|e| (to.to_owned(), "cannot sync", e))?;
    if to.parent() != from.parent() {
        beneath::sync_parent(root, from).map_err(|e| (from.to_owned(), "cannot sync", e))?;
    }
    Ok(())
}

/// A sized file is built under a temporary name and renamed into place, so
/// a crash never leaves it short; the next run removes the temporary.
pub(super) fn create_file(root: &OwnedFd, path: &Path, want: &Want) -> Result<(), Failure> {
    let size = match want.kind {
        Kind::File { size } => size,
        _ => 0,
    };
    let mut temp = path.as_os_str().to_owned();
    if size > 0 {
        temp.push(TEMP_SUFFIX);
    }
    let temp = PathBuf::from(temp);
    step();
    let fd = beneath::open(
        root,
        &temp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        0o600,
    )
    .map_err(at(&temp, "cannot create file"))?;
    let file = std::fs::File::from(fd);
    let done = (|| -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // ftruncate extends with NUL bytes: the zero-filled table.
        file.set_len(size)?;
        std::os::unix::fs::fchown(&file, Some(want.uid), want.gid)?;
        file.set_permissions(std::fs::Permissions::from_mode(want.mode))?;
        file.sync_all()
    })();
    done.map_err(|e| (temp.clone(), "cannot write", e))?;
    if size > 0 {
        step();
        beneath::rename_noreplace(root, &temp, root, path)
            .map_err(at(path, "cannot rename into place"))?;
    }
    beneath::sync_parent(root, path).map_err(|e| (path.to_owned(), "cannot sync", e))
}

/// How a message move ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    Done,
    /// The new `mess` name is another file's: nothing was changed.
    Blocked,
}

/// Link `mess` under its new name, rename the other files (todo last),
/// unlink the old `mess` name; each new name is synced before the old
/// `mess` name goes. Each step is repeatable: a link that already exists
/// to the same inode, or a file already renamed, is taken as done, so a
/// rerun after a crash at any point finishes the move.
pub fn move_message(
    root: &OwnedFd,
    m: &MessageMove,
    qwant: &Want,
    sync: &Sync,
) -> Result<Moved, Failure> {
    step();
    match beneath::link(root, &m.from, root, &m.to) {
        Ok(()) => {}
        Err(Errno::EEXIST) if same_file(root, &m.from, &m.to) => {}
        Err(Errno::EEXIST) => return Ok(Moved::Blocked),
        Err(Errno::ENOENT) if m.from != m.to && same_file_or_gone(root, &m.from) => {
            // Done by an earlier run (or concurrently): nothing left here.
            return Ok(Moved::Done);
        }
        Err(e) => {
            return Err((
                m.from.clone(),
                "cannot link the message under its new name",
                io_err(e),
            ))
        }
    }
    sync.new_name(root, &m.to)?;
    for (from, to) in &m.others {
        move_file(root, from, to, qwant, sync)?;
    }
    if m.from != m.to {
        sync.remove_old(root, &m.from)?;
    }
    Ok(Moved::Done)
}

/// When the new names of moves are synced, and the old `mess` names go.
pub enum Sync<'a> {
    /// At once, per move.
    Now,
    /// In batches: the old names wait until a batch of moves' directories
    /// is synced (one fsync per directory, not several per message).
    Batched(&'a Mutex<Batch>),
}

/// Directories to sync, then old names to remove, for a batch of moves.
#[derive(Default)]
pub struct Batch {
    dirty: std::collections::HashSet<PathBuf>,
    old: Vec<PathBuf>,
}

/// Old names held back before a batch is flushed: bounds memory.
pub(super) const BATCH: usize = 1024;

/// Blocked message moves remembered by path; beyond, found again.
pub(super) const DEFERRED_HELD: usize = 4096;

pub(super) fn dir_of(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new(".")).to_owned()
}

impl Batch {
    pub(super) fn flush(&mut self, root: &OwnedFd) -> Result<(), Failure> {
        for d in std::mem::take(&mut self.dirty) {
            sync_dir(root, &d)?;
        }
        let mut emptied = std::collections::HashSet::new();
        for p in std::mem::take(&mut self.old) {
            step();
            match beneath::unlink(root, &p) {
                Ok(()) => {
                    emptied.insert(dir_of(&p));
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err((p, "cannot remove the old message name", io_err(e))),
            }
        }
        for d in emptied {
            sync_dir(root, &d)?;
        }
        Ok(())
    }
}

/// fsync of the directory `d` (the directory holding any name inside it).
pub(super) fn sync_dir(root: &OwnedFd, d: &Path) -> Result<(), Failure> {
    beneath::sync_parent(root, &d.join("x")).map_err(|e| (d.to_owned(), "cannot sync", e))
}

impl Sync<'_> {
    fn new_name(&self, root: &OwnedFd, to: &Path) -> Result<(), Failure> {
        match self {
            Sync::Now => {
                beneath::sync_parent(root, to).map_err(|e| (to.to_owned(), "cannot sync", e))
            }
            Sync::Batched(b) => {
                b.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .dirty
                    .insert(dir_of(to));
                Ok(())
            }
        }
    }

    fn renamed(&self, root: &OwnedFd, to: &Path, from: &Path) -> Result<(), Failure> {
        match self {
            Sync::Now => sync_both(root, to, from),
            Sync::Batched(b) => {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.dirty.insert(dir_of(to));
                b.dirty.insert(dir_of(from));
                Ok(())
            }
        }
    }

    /// Removes an old name once its new name is durable.
    fn remove_old(&self, root: &OwnedFd, old: &Path) -> Result<(), Failure> {
        match self {
            Sync::Now => {
                step();
                match beneath::unlink(root, old) {
                    Ok(()) => beneath::sync_parent(root, old)
                        .map_err(|e| (old.to_owned(), "cannot sync", e)),
                    Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err((old.to_owned(), "cannot remove the old name", io_err(e))),
                }
            }
            Sync::Batched(b) => {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.old.push(old.to_owned());
                if b.old.len() >= BATCH {
                    b.flush(root)?;
                }
                Ok(())
            }
        }
    }
}

pub(super) fn same_file_or_gone(root: &OwnedFd, p: &Path) -> bool {
    matches!(stat_at(root, p), Ok(None))
}

/// The temporary name that breaks a cycle of message names: not a number,
/// so the message is moved on from it by this run or the next; made of
/// the old name so a rerun after a crash finds the same one.
pub(super) fn swap_name(from: &Path) -> PathBuf {
    let mut n = from.as_os_str().to_owned();
    n.push(".queue-fix-swap");
    PathBuf::from(n)
}

/// `m` with every file going to the name `to_mess` has (same
/// subdirectory in each directory), its owner fixes already done.
pub(super) fn renamed(m: &MessageMove, to_mess: &Path) -> MessageMove {
    let name = to_mess.file_name().unwrap_or_default();
    let others = m
        .others
        .iter()
        .map(|(from, _)| (from.clone(), from.with_file_name(name)))
        .collect();
    MessageMove {
        from: m.from.clone(),
        to: to_mess.to_owned(),
        others,
        first: Vec::new(),
    }
}

/// Renames without replacing: a target that already is this file means
/// the move was done (the old name goes). Another file there has lost its
/// own message (the name is this message's now): it is set aside first.
pub fn move_file(
    root: &OwnedFd,
    from: &Path,
    to: &Path,
    qwant: &Want,
    sync: &Sync,
) -> Result<(), Failure> {
    if from == to {
        // Onto itself: RENAME_NOREPLACE says EEXIST and the "same file"
        // branch below would unlink the only name.
        return Ok(());
    }
    step();
    match beneath::rename_noreplace(root, from, root, to) {
        Ok(()) => sync.renamed(root, to, from),
        Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EEXIST) if same_file(root, from, to) => sync.remove_old(root, from),
        Err(Errno::EEXIST) => {
            let aside = set_aside(root, to, qwant)?;
            eprintln!(
                "queue-fix: warning: {}: held a file of no message where {} moves; set aside as {}",
                crate::fsx::escape::path(to),
                crate::fsx::escape::path(from),
                crate::fsx::escape::path(&aside)
            );
            step();
            match beneath::rename_noreplace(root, from, root, to) {
                Ok(()) => sync.renamed(root, to, from),
                Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err((from.to_owned(), "cannot rename", io_err(e))),
            }
        }
        Err(e) => Err((from.to_owned(), "cannot rename", io_err(e))),
    }
}

pub(super) fn same_file(root: &OwnedFd, a: &Path, b: &Path) -> bool {
    match (stat_at(root, a), stat_at(root, b)) {
        (Ok(Some(x)), Ok(Some(y))) => (x.dev, x.ino) == (y.dev, y.ino),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_names_fit_a_file_name_keep_a_readable_start_and_differ() {
        let short = quarantine_name(Path::new("info/5/123"));
        assert_eq!(short, b"info_5_123");
        let a = format!("info/5/{}1", "9".repeat(248));
        let b = format!("info/5/{}2", "9".repeat(248));
        let (qa, qb) = (
            quarantine_name(Path::new(&a)),
            quarantine_name(Path::new(&b)),
        );
        assert!(qa.len() + ".9999".len() <= 255, "{}", qa.len());
        assert!(qa.starts_with(b"info_5_9999"));
        assert_ne!(qa, qb);
    }
}
