//! Findings → actions for the layout's own entries, and the actions every
//! operation plans. Pure: no system calls, unit-tested without root.
//!
//! Paths in actions are relative to the queue root.

pub use crate::fsx::beneath::Expect;
use crate::fsx::dir::{Found, Stat};
use crate::queue::layout::{Entry, Kind, Layout};
use crate::queue::users::Ids;
use std::path::{Path, PathBuf};

/// What an entry must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    pub kind: Kind,
    pub uid: u32,
    /// `None`: any group is right, and a new file keeps the creator's
    /// ([`Layout::file_group_checked`]).
    pub gid: Option<u32>,
    pub mode: u32,
}

/// The kinds of change `-i` asks about, once each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Create,
    Permissions,
    Rename,
    Strays,
    /// Moving the messages of orphan queues into the range (`--retire`).
    Retire,
}

impl ActionKind {
    pub fn question(self) -> &'static str {
        match self {
            ActionKind::Create => "create missing directories and files",
            ActionKind::Permissions => "fix owners, groups and modes",
            ActionKind::Rename => "rename and move messages",
            ActionKind::Strays => "set aside strays and wrong-typed entries",
            ActionKind::Retire => "move the messages of queues outside the range into it",
        }
    }
}

/// A message whose `mess` file has the wrong name or sits in the wrong
/// subdirectory, and the files of the same name that move with it.
///
/// Applied as: link `mess` under its new name, rename each other file,
/// unlink the old `mess` name. Every intermediate state has a `mess` file
/// under every name the other files carry, so an interrupted run leaves
/// no stray and the next run finishes the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMove {
    pub from: PathBuf,
    pub to: PathBuf,
    /// `(from, to)` of the other files, `todo` last.
    pub others: Vec<(PathBuf, PathBuf)>,
    /// Owner and mode fixes of the message's files under their current
    /// names, each checked on the descriptor against the file the plan saw:
    /// run before the move. After it, the `mess` file has two names until
    /// the old one is removed (batched), and its new bucket may be read
    /// meanwhile by another worker: a file fixed first arrives right, so
    /// neither this run's link-count check nor that worker's finds a file
    /// to leave alone, and one run converges. A name that is taken (a move
    /// that must wait) is never touched by these: they name the files
    /// being moved, not their targets.
    pub first: Vec<Action>,
}

/// Names in a destination's `pid/` that belong to an unfinished retirement
/// (the check reports them; a rerun of `--retire` finishes them).
pub const RETIRE_MARKER_PREFIX: &str = "retire.";
/// Temporary copies of a message's other files, in a destination's `pid/`.
pub const RETIRE_TEMP_PREFIX: &str = "retire-tmp.";

/// Links a message file may have: one, except that qmail-queue links a
/// message's `intd` file to `todo`, so that pair shares one inode.
pub const MAX_LINKS: u64 = 1;
pub const MAX_LINKS_TODO_INTD_PAIR: u64 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateDir {
        path: PathBuf,
        want: Want,
    },
    /// Zero-filled to the wanted size.
    CreateFile {
        path: PathBuf,
        want: Want,
    },
    CreateFifo {
        path: PathBuf,
        want: Want,
    },
    Chown {
        path: PathBuf,
        uid: u32,
        /// `None`: the group is left as it is.
        gid: Option<u32>,
        was: (u32, u32),
        expect: Expect,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
        was: u32,
        expect: Expect,
    },
    MoveMessage(MessageMove),
    /// A message's file in the wrong subdirectory (its `mess` is elsewhere).
    MoveFile {
        from: PathBuf,
        to: PathBuf,
    },
    /// Set aside into the quarantine directory (or deleted with
    /// `--delete-strays`), for `cause`.
    SetAside {
        path: PathBuf,
        cause: String,
        /// Always quarantined, never deleted (a wrong-typed layout entry,
        /// which may be a whole directory tree).
        keep: bool,
    },
    /// Our own temporary file left by an interrupted run.
    RemoveLeftover {
        path: PathBuf,
    },
    /// A numbered subdirectory of a `todo`/`intd` converted to flat, once
    /// emptied.
    RemoveEmptyDir {
        path: PathBuf,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::CreateDir { .. } | Action::CreateFile { .. } | Action::CreateFifo { .. } => {
                ActionKind::Create
            }
            Action::Chown { .. } | Action::Chmod { .. } => ActionKind::Permissions,
            Action::MoveMessage(_) | Action::MoveFile { .. } | Action::RemoveEmptyDir { .. } => {
                ActionKind::Rename
            }
            Action::SetAside { .. } | Action::RemoveLeftover { .. } => ActionKind::Strays,
        }
    }
}

/// Something wrong that queue-fix reports but does not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub cause: String,
    /// Whether it counts as a problem in the exit status.
    pub counts: bool,
}

/// A plan: actions in the order they must run, and warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub warnings: Vec<Warning>,
}

impl Plan {
    pub fn problems(&self) -> usize {
        let first = |a: &Action| match a {
            Action::MoveMessage(m) => m.first.len(),
            _ => 0,
        };
        self.actions.iter().map(|a| 1 + first(a)).sum::<usize>()
            + self.warnings.iter().filter(|w| w.counts).count()
    }
}

/// The suffix of the temporary name a sized file is built under before it
/// is renamed into place.
pub const TEMP_SUFFIX: &str = ".queue-fix-new";

/// Every fixed entry of a queue with what it must be, parents first: the
/// layout rows with each split directory followed by its subdirectories.
pub fn wanted(ids: &Ids, layout: &Layout) -> Vec<(PathBuf, Want)> {
    let mut out = Vec::new();
    for e in layout.entries() {
        let want = want_of(e, ids, layout);
        out.push((PathBuf::from(e.path), want));
        if let Some(sub_mode) = e.split_mode.filter(|_| layout.is_split(e)) {
            for i in 0..layout.split {
                let sub = Want {
                    mode: sub_mode,
                    ..want
                };
                out.push((Path::new(e.path).join(i.to_string()), sub));
            }
        }
    }
    out
}

pub fn want_of(e: &Entry, ids: &Ids, layout: &Layout) -> Want {
    Want {
        kind: layout.kind(e),
        uid: ids.uid(layout.owner(e)),
        gid: Some(ids.gid()),
        mode: e.mode,
    }
}

/// What a file inside a message directory must be.
pub fn want_file(e: &Entry, ids: &Ids, layout: &Layout) -> Want {
    Want {
        kind: Kind::File { size: 0 },
        mode: e.file_mode.unwrap_or(0o600),
        gid: layout.file_group_checked(e).then_some(ids.gid()),
        ..want_of(e, ids, layout)
    }
}

fn kind_matches(want: Kind, have: Found) -> bool {
    matches!(
        (want, have),
        (Kind::Dir, Found::Dir) | (Kind::File { .. }, Found::File) | (Kind::Fifo, Found::Fifo)
    )
}

/// Owner, group and mode of an entry of the right type with at most one
/// link.
pub fn plan_permissions(path: &Path, want: &Want, have: &Stat, plan: &mut Plan) {
    plan_permissions_linked(path, want, have, MAX_LINKS, plan);
}

/// Owner, group and mode of an entry of the right type. A file with more
/// links than `max_links` is never changed: root would be changing every
/// other name of it too, which may lie outside the queue (`ln
/// /etc/shadow QUEUE/mess/5/123` by the qmail account that owns `mess`).
pub fn plan_permissions_linked(
    path: &Path,
    want: &Want,
    have: &Stat,
    max_links: u64,
    plan: &mut Plan,
) {
    let owner_wrong = have.uid != want.uid || want.gid.is_some_and(|g| g != have.gid);
    let wrong = owner_wrong || have.mode != want.mode;
    if wrong && have.kind != Found::Dir && have.nlink > max_links {
        plan.warnings.push(Warning {
            path: path.to_owned(),
            cause: hard_links(have.nlink, max_links) + "; owner and mode left alone",
            counts: true,
        });
        return;
    }
    let expect = Expect::seen(have, max_links);
    if owner_wrong {
        plan.actions.push(Action::Chown {
            path: path.to_owned(),
            uid: want.uid,
            gid: want.gid,
            was: (have.uid, have.gid),
            expect,
        });
    }
    if have.mode != want.mode {
        plan.actions.push(Action::Chmod {
            path: path.to_owned(),
            mode: want.mode,
            was: have.mode,
            expect,
        });
    }
}

/// Why a file with too many links is left alone or set aside.
pub fn hard_links(have: u64, allowed: u64) -> String {
    format!(
        "has {have} hard links where the layout allows {allowed} (another name, perhaps \
         outside the queue, shares this file)"
    )
}

/// One fixed entry of the layout: create it, set aside a wrong type and
/// create it, or fix its owner and mode. `leftover`: our temporary file
/// for it exists (an interrupted creation).
pub fn plan_entry(path: &Path, want: &Want, have: Option<&Stat>, leftover: bool, plan: &mut Plan) {
    if leftover {
        let mut temp = path.as_os_str().to_owned();
        temp.push(TEMP_SUFFIX);
        plan.actions
            .push(Action::RemoveLeftover { path: temp.into() });
    }
    let create = |plan: &mut Plan| {
        let path = path.to_owned();
        let want = *want;
        plan.actions.push(match want.kind {
            Kind::Dir => Action::CreateDir { path, want },
            Kind::File { .. } => Action::CreateFile { path, want },
            Kind::Fifo => Action::CreateFifo { path, want },
        });
    };
    match have {
        None => create(plan),
        Some(st) if !kind_matches(want.kind, st.kind) => {
            plan.actions.push(Action::SetAside {
                path: path.to_owned(),
                cause: format!("{} where {} belongs", st.kind.word(), kind_word(want.kind)),
                keep: true,
            });
            create(plan);
        }
        // lock/sendmutex, lock/tcpto, lock/trigger: the name is moved aside
        // (a rename moves the link, never the file behind it) and made anew.
        Some(st) if st.kind != Found::Dir && st.nlink > MAX_LINKS => {
            plan.actions.push(Action::SetAside {
                path: path.to_owned(),
                cause: hard_links(st.nlink, MAX_LINKS),
                keep: true,
            });
            create(plan);
        }
        Some(st) => {
            plan_permissions(path, want, st, plan);
            if let Kind::File { size } = want.kind {
                if st.size != size {
                    plan.warnings.push(Warning {
                        path: path.to_owned(),
                        cause: format!("is {} bytes, should be {size} (not changed)", st.size),
                        counts: true,
                    });
                }
            }
        }
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Dir => "a directory",
        Kind::File { .. } => "a regular file",
        Kind::Fifo => "a named pipe",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::queue::layout;

    /// The qmail ids of the unit tests here and in `bucket.rs`.
    pub(crate) const IDS: Ids = Ids {
        qmailq: 10,
        qmails: 11,
        qmailr: 12,
        qmail_gid: 20,
    };

    /// A regular file with one link, as `fstatat` reports it.
    pub(crate) fn file(ino: u64, uid: u32, mode: u32) -> Stat {
        Stat {
            kind: Found::File,
            uid,
            gid: 20,
            mode,
            size: 10,
            ino,
            dev: 1,
            mtime: 0,
            nlink: 1,
        }
    }

    #[test]
    fn wanted_expands_split_dirs_and_qmta_mode_uses_qmailq_everywhere() {
        let w = wanted(&IDS, &Layout::new(5));
        assert_eq!(
            w.len(),
            layout::LAYOUT
                .iter()
                .filter(|e| e.presence == layout::Presence::Always)
                .count()
                + 6 * 5
        );
        let uid = |w: &[(PathBuf, Want)], p: &str| {
            w.iter().find(|(x, _)| x == Path::new(p)).unwrap().1.uid
        };
        assert_eq!(uid(&w, "lock/tcpto"), 12);
        assert_eq!(uid(&w, "info/4"), 11);
        let m = wanted(
            &IDS,
            &Layout {
                qmta: true,
                ratelimit: true,
                ..Layout::new(5)
            },
        );
        assert!(m
            .iter()
            .all(|(_, want)| want.uid == 10 && want.gid == Some(20)));
        assert!(m.iter().any(|(p, _)| p == Path::new("ratelimit")));
    }

    #[test]
    fn layout_entries_plan_create_set_aside_permissions_and_warnings() {
        let want = Want {
            kind: Kind::File { size: 2048 },
            uid: 12,
            gid: Some(20),
            mode: 0o644,
        };
        let p = Path::new("lock/tcpto");
        let mut plan = Plan::default();
        plan_entry(p, &want, None, true, &mut plan);
        assert_eq!(plan.actions.len(), 2, "leftover removed, file created");
        let mut dir = file(5, 12, 0o644);
        dir.kind = Found::Dir;
        let mut plan = Plan::default();
        plan_entry(p, &want, Some(&dir), false, &mut plan);
        assert!(matches!(
            plan.actions[0],
            Action::SetAside { keep: true, .. }
        ));
        assert!(matches!(plan.actions[1], Action::CreateFile { .. }));
        let mut plan = Plan::default();
        plan_entry(p, &want, Some(&file(5, 0, 0o600)), false, &mut plan);
        assert_eq!(plan.actions.len(), 2);
        assert_eq!(plan.warnings.len(), 1, "10 bytes instead of 2048");
        assert_eq!(plan.problems(), 3);
    }
}
