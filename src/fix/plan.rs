//! Findings → actions. Pure: no system calls, unit-tested without root.
//!
//! Paths in actions are relative to the queue root.

pub use crate::fsx::beneath::Expect;
use crate::fsx::dir::{Found, Stat};
pub use crate::queue::found::{classify_top, parked, Top, TopSeen, PARKED_SUFFIX};
use crate::queue::layout::{self, Entry, Kind, Layout, MESS};
use crate::queue::name::{parse_inode, split_index};
use crate::queue::users::Ids;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
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

/// Where a message's `mess` file can be looked up beyond one bucket.
pub trait MessIndex {
    /// A `mess` file named `name` exists in any numeric subdirectory.
    fn has_mess(&self, name: u64) -> bool;
    /// `<dir>/<name>` exists in a directory that is flat in this queue
    /// (`bounce`, and `todo`/`intd` without `BIGTODO`).
    fn has_flat(&self, dir: &str, name: &OsStr) -> bool;
}

/// One split subdirectory number, read in every split directory.
#[derive(Debug, Default)]
pub struct Bucket {
    pub sub: u32,
    /// `(dir, entries)`: `mess` first, then the other split directories in
    /// [`layout::MESSAGE_DIRS`] order. A directory without this subdirectory is
    /// absent or empty.
    pub dirs: Vec<(&'static str, Vec<(OsString, Stat)>)>,
}

/// A file to set aside, checked again just before: one whose message could
/// not be found in this bucket nor by the index (a stray), or one that must
/// go even though its message exists (not a regular file, or hard-linked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrayCandidate {
    pub path: PathBuf,
    /// The message name it refers to, when it has one.
    pub name: Option<u64>,
    pub stat: Stat,
    pub cause: String,
    /// Set aside even when its message exists.
    pub regardless: bool,
    /// Set aside for its link count: looked at again (with its `todo`/`intd`
    /// partner) just before, as a move of this run may have been halfway.
    pub linked: bool,
}

enum MessState {
    Healthy,
    Moving,
}

type ByName<'b> = Vec<(&'static str, HashMap<&'b OsStr, &'b Stat>)>;

/// The partner of a `todo` file is the `intd` file of the same name, and
/// the other way round.
pub fn partner(dir: &str) -> Option<&'static str> {
    match dir {
        layout::TODO => Some(layout::INTD),
        layout::INTD => Some(layout::TODO),
        _ => None,
    }
}

/// The links a message file may have: 2 for a `todo`/`intd` pair sharing
/// one inode (as qmail-queue links them), 1 otherwise.
fn allowed_links(dir: &str, name: &OsStr, st: &Stat, by_name: &ByName) -> u64 {
    let paired = partner(dir).is_some_and(|p| {
        by_name
            .iter()
            .find(|(d, _)| *d == p)
            .and_then(|(_, files)| files.get(name))
            .is_some_and(|o| (o.dev, o.ino) == (st.dev, st.ino))
    });
    if paired {
        MAX_LINKS_TODO_INTD_PAIR
    } else {
        MAX_LINKS
    }
}

fn index_by_name(bucket: &Bucket) -> ByName<'_> {
    bucket
        .dirs
        .iter()
        .filter(|(d, _)| *d != MESS)
        .map(|(d, files)| {
            (
                *d,
                files.iter().map(|(n, st)| (n.as_os_str(), st)).collect(),
            )
        })
        .collect()
}

/// Files of one bucket → actions, plus candidates to set aside (only after
/// a second look, see [`StrayCandidate`]).
pub fn plan_bucket(
    bucket: &Bucket,
    layout: &Layout,
    ids: &Ids,
    index: &dyn MessIndex,
    plan: &mut Plan,
    strays: &mut Vec<StrayCandidate>,
) {
    let s = bucket.sub;
    let sub = s.to_string();
    let at =
        |dir: &str, sub: &str, name: &OsStr| -> PathBuf { Path::new(dir).join(sub).join(name) };
    let mut messages: HashMap<&OsStr, MessState> = HashMap::new();
    let split = layout.split;
    let mess_want = want_file(layout::entry(MESS), ids, layout);
    let no_mess: &[(OsString, Stat)] = &[];
    let mess_files = bucket
        .dirs
        .iter()
        .find(|(d, _)| *d == MESS)
        .map_or(no_mess, |(_, v)| v.as_slice());
    // The other directories' files by name, built only when a message
    // moves or a file has a second link (a quiet queue never pays for it).
    let mut by_name: Option<ByName> = None;
    for (name, st) in mess_files {
        let path = at(MESS, &sub, name);
        if st.kind != Found::File {
            strays.push(StrayCandidate {
                path,
                name: None,
                stat: *st,
                cause: format!("{} where a message file belongs", st.kind.word()),
                regardless: true,
                linked: false,
            });
            continue;
        }
        let to_sub = split_index(st.ino, split);
        let healthy = parse_inode(name.as_bytes()) == Some(st.ino) && to_sub == s;
        if healthy {
            messages.insert(name, MessState::Healthy);
            // More than one link: reported, never changed (nor set aside:
            // qmail-queue's pid file and an unfinished move or retire
            // briefly give a message a second name).
            plan_permissions(&path, &mess_want, st, plan);
            continue;
        }
        messages.insert(name, MessState::Moving);
        let by_name = by_name.get_or_insert_with(|| index_by_name(bucket));
        let to_sub_s = to_sub.to_string();
        let new_name = OsString::from(st.ino.to_string());
        let mut others = Vec::new();
        let mut first = Plan::default();
        for (dir, files) in by_name.iter() {
            if let Some(ost) = files.get(name.as_os_str()) {
                if ost.kind == Found::File {
                    let from = at(dir, &sub, name);
                    others.push((from.clone(), at(dir, &to_sub_s, &new_name)));
                    let want = want_file(layout::entry(dir), ids, layout);
                    let max = allowed_links(dir, name, ost, by_name);
                    plan_permissions_linked(&from, &want, ost, max, &mut first);
                }
            }
        }
        // bounce, and a flat todo/intd: the same name, no subdirectory; a
        // message only misplaced (its name is right) leaves them as they
        // are — a "move" onto the same name would remove its only name.
        for dir in layout.flat_message_dirs() {
            if new_name != *name && index.has_flat(dir, name) {
                others.push((Path::new(dir).join(name), Path::new(dir).join(&new_name)));
            }
        }
        // todo last: it is what makes qmail-send pick a message up (intd,
        // read with it, must be in place first).
        others.sort_by_key(|(from, _)| from.starts_with(layout::TODO));
        let to = at(MESS, &to_sub_s, &new_name);
        plan_permissions(&path, &mess_want, st, &mut first);
        plan.warnings.append(&mut first.warnings);
        plan.actions.push(Action::MoveMessage(MessageMove {
            from: path,
            to,
            others,
            first: first.actions,
        }));
    }
    for (dir, files) in bucket.dirs.iter().filter(|(d, _)| *d != MESS) {
        let want = want_file(layout::entry(dir), ids, layout);
        for (name, st) in files {
            let path = at(dir, &sub, name);
            let n = parse_inode(name.as_bytes());
            if st.kind == Found::File {
                let known = match messages.get(name.as_os_str()) {
                    Some(MessState::Moving) => continue,
                    Some(MessState::Healthy) => true,
                    None => n.is_some_and(|n| index.has_mess(n)),
                };
                if known {
                    let max = if st.nlink > MAX_LINKS {
                        allowed_links(
                            dir,
                            name,
                            st,
                            by_name.get_or_insert_with(|| index_by_name(bucket)),
                        )
                    } else {
                        MAX_LINKS
                    };
                    // A todo or intd file with two links whose partner is
                    // not beside it may be halfway through a move or a
                    // retire: left alone (never changed), not set aside.
                    let halfway = partner(dir).is_some() && st.nlink <= MAX_LINKS_TODO_INTD_PAIR;
                    if st.nlink > max && !halfway {
                        strays.push(StrayCandidate {
                            path,
                            name: n,
                            stat: *st,
                            cause: hard_links(st.nlink, max),
                            regardless: true,
                            linked: true,
                        });
                        continue;
                    }
                    let right = n.map_or(s, |n| split_index(n, split));
                    if right == s {
                        plan_permissions_linked(&path, &want, st, max, plan);
                    } else {
                        let to = at(dir, &right.to_string(), name);
                        plan.actions.push(Action::MoveFile {
                            from: path,
                            to: to.clone(),
                        });
                        plan_permissions_linked(&to, &want, st, max, plan);
                    }
                    continue;
                }
            }
            strays.push(StrayCandidate {
                path,
                name: n,
                stat: *st,
                cause: stray_cause(st.kind, n),
                regardless: st.kind != Found::File,
                linked: false,
            });
        }
    }
}

/// A file in a flat message directory (`bounce`; `todo` and `intd`
/// without `BIGTODO`): kept when its message exists. `paired`: the file's
/// `todo`/`intd` partner of the same name is the same inode (qmail-queue
/// links them), which allows it a second link.
#[allow(clippy::too_many_arguments)]
pub fn plan_flat_file(
    dir: &'static str,
    name: &OsStr,
    st: &Stat,
    paired: bool,
    ids: &Ids,
    layout: &Layout,
    index: &dyn MessIndex,
    plan: &mut Plan,
    strays: &mut Vec<StrayCandidate>,
) {
    let path = Path::new(dir).join(name);
    let n = parse_inode(name.as_bytes());
    if st.kind == Found::File && n.is_some_and(|n| index.has_mess(n)) {
        let max = if paired {
            MAX_LINKS_TODO_INTD_PAIR
        } else {
            MAX_LINKS
        };
        // As in a bucket: an unpaired todo or intd file with two links may
        // be halfway through a move or a retire: left alone.
        let halfway = partner(dir).is_some() && st.nlink <= MAX_LINKS_TODO_INTD_PAIR;
        if st.nlink > max && !halfway {
            strays.push(StrayCandidate {
                path,
                name: n,
                stat: *st,
                cause: hard_links(st.nlink, max),
                regardless: true,
                linked: true,
            });
        } else {
            let want = want_file(layout::entry(dir), ids, layout);
            plan_permissions_linked(&path, &want, st, max, plan);
        }
        return;
    }
    strays.push(StrayCandidate {
        path,
        name: n,
        stat: *st,
        cause: stray_cause(st.kind, n),
        regardless: st.kind != Found::File,
        linked: false,
    });
}

/// `todo` or `intd` laid out otherwise than `BIGTODO` says (an
/// administrator changed the setting): qmail-send reads only the layout its
/// `BIGTODO` names, so a repair converts the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub dir: &'static str,
    /// Split on disk (numbered subdirectories) where the configuration
    /// wants it flat; `false`: flat on disk where it wants it split.
    pub on_disk_split: bool,
    /// Classic qmail's queue, whose programs read no `BIGTODO`: the
    /// message names `--classic`, and offers no setting to change.
    pub classic: bool,
}

/// Whether `dir` (todo or intd) needs converting, from what its top holds.
/// Split is wanted: flat message files there, or no numbered subdirectory
/// at all (a flat directory, empty or not). Flat is wanted: any numbered
/// subdirectory (under `BIGTODO=0` qmail-send's todo scan takes each for a
/// message and logs "unable to stat" for it on every pass). Either way, a
/// parked file is an unfinished conversion.
pub fn mismatch_of(dir: &'static str, layout: &Layout, seen: TopSeen) -> Option<Mismatch> {
    let split = layout.is_split_dir(dir);
    let wrong = seen.parked
        || if split {
            seen.message_file || !seen.subdir
        } else {
            seen.subdir
        };
    wrong.then_some(Mismatch {
        dir,
        on_disk_split: !split,
        classic: layout.flavour == layout::Flavour::Classic,
    })
}

/// The one problem a queue's layout mismatches make, naming the setting;
/// `converting`: said by the repair that converts.
pub fn mismatch_cause(m: &[Mismatch], converting: bool) -> String {
    let dirs: Vec<&str> = m.iter().map(|m| m.dir).collect();
    let split = m.first().is_some_and(|m| m.on_disk_split);
    let (disk, configured, other) = if split {
        ("split", "BIGTODO=0 (flat)", 1)
    } else {
        ("flat", "BIGTODO=1 (split)", 0)
    };
    let dirs = dirs.join(", ");
    if m.first().is_some_and(|m| m.classic) {
        // Classic qmail-send reads todo flat, whatever the environment.
        let wanted = if split {
            "--classic (flat)"
        } else {
            "--classic -b 1 (split)"
        };
        let then = match (converting, m.len()) {
            (true, _) => "converting",
            (false, 1) => "a repair converts it",
            (false, _) => "a repair converts them",
        };
        return format!("{dirs}: {disk} on disk, but {wanted}: {then} (every file moved)");
    }
    if converting {
        return format!("{dirs}: {disk} on disk, but {configured}: converting (every file moved)");
    }
    format!(
        "{dirs}: {disk} on disk, but {configured}: a repair converts {} (every file moved); \
         or set BIGTODO={other} / -b {other}",
        if m.len() == 1 { "it" } else { "them" }
    )
}

/// The moves of one entry of a mismatched `todo` or `intd` into the
/// configured layout. Every regular file moves (the message check then
/// judges it where qmail-send looks).
///
/// `sub`: the entry sits in this numbered subdirectory of a directory
/// becoming flat; anything but a regular file there is set aside. A file
/// whose name is a subdirectory's (`clashes`) is parked, not moved onto
/// that directory; it takes its name once the subdirectories are gone.
///
/// `None`: the entry sits at the top. Becoming split, a message file goes
/// into its subdirectory; when its name is the one that subdirectory must
/// have, it is parked first, and a missing subdirectory (`target`) is
/// created with `sub_want`. Becoming flat, a parked file takes its
/// name. Anything else at the top is the message check's.
#[allow(clippy::too_many_arguments)]
pub fn plan_conversion(
    dir: &'static str,
    sub: Option<&OsStr>,
    name: &OsStr,
    kind: Found,
    clashes: bool,
    target: SubState,
    sub_want: Want,
    layout: &Layout,
) -> Vec<Action> {
    let top = |n: &OsStr| Path::new(dir).join(n);
    let park = |n: u64| top(OsStr::new(&format!("{n}{PARKED_SUFFIX}")));
    if let Some(sub) = sub {
        let from = Path::new(dir).join(sub).join(name);
        if kind != Found::File {
            return vec![Action::SetAside {
                path: from,
                cause: format!("{} where a message file belongs", kind.word()),
                keep: true,
            }];
        }
        let to = match parse_inode(name.as_bytes()) {
            Some(n) if clashes => park(n),
            _ => top(name),
        };
        return vec![Action::MoveFile { from, to }];
    }
    if kind != Found::File {
        return Vec::new();
    }
    let bytes = name.as_bytes();
    let (n, is_parked) = match (parse_inode(bytes), parked(bytes)) {
        (Some(n), _) => (n, false),
        (None, Some(n)) => (n, true),
        (None, None) => return Vec::new(),
    };
    if !layout.is_split_dir(dir) {
        return if is_parked {
            vec![Action::MoveFile {
                from: top(name),
                to: top(OsStr::new(&n.to_string())),
            }]
        } else {
            Vec::new()
        };
    }
    let to = layout.message_path(dir, n);
    let parent = to.parent().unwrap_or(Path::new(dir)).to_owned();
    let mut actions = Vec::new();
    let mut from = top(name);
    if target == SubState::File {
        // The subdirectory's name holds a message file (`todo/5`, message
        // 5, this one or the one whose subdirectory this is): parked first.
        let k = parent
            .file_name()
            .and_then(|k| parse_inode(k.as_bytes()))
            .unwrap_or(n);
        actions.push(Action::MoveFile {
            from: parent.clone(),
            to: park(k),
        });
        if from == parent {
            from = park(k);
        }
    }
    if target != SubState::Dir {
        actions.push(Action::CreateDir {
            path: parent,
            want: sub_want,
        });
    }
    actions.push(Action::MoveFile { from, to });
    actions
}

/// What stands where a message's subdirectory must be, when a `todo` or
/// `intd` becomes split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    Dir,
    Missing,
    /// A regular file: a flat message file whose name is that number.
    File,
}

/// Why an entry that belongs to no known message, or is no message file at
/// all, is set aside.
fn stray_cause(kind: Found, name: Option<u64>) -> String {
    match (kind, name) {
        (Found::File, Some(_)) => "stray: no mess file of that name".into(),
        (Found::File, None) => "stray: not a message name".into(),
        (k, _) => format!("{} where a message file belongs", k.word()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct Index(HashSet<u64>);
    impl MessIndex for Index {
        fn has_mess(&self, n: u64) -> bool {
            self.0.contains(&n)
        }
        fn has_flat(&self, _: &str, _: &OsStr) -> bool {
            false
        }
    }

    const IDS: Ids = Ids {
        qmailq: 10,
        qmails: 11,
        qmailr: 12,
        qmail_gid: 20,
    };

    fn file(ino: u64, uid: u32, mode: u32) -> Stat {
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

    fn bucket(sub: u32, mess: &[(u64, u64)], others: &[(&'static str, u64)]) -> Bucket {
        let mut dirs = vec![(
            MESS,
            mess.iter()
                .map(|&(name, ino)| (OsString::from(name.to_string()), file(ino, 10, 0o644)))
                .collect(),
        )];
        for d in ["info", "remote", "todo", "intd"] {
            let uid = if d == "info" || d == "remote" { 11 } else { 10 };
            let mode = if uid == 11 { 0o600 } else { 0o644 };
            let files = others
                .iter()
                .filter(|(od, _)| *od == d)
                .map(|&(_, n)| {
                    (
                        OsString::from(n.to_string()),
                        file(n.wrapping_add(7), uid, mode),
                    )
                })
                .collect();
            dirs.push((d, files));
        }
        Bucket { sub, dirs }
    }

    #[test]
    fn healthy_messages_with_names_at_and_above_2_pow_31_and_2_pow_32_are_left_alone() {
        let split = 151;
        for ino in [
            2_147_483_647u64,
            2_147_483_648,
            4_294_967_295,
            4_294_967_296,
            4_294_967_301,
            u64::MAX - 3,
        ] {
            let sub = split_index(ino, split);
            let b = bucket(
                sub,
                &[(ino, ino)],
                &[("info", ino), ("remote", ino), ("todo", ino), ("intd", ino)],
            );
            let (mut plan, mut strays) = (Plan::default(), Vec::new());
            let index = Index(HashSet::new());
            plan_bucket(
                &b,
                &Layout::new(split),
                &IDS,
                &index,
                &mut plan,
                &mut strays,
            );
            assert_eq!(plan, Plan::default(), "{ino}");
            assert!(strays.is_empty(), "{ino}");
            // The same files seen from bounce: found through the index.
            let index = Index([ino].into());
            plan_flat_file(
                "bounce",
                OsStr::new(&ino.to_string()),
                &file(ino.wrapping_add(1), 11, 0o600),
                false,
                &IDS,
                &Layout::new(split),
                &index,
                &mut plan,
                &mut strays,
            );
            assert!(plan.actions.is_empty() && strays.is_empty(), "{ino}");
        }
    }

    #[test]
    fn a_large_misnamed_message_moves_to_its_inode_with_its_files() {
        let split = 23;
        let ino = 4_294_967_301u64; // 2^32 + 5: a 32-bit scan would see 5
        let old = 2_147_483_649u64;
        let sub = split_index(old, split);
        let b = bucket(
            sub,
            &[(old, ino)],
            &[("info", old), ("todo", old), ("intd", old)],
        );
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &Index(HashSet::new()),
            &mut plan,
            &mut strays,
        );
        assert!(strays.is_empty());
        let to_sub = (ino % 23).to_string();
        let path = |d: &str, s: &str, n: u64| Path::new(d).join(s).join(n.to_string());
        let s = sub.to_string();
        assert_eq!(
            plan.actions,
            vec![Action::MoveMessage(MessageMove {
                from: path("mess", &s, old),
                to: path("mess", &to_sub, ino),
                others: vec![
                    (path("info", &s, old), path("info", &to_sub, ino)),
                    (path("intd", &s, old), path("intd", &to_sub, ino)),
                    (path("todo", &s, old), path("todo", &to_sub, ino)),
                ],
                first: vec![],
            })]
        );
    }

    #[test]
    fn a_misplaced_well_named_message_leaves_its_flat_files_where_they_are() {
        // Every flat file exists (bounce; todo and intd under BIGTODO=0).
        struct Flat;
        impl MessIndex for Flat {
            fn has_mess(&self, _: u64) -> bool {
                true
            }
            fn has_flat(&self, _: &str, _: &OsStr) -> bool {
                true
            }
        }
        let flat = Layout {
            big_todo: false,
            ..Layout::new(23)
        };
        let ino = 1000u64; // subdirectory 11 under split 23
        let b = bucket(12, &[(ino, ino)], &[]);
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(&b, &flat, &IDS, &Flat, &mut plan, &mut strays);
        let [Action::MoveMessage(m)] = &plan.actions[..] else {
            panic!("{plan:?}");
        };
        assert_eq!(m.to, Path::new("mess/11/1000"));
        assert!(m.others.iter().all(|(f, t)| f != t), "{:?}", m.others);
        assert!(m.others.is_empty(), "{:?}", m.others);
        // Misnamed: the flat files take the new name with it.
        let b = bucket(12, &[(1001, ino)], &[]);
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(&b, &flat, &IDS, &Flat, &mut plan, &mut strays);
        let [Action::MoveMessage(m)] = &plan.actions[..] else {
            panic!("{plan:?}");
        };
        assert_eq!(m.others.len(), 3, "{:?}", m.others);
        assert_eq!(
            m.others.last().unwrap(),
            &("todo/1001".into(), "todo/1000".into())
        );
    }

    #[test]
    fn a_file_without_its_mess_is_a_stray_candidate_and_with_it_elsewhere_moves() {
        let split = 7;
        let b = bucket(3, &[], &[("info", 10), ("remote", 17)]);
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        // 10's mess exists (in subdir 3); 17 (17 % 7 = 3) has none.
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &Index([10].into()),
            &mut plan,
            &mut strays,
        );
        assert_eq!(strays.len(), 1);
        assert_eq!(strays[0].path, Path::new("remote/3/17"));
        assert!(plan.actions.is_empty());
        // 12 sits in subdir 3 but belongs in 5.
        let b = bucket(3, &[], &[("info", 12)]);
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &Index([12].into()),
            &mut plan,
            &mut strays,
        );
        assert_eq!(
            plan.actions,
            vec![Action::MoveFile {
                from: "info/3/12".into(),
                to: "info/5/12".into()
            }]
        );
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

    #[test]
    fn hard_linked_files_are_set_aside_reported_or_allowed_as_a_todo_intd_pair() {
        let split = 7;
        let ino = 21u64; // subdirectory 0
        let mut b = bucket(
            0,
            &[(ino, ino)],
            &[("info", ino), ("todo", ino), ("intd", ino)],
        );
        let linked = |b: &mut Bucket, dir: &str, n: u64| {
            let files = &mut b.dirs.iter_mut().find(|(d, _)| *d == dir).unwrap().1;
            files[0].1.nlink = n;
        };
        // The todo/intd pair shares one inode (bucket() gives both ino+7):
        // two links each, allowed; wrong modes are fixed.
        linked(&mut b, "todo", 2);
        linked(&mut b, "intd", 2);
        b.dirs.iter_mut().find(|(d, _)| *d == "intd").unwrap().1[0]
            .1
            .mode = 0o600;
        let index = Index([ino].into());
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &index,
            &mut plan,
            &mut strays,
        );
        assert!(strays.is_empty(), "{strays:?}");
        assert!(
            matches!(&plan.actions[..], [Action::Chmod { expect, .. }] if expect.max_links == 2)
        );
        // info with a second link: set aside, not changed.
        linked(&mut b, "info", 2);
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &index,
            &mut plan,
            &mut strays,
        );
        assert_eq!(strays.len(), 1);
        assert!(strays[0].linked && strays[0].regardless);
        assert_eq!(strays[0].path, Path::new("info/0/21"));
        // mess with a second link and a wrong mode: reported, never chmodded.
        linked(&mut b, "info", 1);
        let m = &mut b.dirs[0].1[0].1;
        m.nlink = 2;
        m.mode = 0o600;
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_bucket(
            &b,
            &Layout::new(split),
            &IDS,
            &index,
            &mut plan,
            &mut strays,
        );
        assert!(strays.is_empty());
        assert!(!plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Chmod { path, .. } if path.starts_with("mess"))));
        assert_eq!(plan.warnings.len(), 1);
        assert!(plan.warnings[0].cause.contains("2 hard links"));
    }

    #[test]
    fn a_todo_or_intd_in_the_other_layout_is_one_mismatch_and_each_entry_moves() {
        let split = Layout::new(7);
        let flat = Layout {
            big_todo: false,
            ..split
        };
        assert_eq!(classify_top(b"3", Found::Dir), Top::Subdir);
        assert_eq!(classify_top(b"123", Found::File), Top::MessageFile);
        assert_eq!(classify_top(b"x", Found::File), Top::Other);
        assert_eq!(classify_top(b"03", Found::Dir), Top::Other);
        let seen = |subdir, message_file, parked| TopSeen {
            subdir,
            message_file,
            parked,
        };
        // Configured split: flat files, or no subdirectory at all.
        assert_eq!(mismatch_of("todo", &split, seen(true, false, false)), None);
        for (sub, file) in [(true, true), (false, false), (false, true)] {
            assert_eq!(
                mismatch_of("todo", &split, seen(sub, file, false)),
                Some(Mismatch {
                    dir: "todo",
                    on_disk_split: false,
                    classic: false,
                })
            );
        }
        // Configured flat: any numbered subdirectory; either: a parked file.
        assert_eq!(mismatch_of("intd", &flat, seen(false, true, false)), None);
        assert!(
            mismatch_of("intd", &flat, seen(true, true, false)).is_some_and(|m| m.on_disk_split)
        );
        assert!(mismatch_of("intd", &flat, seen(false, true, true)).is_some());
        assert!(mismatch_of("intd", &split, seen(true, false, true)).is_some());
        let cause = mismatch_cause(
            &[
                Mismatch {
                    dir: "todo",
                    on_disk_split: true,
                    classic: false,
                },
                Mismatch {
                    dir: "intd",
                    on_disk_split: true,
                    classic: false,
                },
            ],
            false,
        );
        assert!(
            cause.starts_with("todo, intd: split on disk, but BIGTODO=0 (flat)")
                && cause.ends_with("BIGTODO=1 / -b 1"),
            "{cause}"
        );
        let sub_want = Want {
            kind: Kind::Dir,
            uid: 10,
            gid: Some(20),
            mode: 0o750,
        };
        let conv = |dir, sub: Option<&str>, name: &str, kind, clashes, target, l: &Layout| {
            plan_conversion(
                dir,
                sub.map(OsStr::new),
                OsStr::new(name),
                kind,
                clashes,
                target,
                sub_want,
                l,
            )
        };
        let mv = |from: &str, to: &str| Action::MoveFile {
            from: from.into(),
            to: to.into(),
        };
        let mkdir = |p: &str| Action::CreateDir {
            path: p.into(),
            want: sub_want,
        };
        use SubState::{Dir, File, Missing};
        assert_eq!(
            conv("todo", None, "15", Found::File, false, Dir, &split),
            [mv("todo/15", "todo/1/15")]
        );
        assert_eq!(
            conv("todo", None, "15", Found::Fifo, false, Dir, &split),
            []
        );
        assert_eq!(conv("todo", None, "15", Found::File, false, Dir, &flat), []);
        // Message 5 below split 7: todo/5 is its file and must become its
        // directory; message 12 (12 % 7 = 5) finds message 5's file there.
        assert_eq!(
            conv("todo", None, "5", Found::File, false, File, &split),
            [
                mv("todo/5", "todo/5.queue-fix-convert"),
                mkdir("todo/5"),
                mv("todo/5.queue-fix-convert", "todo/5/5")
            ]
        );
        assert_eq!(
            conv("todo", None, "12", Found::File, false, File, &split),
            [
                mv("todo/5", "todo/5.queue-fix-convert"),
                mkdir("todo/5"),
                mv("todo/12", "todo/5/12")
            ]
        );
        assert_eq!(
            conv(
                "todo",
                None,
                "5.queue-fix-convert",
                Found::File,
                false,
                Missing,
                &split
            ),
            [mkdir("todo/5"), mv("todo/5.queue-fix-convert", "todo/5/5")]
        );
        // Becoming flat: todo/5/5 is parked until todo/5 is gone.
        assert_eq!(
            conv("intd", Some("1"), "15", Found::File, false, Dir, &flat),
            [mv("intd/1/15", "intd/15")]
        );
        assert_eq!(
            conv("intd", Some("5"), "5", Found::File, true, Dir, &flat),
            [mv("intd/5/5", "intd/5.queue-fix-convert")]
        );
        assert_eq!(
            conv(
                "intd",
                None,
                "5.queue-fix-convert",
                Found::File,
                false,
                Dir,
                &flat
            ),
            [mv("intd/5.queue-fix-convert", "intd/5")]
        );
        assert!(matches!(
            &conv("intd", Some("1"), "15", Found::Dir, false, Dir, &flat)[..],
            [Action::SetAside { keep: true, .. }]
        ));
    }

    #[test]
    fn a_flat_todo_file_is_a_message_with_its_mess_and_may_share_intd_s_inode() {
        let flat = Layout {
            big_todo: false,
            ..Layout::new(7)
        };
        let index = Index([15].into());
        let mut st = file(99, 10, 0o644);
        st.nlink = 2;
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        let name = OsStr::new("15");
        plan_flat_file(
            "todo",
            name,
            &st,
            true,
            &IDS,
            &flat,
            &index,
            &mut plan,
            &mut strays,
        );
        assert_eq!((plan.clone(), strays.len()), (Plan::default(), 0));
        // Three links: not the pair's, set aside after a second look.
        st.nlink = 3;
        plan_flat_file(
            "todo",
            name,
            &st,
            true,
            &IDS,
            &flat,
            &index,
            &mut plan,
            &mut strays,
        );
        assert!(strays.len() == 1 && strays[0].linked);
        // No mess: a stray candidate (the second look and age decide).
        let (mut plan, mut strays) = (Plan::default(), Vec::new());
        plan_flat_file(
            "intd",
            OsStr::new("16"),
            &file(98, 10, 0o644),
            false,
            &IDS,
            &flat,
            &index,
            &mut plan,
            &mut strays,
        );
        assert!(strays.len() == 1 && !strays[0].regardless);
    }
}
