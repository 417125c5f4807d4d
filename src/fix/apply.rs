//! Executing a plan: `-N` prints it, `-i` asks once per kind of action,
//! otherwise every action runs, relative to the queue's directory
//! descriptor, in an order that is safe to interrupt.

use super::observe::{io_err, stat_at};
use super::plan::{Action, ActionKind, MessageMove, Want, TEMP_SUFFIX};
use super::safe;
use crate::queue::layout::QUARANTINE;
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
        }
    }

    /// Actions that failed (each already reported on stderr).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn show(&self, rel: &Path) -> String {
        if rel == Path::new(".") {
            self.shown.display().to_string()
        } else {
            self.shown.join(rel).display().to_string()
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
        if self.mode == RunMode::DryRun || !self.allowed(action.kind()) {
            return;
        }
        let Some(root) = self.root else { return };
        if let Err((rel, what, e)) = self.execute(root, action) {
            self.fail(&rel, what, &e);
        }
    }

    fn allowed(&self, kind: ActionKind) -> bool {
        self.mode != RunMode::Ask || ask(kind)
    }

    fn describe(&self, action: &Action) -> Vec<String> {
        let s = |p: &Path| self.show(p);
        let owner = |w: &Want| format!("{:04o} {}:{}", w.mode, w.uid, w.gid);
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
            } => {
                vec![format!(
                    "chown {uid}:{gid} {} (was {}:{})",
                    s(path),
                    was.0,
                    was.1
                )]
            }
            Action::Chmod { path, mode, was } => {
                vec![format!("chmod {mode:04o} {} (was {was:04o})", s(path))]
            }
            Action::MoveMessage(m) => {
                let mut v = vec![format!("rename {} -> {}", s(&m.from), s(&m.to))];
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
                    vec![format!("delete {} ({cause})", s(path))]
                } else {
                    vec![format!(
                        "quarantine {} -> {}/ ({cause})",
                        s(path),
                        s(Path::new(QUARANTINE.path))
                    )]
                }
            }
            Action::RemoveLeftover { path } => {
                vec![format!(
                    "remove {} (left by an interrupted queue-fix)",
                    s(path)
                )]
            }
        }
    }

    fn execute(
        &self,
        root: &OwnedFd,
        action: &Action,
    ) -> Result<(), (PathBuf, &'static str, io::Error)> {
        fn at(
            p: &Path,
            what: &'static str,
        ) -> impl FnOnce(Errno) -> (PathBuf, &'static str, io::Error) {
            let p = p.to_owned();
            move |e: Errno| (p, what, io_err(e))
        }
        match action {
            Action::CreateDir { path, want } => {
                step();
                safe::mkdir(root, path, want.mode).map_err(at(path, "cannot create directory"))?;
                self.own(root, path, want)
            }
            Action::CreateFile { path, want } => create_file(root, path, want),
            Action::CreateFifo { path, want } => {
                step();
                safe::mkfifo(root, path, want.mode)
                    .map_err(at(path, "cannot create named pipe"))?;
                self.own(root, path, want)
            }
            Action::Chown { path, uid, gid, .. } => {
                step();
                safe::chown(root, path, *uid, *gid).map_err(at(path, "cannot change owner"))
            }
            Action::Chmod { path, mode, .. } => {
                step();
                safe::chmod(root, path, *mode).map_err(at(path, "cannot change mode"))
            }
            Action::MoveMessage(m) => move_message(root, m),
            Action::MoveFile { from, to } => move_file(root, from, to),
            Action::SetAside { path, keep, .. } => {
                if self.delete_strays && !keep {
                    step();
                    safe::unlink(root, path).map_err(at(path, "cannot delete"))
                } else {
                    self.quarantine(root, path)
                }
            }
            Action::RemoveLeftover { path } => {
                step();
                match safe::unlink(root, path) {
                    Ok(()) | Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(at(path, "cannot remove")(e)),
                }
            }
        }
    }

    fn own(
        &self,
        root: &OwnedFd,
        path: &Path,
        want: &Want,
    ) -> Result<(), (PathBuf, &'static str, io::Error)> {
        let at = |what: &'static str| move |e: Errno| (path.to_owned(), what, io_err(e));
        step();
        safe::chown(root, path, want.uid, want.gid).map_err(at("cannot change owner"))?;
        // mkdir and mknod honour the umask; the table's mode is exact.
        step();
        safe::chmod(root, path, want.mode).map_err(at("cannot change mode"))
    }

    /// Renames `path` into the quarantine directory under a name made of
    /// its path (`info/5/123` → `quarantine/info_5_123`, then `.1`, `.2`, …
    /// if taken). One rename: interrupted, the file is either still in
    /// place or already aside.
    fn quarantine(
        &self,
        root: &OwnedFd,
        path: &Path,
    ) -> Result<(), (PathBuf, &'static str, io::Error)> {
        let qdir = Path::new(QUARANTINE.path);
        if stat_at(root, qdir)
            .map_err(|e| (qdir.to_owned(), "cannot look up", e))?
            .is_none()
        {
            step();
            match safe::mkdir(root, qdir, self.quarantine.mode) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err((qdir.to_owned(), "cannot create directory", io_err(e))),
            }
            self.own(root, qdir, &self.quarantine)?;
        }
        let flat: Vec<u8> = path
            .as_os_str()
            .as_bytes()
            .iter()
            .map(|&b| if b == b'/' { b'_' } else { b })
            .collect();
        for n in 0u32.. {
            let mut name = OsString::from(std::ffi::OsStr::from_bytes(&flat));
            if n > 0 {
                name.push(format!(".{n}"));
            }
            let to = qdir.join(name);
            step();
            match safe::rename_noreplace(root, path, root, &to) {
                Ok(()) | Err(Errno::ENOENT) => return Ok(()),
                Err(Errno::EEXIST) if n < 10_000 => continue,
                Err(e) => {
                    return Err((
                        path.to_owned(),
                        "cannot move into the quarantine directory",
                        io_err(e),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A sized file is built under a temporary name and renamed into place, so
/// a crash never leaves it short; the next run removes the temporary.
fn create_file(
    root: &OwnedFd,
    path: &Path,
    want: &Want,
) -> Result<(), (PathBuf, &'static str, io::Error)> {
    let size = match want.kind {
        crate::queue::layout::Kind::File { size } => size,
        _ => 0,
    };
    let mut temp = path.as_os_str().to_owned();
    if size > 0 {
        temp.push(TEMP_SUFFIX);
    }
    let temp = PathBuf::from(temp);
    let at = |p: &Path, what: &'static str| {
        let p = p.to_owned();
        move |e: Errno| (p, what, io_err(e))
    };
    step();
    let fd = safe::open(
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
        std::os::unix::fs::fchown(&file, Some(want.uid), Some(want.gid))?;
        file.set_permissions(std::fs::Permissions::from_mode(want.mode))?;
        file.sync_all()
    })();
    done.map_err(|e| (temp.clone(), "cannot write", e))?;
    if size > 0 {
        step();
        safe::rename_noreplace(root, &temp, root, path)
            .map_err(at(path, "cannot rename into place"))?;
    }
    Ok(())
}

/// Link `mess` under its new name, rename the other files (todo last),
/// unlink the old `mess` name. Each step is repeatable: a link that
/// already exists to the same inode, or a file already renamed, is taken
/// as done, so a rerun after a crash at any point finishes the move.
fn move_message(root: &OwnedFd, m: &MessageMove) -> Result<(), (PathBuf, &'static str, io::Error)> {
    step();
    match safe::link(root, &m.from, root, &m.to) {
        Ok(()) => {}
        Err(Errno::EEXIST) if same_file(root, &m.from, &m.to) => {}
        Err(Errno::EEXIST) => {
            return Err((
                m.to.clone(),
                "cannot rename the message onto it",
                io::Error::other(format!("it exists and is not {}", m.from.display())),
            ))
        }
        Err(e) => {
            return Err((
                m.from.clone(),
                "cannot link the message under its new name",
                io_err(e),
            ))
        }
    }
    for (from, to) in &m.others {
        move_file(root, from, to)?;
    }
    if m.from != m.to {
        step();
        match safe::unlink(root, &m.from) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err((
                    m.from.clone(),
                    "cannot remove the old message name",
                    io_err(e),
                ))
            }
        }
    }
    Ok(())
}

/// Renames without replacing: a target that already is this file means
/// the move was done (the old name goes); another file there is an error.
pub fn move_file(
    root: &OwnedFd,
    from: &Path,
    to: &Path,
) -> Result<(), (PathBuf, &'static str, io::Error)> {
    step();
    match safe::rename_noreplace(root, from, root, to) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EEXIST) if same_file(root, from, to) => {
            step();
            safe::unlink(root, from)
                .or_else(|e| if e == Errno::ENOENT { Ok(()) } else { Err(e) })
                .map_err(|e| (from.to_owned(), "cannot remove the old name", io_err(e)))
        }
        Err(Errno::EEXIST) => Err((
            to.to_owned(),
            "cannot move a message file onto it",
            io::Error::other(format!("it exists and is not {}", from.display())),
        )),
        Err(e) => Err((from.to_owned(), "cannot rename", io_err(e))),
    }
}

fn same_file(root: &OwnedFd, a: &Path, b: &Path) -> bool {
    match (stat_at(root, a), stat_at(root, b)) {
        (Ok(Some(x)), Ok(Some(y))) => (x.dev, x.ino) == (y.dev, y.ino),
        _ => false,
    }
}
