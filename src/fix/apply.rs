//! Executing a plan: `-N` prints it, `-i` asks once per kind of action,
//! otherwise every action runs, relative to the queue's directory
//! descriptor, in an order that is safe to interrupt.

use super::plan::{Action, ActionKind, Expect, MessageMove, Want, MAX_LINKS, TEMP_SUFFIX};
use crate::fsx::beneath;
use crate::fsx::dir::{io_err, stat_at, Found};
use crate::queue::layout::{Kind, QUARANTINE};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How a plan is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// `-N`: print, change nothing.
    DryRun,
    /// `-i`: ask once per kind of action.
    Ask,
    Apply,
    /// Count the problems only, print and change nothing (a live queue
    /// without `--force`).
    CountOnly,
}

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

/// `-i`: the operator's answer for each kind of action, asked once per
/// run (not once per queue) on stderr, read from stdin; no answer is no.
pub fn ask(kind: ActionKind) -> bool {
    static ANSWERS: Mutex<Option<HashMap<ActionKind, bool>>> = Mutex::new(None);
    let mut answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
    *answers
        .get_or_insert_with(HashMap::new)
        .entry(kind)
        .or_insert_with(|| {
            eprint!("queue-fix: {}? [y/N] ", kind.question());
            let _ = io::stderr().flush();
            let mut line = String::new();
            let _ = io::stdin().lock().read_line(&mut line);
            matches!(line.trim(), "y" | "Y" | "yes")
        })
}

/// Executes actions against one queue.
pub struct Applier<'a> {
    pub root: Option<&'a OwnedFd>,
    /// The queue's path as the user gave it, for every message.
    pub shown: &'a Path,
    pub mode: RunMode,
    pub verbose: bool,
    pub delete_strays: bool,
    /// What the quarantine directory must be.
    pub quarantine: Want,
    errors: AtomicU64,
    /// Problems this run saw and left as they were: reported only
    /// ([`Applier::warn`]) or declined at a `-i` question.
    left: AtomicU64,
    /// Message moves that found their new name taken by another misnamed
    /// message: finished by [`Applier::finish_moves`], one thread, after
    /// the parallel pass. At most [`DEFERRED_HELD`] are held; beyond, the
    /// flag says to find them again by a pass over `mess`.
    deferred: Mutex<(Vec<PathBuf>, bool)>,
    /// Syncs and old names of the parallel pass's moves, done in batches.
    batch: Mutex<Batch>,
}

impl<'a> Applier<'a> {
    pub fn new(
        root: Option<&'a OwnedFd>,
        shown: &'a Path,
        mode: RunMode,
        verbose: bool,
        delete_strays: bool,
        quarantine: Want,
    ) -> Applier<'a> {
        Applier {
            root,
            shown,
            mode,
            verbose,
            delete_strays,
            quarantine,
            errors: AtomicU64::new(0),
            left: AtomicU64::new(0),
            deferred: Mutex::new((Vec::new(), false)),
            batch: Mutex::new(Batch::default()),
        }
    }

    /// Actions that failed (each already reported on stderr).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Problems seen and left unchanged (see the field); with
    /// [`Applier::errors`] this is what a repair did not repair.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    /// `quarantine` exists but is not a directory: renamed aside and made
    /// anew (said with `-N`).
    pub fn fix_quarantine(&self) {
        match self.mode {
            RunMode::CountOnly => {}
            RunMode::DryRun => println!(
                "rename {} aside and create it as a directory (it is not one)",
                self.show(Path::new(QUARANTINE.path))
            ),
            RunMode::Ask | RunMode::Apply => {
                if !self.allowed(ActionKind::Strays) {
                    self.left.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if let Some(root) = self.root {
                    if let Err((rel, what, e)) = ensure_quarantine(root, &self.quarantine) {
                        self.report(&rel, what, &e);
                    }
                }
            }
        }
    }

    /// Reports something left alone (counted by the plan, not an error).
    pub fn warn(&self, rel: &Path, cause: &str) {
        self.left.fetch_add(1, Ordering::Relaxed);
        self.say(rel, cause);
    }

    /// Says what this run is about to repair (not left, so not counted).
    pub fn say(&self, rel: &Path, cause: &str) {
        if self.mode != RunMode::CountOnly {
            eprintln!("queue-fix: {}: {cause}", self.show(rel));
        }
    }

    pub fn show(&self, rel: &Path) -> String {
        if rel == Path::new(".") {
            crate::fsx::escape::path(self.shown)
        } else {
            crate::fsx::escape::path(&self.shown.join(rel))
        }
    }

    /// Reports a failure naming the path and the cause.
    pub fn fail(&self, rel: &Path, what: &str, e: &io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("queue-fix: {}: {what}: {e}", self.show(rel));
    }

    /// Prints (`-N`, `-v`), asks (`-i`) and runs one action.
    pub fn run(&self, action: &Action) {
        if self.mode == RunMode::CountOnly {
            return;
        }
        let print = self.mode == RunMode::DryRun || self.verbose;
        if print {
            let mut out = io::stdout().lock();
            for line in self.describe(action) {
                let _ = writeln!(out, "{line}");
            }
        }
        if self.mode == RunMode::DryRun {
            return;
        }
        if !self.allowed(action.kind()) {
            // Counted as the plan counts it: a message move with its
            // companion files is one problem per file.
            let weight = match action {
                Action::MoveMessage(m) => 1 + m.first.len() as u64,
                _ => 1,
            };
            self.left.fetch_add(weight, Ordering::Relaxed);
            return;
        }
        let Some(root) = self.root else { return };
        if let Err((rel, what, e)) = self.execute(root, action) {
            self.report(&rel, what, &e);
        }
    }

    /// A failed check of what an entry still is (replaced, retyped, more
    /// links) is a refusal to touch it, said as such; anything else is an
    /// error.
    fn report(&self, rel: &Path, what: &str, e: &io::Error) {
        if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::Other {
            self.warn(rel, &e.to_string());
        } else {
            self.fail(rel, what, e);
        }
    }

    /// Whether actions of this kind run: always, or as `-i`'s answer says.
    pub fn allowed(&self, kind: ActionKind) -> bool {
        self.mode != RunMode::Ask || ask(kind)
    }

    fn describe(&self, action: &Action) -> Vec<String> {
        let s = |p: &Path| self.show(p);
        let owner = |w: &Want| format!("{:04o} {}", w.mode, owner_text(w.uid, w.gid));
        match action {
            Action::CreateDir { path, want } => {
                vec![format!("create directory {} ({})", s(path), owner(want))]
            }
            Action::CreateFile { path, want } => {
                let size = match want.kind {
                    crate::queue::layout::Kind::File { size } => size,
                    _ => 0,
                };
                vec![format!(
                    "create file {} ({}, {size} bytes)",
                    s(path),
                    owner(want)
                )]
            }
            Action::CreateFifo { path, want } => {
                vec![format!("create fifo {} ({})", s(path), owner(want))]
            }
            Action::Chown {
                path,
                uid,
                gid,
                was,
                ..
            } => {
                vec![format!(
                    "chown {} {} (was {}:{})",
                    owner_text(*uid, *gid),
                    s(path),
                    was.0,
                    was.1
                )]
            }
            Action::Chmod {
                path, mode, was, ..
            } => {
                vec![format!("chmod {mode:04o} {} (was {was:04o})", s(path))]
            }
            Action::MoveMessage(m) => {
                let mut v: Vec<String> = m.first.iter().flat_map(|a| self.describe(a)).collect();
                v.push(format!("rename {} -> {}", s(&m.from), s(&m.to)));
                v.extend(
                    m.others
                        .iter()
                        .map(|(f, t)| format!("rename {} -> {}", s(f), s(t))),
                );
                v
            }
            Action::MoveFile { from, to } => vec![format!("rename {} -> {}", s(from), s(to))],
            Action::SetAside { path, cause, keep } => {
                if self.delete_strays && !keep {
                    vec![format!(
                        "delete {} ({})",
                        s(path),
                        crate::fsx::escape::bytes(cause.as_bytes())
                    )]
                } else {
                    vec![format!(
                        "quarantine {} -> {}/ ({})",
                        s(path),
                        s(Path::new(QUARANTINE.path)),
                        crate::fsx::escape::bytes(cause.as_bytes())
                    )]
                }
            }
            Action::RemoveLeftover { path } => {
                vec![format!(
                    "remove {} (left by an interrupted queue-fix)",
                    s(path)
                )]
            }
            Action::RemoveEmptyDir { path } => {
                vec![format!("remove empty directory {}", s(path))]
            }
        }
    }

    fn execute(&self, root: &OwnedFd, action: &Action) -> Result<(), Failure> {
        match action {
            Action::CreateDir { path, want } => {
                step();
                beneath::mkdir(root, path, want.mode)
                    .map_err(at(path, "cannot create directory"))?;
                own(root, path, want)
            }
            Action::CreateFile { path, want } => create_file(root, path, want),
            Action::CreateFifo { path, want } => {
                step();
                beneath::mkfifo(root, path, want.mode)
                    .map_err(at(path, "cannot create named pipe"))?;
                own(root, path, want)
            }
            Action::Chown {
                path,
                uid,
                gid,
                expect,
                ..
            } => {
                step();
                beneath::chown_checked(root, path, expect, *uid, *gid)
                    .map_err(|e| (path.clone(), "cannot change owner", e))
            }
            Action::Chmod {
                path, mode, expect, ..
            } => {
                step();
                beneath::chmod_checked(root, path, expect, *mode)
                    .map_err(|e| (path.clone(), "cannot change mode", e))
            }
            Action::MoveMessage(m) => {
                self.first(root, m);
                match move_message(root, m, &self.quarantine, &Sync::Batched(&self.batch))? {
                    Moved::Done => Ok(()),
                    Moved::Blocked => {
                        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
                        if d.1 || d.0.len() >= DEFERRED_HELD {
                            // Memory stays bounded: all found again later.
                            *d = (Vec::new(), true);
                        } else {
                            d.0.push(m.from.clone());
                        }
                        Ok(())
                    }
                }
            }
            Action::MoveFile { from, to } => move_file(
                root,
                from,
                to,
                &self.quarantine,
                &Sync::Batched(&self.batch),
            ),
            Action::SetAside { path, keep, .. } => {
                if self.delete_strays && !keep {
                    step();
                    beneath::unlink(root, path).map_err(at(path, "cannot delete"))?;
                    beneath::sync_parent(root, path).map_err(|e| (path.clone(), "cannot sync", e))
                } else {
                    set_aside(root, path, &self.quarantine).map(|_| ())
                }
            }
            Action::RemoveLeftover { path } => {
                step();
                match beneath::unlink(root, path) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(at(path, "cannot remove")(e)),
                }
            }
            Action::RemoveEmptyDir { path } => remove_empty_dir(root, path),
        }
    }

    /// The owner and mode fixes that precede a move (see
    /// [`MessageMove::first`]); a failure is reported and the move still
    /// runs (the file is then what it was, under its right name).
    fn first(&self, root: &OwnedFd, m: &MessageMove) {
        for a in &m.first {
            if let Err((rel, what, e)) = self.execute(root, a) {
                self.report(&rel, what, &e);
            }
        }
    }

    /// Syncs the directories of every new name the moves so far made, then
    /// removes their old `mess` names and syncs those directories.
    pub fn flush(&self) {
        let Some(root) = self.root else { return };
        let mut batch = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if let Err((rel, what, e)) = batch.flush(root) {
            self.fail(&rel, what, &e);
        }
    }

    /// Finishes the moves that found their new name taken. A message's new
    /// name is its inode number, unique on the file system, so whatever
    /// holds that name is another misnamed message: it moves first (and the
    /// one holding its new name before it, and so on); a cycle of names is
    /// broken by moving one message to a temporary name, from which it
    /// moves last. Every move is re-planned from what is on disk now, so
    /// a message already moved as part of another's chain is skipped.
    /// `plan_one` plans the move of the message whose `mess` file is at
    /// the given path, `None` when it needs none (gone, or well named).
    ///
    /// When more moves were blocked than were held, `each_misnamed` is
    /// called to find them again: it calls its argument with the path of
    /// every `mess` file not named by its inode in its subdirectory.
    pub fn finish_moves(
        &self,
        plan_one: &dyn Fn(&Path) -> Option<MessageMove>,
        each_misnamed: &dyn Fn(&mut EachPath),
    ) {
        let Some(root) = self.root else { return };
        let (held, overflowed) =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        let mut work: std::collections::VecDeque<PathBuf> = held.into();
        if overflowed {
            each_misnamed(&mut |mess| self.finish_chain(root, mess, plan_one, &mut work));
        }
        while let Some(start) = work.pop_front() {
            self.finish_chain(root, &start, plan_one, &mut work);
        }
    }

    /// The move of the message at `start`, after the moves of the messages
    /// holding its new name; a temporary name that broke a cycle is added
    /// to `work`.
    fn finish_chain(
        &self,
        root: &OwnedFd,
        start: &Path,
        plan_one: &dyn Fn(&Path) -> Option<MessageMove>,
        work: &mut std::collections::VecDeque<PathBuf>,
    ) {
        {
            let Some(first) = plan_one(start) else {
                return;
            };
            let mut on_stack: std::collections::HashSet<PathBuf> = [first.from.clone()].into();
            let mut stack = vec![first];
            while let Some(top) = stack.last() {
                // Again after a wait: the fixes are checked against what
                // the plan saw, and repeating one changes nothing.
                self.first(root, top);
                match move_message(root, top, &self.quarantine, &Sync::Now) {
                    Ok(Moved::Done) => {
                        on_stack.remove(&top.from);
                        stack.pop();
                    }
                    Ok(Moved::Blocked) => match plan_one(&top.to) {
                        Some(b) if on_stack.contains(&b.from) => {
                            let temp = swap_name(&top.from);
                            let aside = renamed(top, &temp);
                            match move_message(root, &aside, &self.quarantine, &Sync::Now) {
                                Ok(Moved::Done) => work.push_back(aside.to.clone()),
                                Ok(Moved::Blocked) => self.fail(
                                    &aside.to,
                                    "cannot move a message to a temporary name",
                                    &io::Error::other("the name is taken"),
                                ),
                                Err((rel, what, e)) => self.report(&rel, what, &e),
                            }
                            on_stack.remove(&top.from);
                            stack.pop();
                        }
                        Some(b) => {
                            on_stack.insert(b.from.clone());
                            stack.push(b);
                        }
                        None if matches!(stat_at(root, &top.to), Ok(Some(st)) if st.kind != Found::File) =>
                        {
                            // A directory, FIFO, … under a message's name:
                            // set aside, and the move is tried again.
                            if let Err((rel, what, e)) = set_aside(root, &top.to, &self.quarantine)
                            {
                                self.report(&rel, what, &e);
                                on_stack.clear();
                                stack.clear();
                            }
                        }
                        None => {
                            self.fail(
                                &top.to,
                                "cannot rename the message onto it",
                                &io::Error::other(format!(
                                    "it exists and is not {}",
                                    crate::fsx::escape::path(&top.from)
                                )),
                            );
                            on_stack.clear();
                            stack.clear();
                        }
                    },
                    Err((rel, what, e)) => {
                        self.report(&rel, what, &e);
                        on_stack.clear();
                        stack.clear();
                    }
                }
            }
        }
    }
}

type Failure = (PathBuf, &'static str, io::Error);

/// `uid:gid`, or `uid` alone when any group is right (the group is kept).
fn owner_text(uid: u32, gid: Option<u32>) -> String {
    match gid {
        Some(g) => format!("{uid}:{g}"),
        None => uid.to_string(),
    }
}

/// A callback given one path at a time.
pub type EachPath<'a> = dyn FnMut(&Path) + 'a;

fn at(p: &Path, what: &'static str) -> impl FnOnce(Errno) -> Failure {
    let p = p.to_owned();
    move |e: Errno| (p, what, io_err(e))
}

/// rmdir, never recursive: a directory that gained an entry since it was
/// emptied (an injection under the old layout on a forced live queue) is
/// left for the next run, said as such.
fn remove_empty_dir(root: &OwnedFd, path: &Path) -> Result<(), Failure> {
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
fn own(root: &OwnedFd, path: &Path, want: &Want) -> Result<(), Failure> {
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
const QUARANTINE_NAME_MAX: usize = 240;

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
fn ensure_quarantine(root: &OwnedFd, want: &Want) -> Result<(), Failure> {
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
fn sync_both(root: &OwnedFd, to: &Path, from: &Path) -> Result<(), Failure> {
    beneath::sync_parent(root, to).map_err(|e| (to.to_owned(), "cannot sync", e))?;
    if to.parent() != from.parent() {
        beneath::sync_parent(root, from).map_err(|e| (from.to_owned(), "cannot sync", e))?;
    }
    Ok(())
}

/// A sized file is built under a temporary name and renamed into place, so
/// a crash never leaves it short; the next run removes the temporary.
fn create_file(root: &OwnedFd, path: &Path, want: &Want) -> Result<(), Failure> {
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
const BATCH: usize = 1024;

/// Blocked message moves remembered by path; beyond, found again.
const DEFERRED_HELD: usize = 4096;

fn dir_of(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new(".")).to_owned()
}

impl Batch {
    fn flush(&mut self, root: &OwnedFd) -> Result<(), Failure> {
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
fn sync_dir(root: &OwnedFd, d: &Path) -> Result<(), Failure> {
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

fn same_file_or_gone(root: &OwnedFd, p: &Path) -> bool {
    matches!(stat_at(root, p), Ok(None))
}

/// The temporary name that breaks a cycle of message names: not a number,
/// so the message is moved on from it by this run or the next; made of
/// the old name so a rerun after a crash finds the same one.
fn swap_name(from: &Path) -> PathBuf {
    let mut n = from.as_os_str().to_owned();
    n.push(".queue-fix-swap");
    PathBuf::from(n)
}

/// `m` with every file going to the name `to_mess` has (same
/// subdirectory in each directory), its owner fixes already done.
fn renamed(m: &MessageMove, to_mess: &Path) -> MessageMove {
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

fn same_file(root: &OwnedFd, a: &Path, b: &Path) -> bool {
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
