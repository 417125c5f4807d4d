//! Executing a plan: `-N` prints it, `-i` asks once per kind of action,
//! otherwise every action runs, relative to the queue's directory
//! descriptor, in an order that is safe to interrupt.

pub use super::ops::arm_crash_hook;
use super::ops::{
    at, create_file, ensure_quarantine, move_file, move_message, own, owner_text, remove_empty_dir,
    renamed, set_aside, step, swap_name, Batch, EachPath, Failure, Moved, Sync, DEFERRED_HELD,
};

use super::plan::{Action, ActionKind, MessageMove, Want};
use crate::fsx::beneath;
use crate::fsx::dir::{stat_at, Found};
use crate::queue::layout::QUARANTINE;
use nix::errno::Errno;
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::os::fd::OwnedFd;
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
