//! Converting `todo` and `intd` between the flat and the split layout
//! (`BIGTODO` changed): what the disk holds against the setting, the moves
//! planned (pure), run through the applier in an order safe to interrupt.

use super::apply::Applier;
use super::plan::{want_of, Action, Want};
use crate::fsx::dir::{open_dir_at, stat_at, Found};
use crate::queue::found::{classify_top, parked, Top, TopSeen, PARKED_SUFFIX};
use crate::queue::layout::{self, Layout, INTD, TODO};
use crate::queue::name::parse_inode;
use crate::queue::users::Ids;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// What `todo` and `intd` hold at their top, against what `BIGTODO` says:
/// the directories to convert (none in a queue as configured). Reads only
/// the names and types at the top of the two directories.
pub fn layout_mismatch(root: &OwnedFd, layout: &Layout) -> io::Result<Vec<Mismatch>> {
    let mut found = Vec::new();
    for dir in [TODO, INTD] {
        let Some(fd) = open_dir_at(root, dir).map_err(|e| named(dir, e))? else {
            continue;
        };
        let mut seen = TopSeen::default();
        crate::fsx::dir::for_each_typed(&fd, |name, kind| {
            seen.add(classify_top(name.as_bytes(), kind));
            Ok(())
        })
        .map_err(|e| named(dir, e))?;
        found.extend(mismatch_of(dir, layout, seen));
    }
    Ok(found)
}

/// Converts the mismatched `todo`/`intd` into the configured layout:
/// `intd` first and made durable, then `todo` (a todo file is what hands a
/// message to qmail-send, which then reads its intd file); every move a
/// rename, so a `todo`/`intd` pair keeps its one inode and an interrupted
/// conversion leaves each file under exactly one name for the next run to
/// finish. Numbered subdirectories of a directory made flat go once empty.
pub fn convert(
    root: &OwnedFd,
    layout: &Layout,
    ids: &Ids,
    mismatch: &[Mismatch],
    applier: &Applier,
) -> io::Result<()> {
    for dir in [INTD, TODO] {
        let Some(m) = mismatch.iter().find(|m| m.dir == dir) else {
            continue;
        };
        let Some(fd) = open_dir_at(root, dir).map_err(|e| named(dir, e))? else {
            continue;
        };
        let entry = crate::queue::layout::entry(dir);
        let sub_want = Want {
            mode: entry.split_mode.unwrap_or(entry.mode),
            ..want_of(entry, ids, layout)
        };
        let top_pass = |fd: &OwnedFd| {
            // Renames out of the directory being read: an entry is seen
            // once or, moved already, not at all.
            crate::fsx::dir::for_each_name(fd, |name| {
                // Looked at now, not as listed: a file this pass parked
                // may since have become its subdirectory.
                let Some(kind) = stat_at(fd, name)?.map(|st| st.kind) else {
                    return Ok(());
                };
                let target = parse_inode(name.as_bytes())
                    .or_else(|| parked(name.as_bytes()))
                    .filter(|_| layout.is_split_dir(dir))
                    .map(|n| layout.message_path(dir, n));
                let state = match target.as_deref().and_then(Path::parent) {
                    Some(p) => match stat_at(root, p)? {
                        None => SubState::Missing,
                        Some(st) if st.kind == Found::File => SubState::File,
                        Some(_) => SubState::Dir,
                    },
                    None => SubState::Dir,
                };
                let plan = plan_conversion(dir, None, name, kind, false, state, sub_want, layout);
                for a in &plan {
                    applier.run(a);
                }
                Ok(())
            })
            .map_err(|e| named(dir, e))
        };
        if m.on_disk_split {
            flatten_subdirs(&fd, dir, sub_want, layout, applier)?;
            // Parked files take their names.
            top_pass(&fd)?;
        } else {
            top_pass(&fd)?;
            // A file parked while its subdirectory was made, if the
            // listing did not show it again.
            top_pass(&fd)?;
        }
        // This directory's new names on disk before the next one's moves.
        applier.flush();
    }
    Ok(())
}

/// The files of every numbered subdirectory of `dir` moved to its top
/// (one subdirectory's names at a time), made durable, and the emptied
/// subdirectories removed.
fn flatten_subdirs(
    fd: &OwnedFd,
    dir: &'static str,
    sub_want: Want,
    layout: &Layout,
    applier: &Applier,
) -> io::Result<()> {
    let mut subs = Vec::new();
    crate::fsx::dir::for_each_typed(fd, |name, kind| {
        if classify_top(name.as_bytes(), kind) == Top::Subdir {
            subs.push(name.to_owned());
        }
        Ok(())
    })
    .map_err(|e| named(dir, e))?;
    for sub in &subs {
        let shown = Path::new(dir).join(sub);
        // One subdirectory's names at a time.
        let Some(sfd) = open_dir_at(fd, sub).map_err(|e| named(dir, e))? else {
            continue;
        };
        let mut entries = Vec::new();
        crate::fsx::dir::for_each_typed(&sfd, |name, kind| {
            entries.push((name.to_owned(), kind));
            Ok(())
        })
        .map_err(|e| named(&shown.to_string_lossy(), e))?;
        for (name, kind) in entries {
            let clashes = subs.contains(&name);
            let plan = plan_conversion(
                dir,
                Some(sub),
                &name,
                kind,
                clashes,
                SubState::Dir,
                sub_want,
                layout,
            );
            for a in &plan {
                applier.run(a);
            }
        }
    }
    // The moves durable before their old directories go.
    applier.flush();
    for sub in subs {
        applier.run(&Action::RemoveEmptyDir {
            path: Path::new(dir).join(sub),
        });
    }
    Ok(())
}

fn named(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::layout::Kind;

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
}
