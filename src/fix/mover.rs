//! Moving one retired queue's messages into the queues of the range: on
//! one filesystem by links and renames, across filesystems by durable copies.

use super::ops::step;
use super::plan::want_file;
use super::plan::{RETIRE_MARKER_PREFIX as MARKER_PREFIX, RETIRE_TEMP_PREFIX as TEMP_PREFIX};
use crate::fsx::beneath;
use crate::fsx::dir::{io_err, open_dir_at, stat_at, Found, Stat};
use crate::queue::found::split_subdirs;
use crate::queue::layout::{self, Layout, MESS, PID};
use crate::queue::name::{parse_inode, split_index};
use crate::queue::users::Ids;
use nix::errno::Errno;
use nix::fcntl::{renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::unistd::linkat;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The other files of a message, in the order they move: `todo` last, as
/// it is what hands a message to qmail-send.
const OTHERS: [&str; 6] = ["info", "local", "remote", "intd", "bounce", "todo"];

pub(super) struct Dest {
    pub(super) n: u32,
    pub(super) root: OwnedFd,
    pub(super) dev: u64,
    /// `queue-fix --disable`d: new mail goes elsewhere when it can.
    pub(super) disabled: bool,
}

pub(super) fn rel(dir: &str, ino: u64, layout: &Layout) -> PathBuf {
    layout.message_path(dir, ino)
}

/// Which of `n` destinations a message goes to. Not `ino % n`: a
/// filesystem hands out inodes in strides (every message takes the same
/// number of them), and a stride sharing a factor with `n` would send all
/// mail to some queues only. Fibonacci hashing mixes the inode first; the
/// choice still depends on the inode alone, so `-N` shows what a run does.
pub(super) fn spread(ino: u64, n: usize) -> usize {
    ((ino.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % n as u64) as usize
}

type Failure = (PathBuf, &'static str, io::Error);

fn at(p: &Path, what: &'static str) -> impl FnOnce(Errno) -> Failure {
    let p = p.to_owned();
    move |e| (p, what, io_err(e))
}

pub(super) struct Mover<'a> {
    pub(super) src: &'a OwnedFd,
    /// (destination queue number, source inode) of every marker an
    /// interrupted run left for this queue: read once, not looked up per
    /// message in every destination.
    pub(super) markers: std::collections::HashSet<(u32, u64)>,
    pub(super) qname: &'a str,
    pub(super) dests: &'a [Dest],
    /// Indexes into `dests` that a message not yet moved may go to.
    pub(super) targets: &'a [usize],
    pub(super) layout: &'a Layout,
    pub(super) ids: &'a Ids,
    pub(super) verbose: bool,
    /// `-N`: say where each message would go, move nothing.
    pub(super) dry: bool,
    pub(super) shown: &'a Path,
    pub(super) base: &'a Path,
    pub(super) pending: std::cell::RefCell<Pending>,
    pub(super) dirs: std::cell::RefCell<BucketDirs>,
}

/// The directories the messages of one `mess/<sub>` move between (the
/// source's and each destination's `info/<sub>`, `remote/<sub>`, ...,
/// `bounce`), each resolved once per bucket as [`beneath::beneath`] resolves
/// a path (no symlink followed, nothing outside the queue), then acted
/// through by name. Resolving every path anew cost an `openat2` and a
/// `close` per name (a `struct file` made and freed each time), the
/// work that grew most with the queue. A directory an attacker renames
/// meanwhile is still the one checked.
#[derive(Default)]
pub(super) struct BucketDirs {
    /// `(destination queue number or None for the source, directory
    /// path)`; `None`: that directory is missing. Emptied with each
    /// bucket, so memory stays the same whatever the queue's size.
    open: std::collections::HashMap<(Option<u32>, PathBuf), Option<std::rc::Rc<OwnedFd>>>,
    /// The message files in the source's split directories of this
    /// bucket other than `mess`, by their listing (sorted inodes), so a
    /// message's absent files are not looked for one by one: a name
    /// looked up and not found costs the kernel a dentry made and freed,
    /// four per message of a queue sending mail out. `None`: not listed
    /// (too many, or the listing failed): every name is tried.
    present: Vec<(&'static str, Option<Vec<u64>>)>,
}

/// Names of one directory of a bucket kept in [`BucketDirs::present`]
/// at most (512 KiB); a bigger directory's names are tried one by one.
const PRESENT_HELD: usize = 1 << 16;

/// The message files of `dir` (a split directory of the bucket `sub`):
/// sorted inodes of the names that are numbers, `None` when more than
/// [`PRESENT_HELD`] or unreadable. A missing directory holds none.
fn list_present(src: &OwnedFd, dir: &'static str, sub: u32) -> Option<Vec<u64>> {
    let fd = match open_dir_at(src, &format!("{dir}/{sub}")) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut found = Vec::new();
    crate::fsx::dir::for_each_name(&fd, |name| {
        if let Some(n) = parse_inode(name.as_encoded_bytes()) {
            if found.len() >= PRESENT_HELD {
                return Err(io::Error::other("too many to hold"));
            }
            found.push(n);
        }
        Ok(())
    })
    .ok()?;
    found.sort_unstable();
    Some(found)
}

/// Moves and copies waiting for their new names to be made durable.
#[derive(Default)]
pub(super) struct Pending {
    /// `(destination queue number, directory)` that got new names.
    dest_dirs: std::collections::HashSet<(u32, PathBuf)>,
    /// Source names to remove once those are synced, `mess` last per message.
    old: Vec<PathBuf>,
    /// Source directories that lost names (by rename).
    src_dirs: std::collections::HashSet<PathBuf>,
    /// Destinations (queue numbers) holding copies not yet synced.
    copied_into: std::collections::HashSet<u32>,
    /// Markers to remove once the sources of their copies are gone.
    markers: Vec<(u32, PathBuf)>,
}

/// Old names held back before a batch is flushed: bounds memory.
const BATCH: usize = 1024;
/// The same for copies across filesystems, whose flush costs a `syncfs`
/// (a journal commit and a cache flush) however few files it covers.
const COPY_BATCH: usize = 8192;

/// The markers left in the destinations' `pid/` for source queue `qname`.
pub(super) fn markers_of(
    qname: &str,
    dests: &[Dest],
) -> io::Result<std::collections::HashSet<(u32, u64)>> {
    let prefix = format!("{MARKER_PREFIX}{qname}.");
    let mut found = std::collections::HashSet::new();
    for d in dests {
        let Some(pid) = open_dir_at(&d.root, PID)? else {
            continue;
        };
        crate::fsx::dir::for_each_name(&pid, |n| {
            if let Some(ino) = n
                .to_str()
                .and_then(|t| t.strip_prefix(&prefix))
                .and_then(|i| i.parse::<u64>().ok())
            {
                found.insert((d.n, ino));
            }
            Ok(())
        })?;
    }
    Ok(found)
}

/// `syncfs(2)` of the filesystem holding `fd`: every copy written there
/// since is on disk. One call for a whole batch instead of an fsync per
/// file, each of which waits for its own journal commit.
fn sync_fs(fd: &OwnedFd) -> io::Result<()> {
    if !beneath::durable() {
        return Ok(());
    }
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor we own.
    if unsafe { nix::libc::syncfs(fd.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn dir_of(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new("")).to_owned()
}

impl Mover<'_> {
    pub(super) fn all(&self) -> Result<(), Failure> {
        let mess = open_dir_at(self.src, MESS)
            .map_err(|e| (self.shown.join(MESS), "cannot open", e))?
            .ok_or_else(|| {
                (
                    self.shown.join(MESS),
                    "cannot open",
                    io::Error::other("missing"),
                )
            })?;
        let subs = split_subdirs(&mess)
            .map_err(|e| (self.shown.join(MESS), "cannot read", e))?
            .0;
        for sub in subs {
            let sfd = open_dir_at(&mess, &sub.to_string())
                .map_err(|e| (self.shown.join(MESS), "cannot open", e))?;
            let Some(sfd) = sfd else { continue };
            // A name's absence is taken from the listing only for a queue
            // nothing writes to: retire never runs on a live one, and the
            // provisioning disables the queues it retires before moving.
            let present = OTHERS
                .iter()
                .filter(|dir| self.layout.is_split_dir(dir))
                .map(|&dir| (dir, list_present(self.src, dir, sub)))
                .collect();
            *self.dirs.borrow_mut() = BucketDirs {
                present,
                ..BucketDirs::default()
            };
            // Each name handled as the listing gives it (nothing held per
            // message: memory stays the same whatever the queue's size).
            // Moving names out of the directory being read is safe: an
            // entry not moved is returned exactly once.
            let mut stopped = None;
            let listed = crate::fsx::dir::for_each_name(&sfd, |name| {
                self.entry(&sfd, sub, name).map_err(|f| {
                    stopped = Some(f);
                    io::Error::other("stopped")
                })
            });
            if let Some(f) = stopped {
                return Err(f);
            }
            listed.map_err(|e| {
                (
                    self.shown.join(MESS).join(sub.to_string()),
                    "cannot read",
                    e,
                )
            })?;
        }
        self.flush()
    }

    /// One name of `mess/<sub>`: retired, set aside, or refused.
    fn entry(&self, sfd: &OwnedFd, sub: u32, name: &std::ffi::OsStr) -> Result<(), Failure> {
        let Some(st) = stat_at(sfd, name).map_err(|e| (self.shown.join(name), "cannot stat", e))?
        else {
            return Ok(());
        };
        let healthy = st.kind == Found::File
            && parse_inode(name.as_encoded_bytes()) == Some(st.ino)
            && split_index(st.ino, self.layout.split) == sub;
        if !healthy && self.dry {
            return Ok(()); // the repair plan above lists its rename
        }
        let path = Path::new(MESS).join(sub.to_string()).join(name);
        if st.kind != Found::File {
            // Planted since the repair above (a FIFO, a directory,
            // a symlink): never opened nor moved, set aside in the
            // queue being retired. (A second link is normal here
            // after an interrupted move on one file system; a copy
            // across checks the link count itself.)
            self.set_aside_src(&path, &st)?;
            return Ok(());
        }
        if !healthy {
            return Err((
                self.shown.join(MESS).join(sub.to_string()).join(name),
                "cannot retire",
                io::Error::other("not a well-named message (repair failed)"),
            ));
        }
        self.one(&st)
    }

    fn set_aside_src(&self, path: &Path, st: &Stat) -> Result<(), Failure> {
        let qwant = super::plan::want_of(&layout::QUARANTINE, self.ids, self.layout);
        let to = super::ops::set_aside(self.src, path, &qwant)?;
        let why = if st.kind == Found::File {
            super::plan::hard_links(st.nlink, 1)
        } else {
            format!("{} where a message file belongs", st.kind.word())
        };
        eprintln!(
            "queue-fix: {}: {why}; set aside as {} instead of retiring it",
            crate::fsx::escape::path(&self.shown.join(path)),
            crate::fsx::escape::path(&self.shown.join(to))
        );
        Ok(())
    }

    /// The directory holding `path` in the destination `dest` (the
    /// source when `None`), opened once per bucket; `Ok(None)` when it is
    /// missing.
    fn dir_for(
        &self,
        dest: Option<&Dest>,
        path: &Path,
    ) -> Result<Option<std::rc::Rc<OwnedFd>>, Errno> {
        let mut dirs = self.dirs.borrow_mut();
        let slot = match dirs.open.entry((dest.map(|d| d.n), dir_of(path))) {
            std::collections::hash_map::Entry::Occupied(known) => return Ok(known.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => slot,
        };
        let root = dest.map_or(self.src, |d| &d.root);
        let fd = match beneath::parent_dir(root, path) {
            Ok(Some(fd)) => Some(std::rc::Rc::new(fd)),
            Ok(None) => return Err(Errno::EINVAL),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        Ok(slot.insert(fd).clone())
    }

    /// Whether the source may hold message `ino`'s file in `dir`: false
    /// only when this bucket's listing of `dir` says it does not.
    fn may_have(&self, dir: &str, ino: u64) -> bool {
        let dirs = self.dirs.borrow();
        let listed = dirs.present.iter().find(|(d, _)| *d == dir);
        !matches!(listed, Some((_, Some(inodes))) if inodes.binary_search(&ino).is_err())
    }

    /// The links a source file may have: 2 for a todo/intd pair sharing
    /// one inode, 1 otherwise.
    fn max_links(&self, dir: &str, ino: u64) -> u64 {
        let Some(p) = super::bucket::partner(dir) else {
            return 1;
        };
        match (
            stat_at(self.src, &rel(dir, ino, self.layout)),
            stat_at(self.src, &rel(p, ino, self.layout)),
        ) {
            (Ok(Some(a)), Ok(Some(b))) if (a.dev, a.ino) == (b.dev, b.ino) => 2,
            _ => 1,
        }
    }

    fn marker(&self, ino: u64) -> PathBuf {
        Path::new(PID).join(format!("{MARKER_PREFIX}{}.{ino}", self.qname))
    }

    fn say(&self, d: &Dest, from: u64, to: Option<u64>) {
        if self.verbose || self.dry {
            let dest = self.base.join(format!("queue{}", d.n));
            let target = match to {
                Some(to) => crate::fsx::escape::path(&dest.join(rel(MESS, to, self.layout))),
                None => format!(
                    "{} (copied: a new inode there)",
                    crate::fsx::escape::path(&dest.join(MESS))
                ),
            };
            println!(
                "retire {} -> {target}",
                crate::fsx::escape::path(&self.shown.join(rel(MESS, from, self.layout))),
            );
        }
    }

    fn one(&self, st: &Stat) -> Result<(), Failure> {
        let ino = st.ino;
        let mess = rel(MESS, ino, self.layout);
        // Where it already went (a resumed run, even into a queue disabled
        // since: finishing there never copies twice), else by inode. A
        // link made on one filesystem shows in the link count, so a
        // message with one link has not gone anywhere yet.
        let same_fs = |d: &Dest| {
            st.nlink > 1
                && d.dev == st.dev
                && matches!(stat_at(&d.root, &mess), Ok(Some(x)) if x.ino == ino && x.dev == st.dev)
        };
        let marked = |d: &Dest| d.dev != st.dev && self.markers.contains(&(d.n, ino));
        let d = self
            .dests
            .iter()
            .find(|d| same_fs(d) || marked(d))
            .unwrap_or_else(|| &self.dests[self.targets[spread(ino, self.targets.len())]]);
        if self.dry {
            self.say(d, ino, (d.dev == st.dev).then_some(ino));
            Ok(())
        } else if d.dev == st.dev {
            self.say(d, ino, Some(ino));
            self.move_same_fs(d, ino)
        } else {
            self.copy_across(d, ino)
        }
    }

    /// Link `mess` into the destination and rename the other files there;
    /// the old `mess` name goes in [`Mover::flush`], once the directories
    /// of the new names are synced (in batches: one fsync per directory for
    /// many messages, not several per message).
    fn move_same_fs(&self, d: &Dest, ino: u64) -> Result<(), Failure> {
        let mess = rel(MESS, ino, self.layout);
        let name = std::ffi::OsString::from(ino.to_string());
        step();
        let linked = self.both_dirs(d, &mess).and_then(|(f, t)| {
            linkat(
                f.as_fd(),
                name.as_os_str(),
                t.as_fd(),
                name.as_os_str(),
                AtFlags::empty(),
            )
        });
        match linked {
            Ok(()) => {}
            Err(Errno::EEXIST) if matches!(stat_at(&d.root, &mess), Ok(Some(x)) if x.ino == ino && x.dev == d.dev) =>
                {}
            Err(e) => {
                return Err(at(
                    &self.shown.join(&mess),
                    "cannot link into the destination",
                )(e))
            }
        }
        let mut pending = self.pending.borrow_mut();
        pending.dest_dirs.insert((d.n, dir_of(&mess)));
        for dir in OTHERS {
            if !self.may_have(dir, ino) {
                continue;
            }
            let p = rel(dir, ino, self.layout);
            self.move_other(d, &p, &name, &mut pending)?;
        }
        pending.old.push(mess);
        let full = pending.old.len() >= BATCH;
        drop(pending);
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Both directories of one name, or the errno of the missing one
    /// (ENOENT, as the name's own call would give).
    fn both_dirs(
        &self,
        d: &Dest,
        p: &Path,
    ) -> Result<(std::rc::Rc<OwnedFd>, std::rc::Rc<OwnedFd>), Errno> {
        match (self.dir_for(None, p)?, self.dir_for(Some(d), p)?) {
            (Some(f), Some(t)) => Ok((f, t)),
            _ => Err(Errno::ENOENT),
        }
    }

    /// One of a message's other files (`p`, named `name`) renamed into
    /// the destination `d` on the same filesystem.
    fn move_other(
        &self,
        d: &Dest,
        p: &Path,
        name: &std::ffi::OsStr,
        pending: &mut Pending,
    ) -> Result<(), Failure> {
        step();
        let (f, t) = match self.both_dirs(d, p) {
            Ok(both) => both,
            // A directory missing on one side: nothing to move unless
            // the source has the file, which is then never left behind
            // silently.
            Err(Errno::ENOENT) => {
                let has = match self.dir_for(None, p) {
                    Ok(Some(sdir)) => !matches!(stat_at(&sdir, name), Ok(None)),
                    _ => false,
                };
                if !has {
                    return Ok(());
                }
                return Err(at(&self.shown.join(p), "cannot move into the destination")(
                    Errno::ENOENT,
                ));
            }
            Err(e) => {
                return Err(at(&self.shown.join(p), "cannot move into the destination")(
                    e,
                ))
            }
        };
        let (f, t) = (f.as_fd(), t.as_fd());
        let moved = renameat2(f, name, t, name, RenameFlags::RENAME_NOREPLACE);
        match moved {
            Ok(()) => {
                pending.dest_dirs.insert((d.n, dir_of(p)));
                pending.src_dirs.insert(dir_of(p));
            }
            Err(Errno::ENOENT) => {}
            Err(Errno::EEXIST) if same_file(self.src, p, &d.root, p) => {
                // A rename leaves one name: the same inode at both means
                // the source name is a leftover; it goes with the batch.
                pending.dest_dirs.insert((d.n, dir_of(p)));
                pending.old.push(p.to_owned());
            }
            Err(Errno::EEXIST) => {
                // Another file under this message's name in the
                // destination: its own message (this inode number's
                // earlier owner) is gone, so it is a stray; ours wins.
                step();
                renameat(f, name, t, name)
                    .map_err(at(&self.shown.join(p), "cannot move into the destination"))?;
                pending.dest_dirs.insert((d.n, dir_of(p)));
                pending.src_dirs.insert(dir_of(p));
            }
            Err(e) => {
                return Err(at(&self.shown.join(p), "cannot move into the destination")(
                    e,
                ))
            }
        }
        Ok(())
    }

    /// Makes the batch durable, then lets the old names go: the copies'
    /// filesystems synced (`syncfs` after every copy, link and rename of
    /// the batch: their data, inodes and directory entries all at once),
    /// then every other destination directory that got a new name; then
    /// the old names in the source are removed and the source's
    /// directories synced; last the markers of the copies are cleared.
    fn flush(&self) -> Result<(), Failure> {
        let Pending {
            dest_dirs,
            old,
            mut src_dirs,
            copied_into,
            markers,
        } = std::mem::take(&mut *self.pending.borrow_mut());
        let mut synced_devs = Vec::new();
        for n in copied_into {
            let Some(d) = self.dests.iter().find(|d| d.n == n) else {
                continue;
            };
            if synced_devs.contains(&d.dev) {
                continue;
            }
            sync_fs(&d.root)
                .map_err(|e| (self.base.join(format!("queue{n}")), "cannot sync", e))?;
            synced_devs.push(d.dev);
        }
        for (n, dir) in dest_dirs {
            let Some(d) = self.dests.iter().find(|d| d.n == n) else {
                continue;
            };
            // syncfs, made after every name of the batch, already put
            // this directory on disk: its fsync would only wait again.
            if synced_devs.contains(&d.dev) {
                continue;
            }
            let dshown = self.base.join(format!("queue{n}"));
            beneath::sync_parent(&d.root, &dir.join("x"))
                .map_err(|e| (dshown.join(&dir), "cannot sync", e))?;
        }
        for p in old {
            step();
            match beneath::unlink(self.src, &p) {
                Ok(()) => {
                    src_dirs.insert(dir_of(&p));
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(at(&self.shown.join(&p), "cannot remove")(e)),
            }
        }
        for dir in src_dirs {
            beneath::sync_parent(self.src, &dir.join("x"))
                .map_err(|e| (self.shown.join(&dir), "cannot sync", e))?;
        }
        // A marker whose source is gone is finished; one left by a crash
        // here is cleared by the next run.
        for (n, marker) in markers {
            let Some(d) = self.dests.iter().find(|d| d.n == n) else {
                continue;
            };
            step();
            match beneath::unlink(&d.root, &marker) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => {
                    let shown = self.base.join(format!("queue{n}")).join(&marker);
                    return Err(at(&shown, "cannot remove")(e));
                }
            }
        }
        Ok(())
    }

    /// Copies the message into `d` under a new inode; its source names
    /// go in [`Mover::flush`], once the batch is on disk.
    fn copy_across(&self, d: &Dest, ino: u64) -> Result<(), Failure> {
        let marker = self.marker(ino);
        let dshown = self.base.join(format!("queue{}", d.n));
        let src_mess = rel(MESS, ino, self.layout);
        let want = want_file(layout::entry(MESS), self.ids, self.layout);
        // A marker whose new mess is linked is the copy of an earlier run,
        // perhaps cut short before its batch was synced: its content is
        // written again (same inode, so the new name stays). One whose new
        // mess is not linked is an unfinished copy.
        let mut new_ino = None;
        if self.markers.contains(&(d.n, ino)) {
            match stat_at(&d.root, &marker) {
                Ok(Some(m)) if matches!(stat_at(&d.root, &rel(MESS, m.ino, self.layout)), Ok(Some(x)) if x.ino == m.ino) =>
                {
                    if self.rewrite(&src_mess, d, &marker, m.ino, &want)?.is_none() {
                        return Ok(());
                    }
                    new_ino = Some(m.ino);
                }
                Ok(Some(_)) => {
                    step();
                    beneath::unlink(&d.root, &marker)
                        .map_err(at(&dshown.join(&marker), "cannot remove"))?;
                }
                _ => {}
            }
        }
        let mut pending = self.pending.borrow_mut();
        let j = match new_ino {
            Some(j) => j,
            None => {
                let Some(j) = self.copy_file(&src_mess, d, &marker, &want, false, 1)? else {
                    return Ok(());
                };
                pending.dest_dirs.insert((d.n, dir_of(&marker)));
                step();
                let to = rel(MESS, j, self.layout);
                beneath::link(&d.root, &marker, &d.root, &to)
                    .map_err(at(&dshown.join(&to), "cannot link the new message"))?;
                pending.dest_dirs.insert((d.n, dir_of(&to)));
                j
            }
        };
        pending.copied_into.insert(d.n);
        self.say(d, ino, Some(j));
        for dir in OTHERS {
            let from = rel(dir, ino, self.layout);
            let want = want_file(layout::entry(dir), self.ids, self.layout);
            let temp = Path::new(PID).join(format!("{TEMP_PREFIX}{}.{ino}.{dir}", self.qname));
            if stat_at(self.src, &from)
                .map_err(|e| (self.shown.join(&from), "cannot stat", e))?
                .is_none()
            {
                continue;
            }
            let max = self.max_links(dir, ino);
            if self.copy_file(&from, d, &temp, &want, true, max)?.is_none() {
                continue;
            }
            let to = rel(dir, j, self.layout);
            step();
            beneath::rename(&d.root, &temp, &d.root, &to)
                .map_err(at(&dshown.join(&to), "cannot rename into place"))?;
            pending.dest_dirs.insert((d.n, dir_of(&to)));
            pending.old.push(from);
        }
        // The old names go once the batch is on disk, mess last.
        pending.old.push(src_mess);
        pending.markers.push((d.n, marker));
        let full = pending.old.len() >= COPY_BATCH;
        drop(pending);
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the source's content again into the copy `to` (inode
    /// `ino`) of an earlier run; `None` when the source was set aside.
    fn rewrite(
        &self,
        from: &Path,
        d: &Dest,
        to: &Path,
        ino: u64,
        want: &super::plan::Want,
    ) -> Result<Option<()>, Failure> {
        let dshown = self.base.join(format!("queue{}", d.n));
        let Some(input) = self.open_source(from, 1)? else {
            return Ok(None);
        };
        step();
        let out = beneath::open(&d.root, to, OFlag::O_WRONLY | OFlag::O_NONBLOCK, 0)
            .map_err(at(&dshown.join(to), "cannot open"))?;
        let (mut input, mut out) = (input, File::from(out));
        let done = (|| -> io::Result<()> {
            let st = out.metadata()?;
            // Only the copy itself: a regular file, the marker and its
            // link in mess/, nothing planted under the marker's name since.
            if !st.is_file() || std::os::unix::fs::MetadataExt::ino(&st) != ino {
                return Err(io::Error::other("not the copy an earlier run made"));
            }
            out.set_len(0)?;
            io::copy(&mut input, &mut out)?;
            std::os::unix::fs::fchown(&out, Some(want.uid), want.gid)?;
            out.set_permissions(std::fs::Permissions::from_mode(want.mode))?;
            Ok(())
        })();
        done.map(Some)
            .map_err(|e| (dshown.join(to), "cannot write", e))
    }

    /// A source file opened for copying, or `None` once set aside: one
    /// that is not a regular file or has more than `max_links` links is
    /// never opened (see [`Mover::copy_file`]).
    fn open_source(&self, from: &Path, max_links: u64) -> Result<Option<File>, Failure> {
        match beneath::open_regular(self.src, from, max_links) {
            Ok((f, _)) => Ok(Some(f)),
            Err(e) if e.raw_os_error().is_none() => {
                let st = stat_at(self.src, from)
                    .map_err(|e| (self.shown.join(from), "cannot stat", e))?;
                if let Some(st) = st {
                    self.set_aside_src(from, &st)?;
                }
                Ok(None)
            }
            Err(e) => Err((self.shown.join(from), "cannot open", e)),
        }
    }

    /// Copies a source file to `to` in the destination (created fresh,
    /// an old one removed first when `replace`), owned and moded per
    /// `want`, not yet synced (its batch is, in [`Mover::flush`]); returns
    /// the new inode. A source that is not a regular file, or has
    /// more than `max_links` links, is never opened nor copied (a FIFO
    /// would block, a hard link would bring an outside file's content into
    /// the queue): it is set aside in the source queue and `None` returned.
    fn copy_file(
        &self,
        from: &Path,
        d: &Dest,
        to: &Path,
        want: &super::plan::Want,
        replace: bool,
        max_links: u64,
    ) -> Result<Option<u64>, Failure> {
        let dshown = self.base.join(format!("queue{}", d.n));
        let Some(input) = self.open_source(from, max_links)? else {
            return Ok(None);
        };
        if replace {
            // A leftover temporary (or anything planted under its name in
            // pid/, which qmailq can write) goes first: the new file is
            // always created, never an existing FIFO or device opened.
            step();
            match beneath::unlink(&d.root, to) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(at(&dshown.join(to), "cannot remove")(e)),
            }
        }
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NONBLOCK;
        step();
        let out = beneath::open(&d.root, to, flags, 0o600)
            .map_err(at(&dshown.join(to), "cannot create"))?;
        let (mut input, mut out) = (input, File::from(out));
        let done = (|| -> io::Result<u64> {
            io::copy(&mut input, &mut out)?;
            std::os::unix::fs::fchown(&out, Some(want.uid), want.gid)?;
            out.set_permissions(std::fs::Permissions::from_mode(want.mode))?;
            Ok(std::os::unix::fs::MetadataExt::ino(&out.metadata()?))
        })();
        done.map(Some)
            .map_err(|e| (dshown.join(to), "cannot write", e))
    }
}

fn same_file(a_root: &OwnedFd, a: &Path, b_root: &OwnedFd, b: &Path) -> bool {
    match (stat_at(a_root, a), stat_at(b_root, b)) {
        (Ok(Some(x)), Ok(Some(y))) => (x.dev, x.ino) == (y.dev, y.ino),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inodes_in_strides_spread_over_every_destination() {
        for n in 1..=10 {
            for stride in 1..=8 {
                let mut got = vec![0u32; n];
                for k in 0..1000 {
                    got[super::spread(5_000_000 + k * stride, n)] += 1;
                }
                let fair = 1000 / n as u32;
                assert!(
                    got.iter().all(|&c| c > fair * 2 / 3 && c < fair * 4 / 3),
                    "n {n}, stride {stride}: {got:?}"
                );
            }
        }
    }
}
