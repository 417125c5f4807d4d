//! Planning the messages of one bucket (a split subdirectory number, read
//! in every split directory) and of the flat directories. Pure.

use super::plan::{
    hard_links, plan_permissions, plan_permissions_linked, want_file, Action, MessageMove, Plan,
    MAX_LINKS, MAX_LINKS_TODO_INTD_PAIR,
};
use crate::fsx::dir::{Found, Stat};
use crate::queue::layout::{self, Layout, MESS};
use crate::queue::name::{parse_inode, split_index};
use crate::queue::users::Ids;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    let mut messages: HashMap<&OsStr, MessState> = HashMap::new();
    // The other directories' files by name, built only when a message
    // moves or a file has a second link (a quiet queue never pays for it).
    let mut by_name: Option<ByName> = None;
    plan_mess_files(
        bucket,
        layout,
        ids,
        index,
        plan,
        strays,
        &mut messages,
        &mut by_name,
    );
    plan_other_files(
        bucket,
        layout,
        ids,
        index,
        plan,
        strays,
        &messages,
        &mut by_name,
    );
}

/// `dir/sub/name`.
fn at(dir: &str, sub: &str, name: &OsStr) -> PathBuf {
    Path::new(dir).join(sub).join(name)
}

/// The bucket's `mess` files: each healthy, or a message that moves to its
/// inode's name with its other files.
#[allow(clippy::too_many_arguments)]
fn plan_mess_files<'b>(
    bucket: &'b Bucket,
    layout: &Layout,
    ids: &Ids,
    index: &dyn MessIndex,
    plan: &mut Plan,
    strays: &mut Vec<StrayCandidate>,
    messages: &mut HashMap<&'b OsStr, MessState>,
    by_name: &mut Option<ByName<'b>>,
) {
    let s = bucket.sub;
    let sub = s.to_string();
    let split = layout.split;
    let mess_want = want_file(layout::entry(MESS), ids, layout);
    let no_mess: &[(OsString, Stat)] = &[];
    let mess_files = bucket
        .dirs
        .iter()
        .find(|(d, _)| *d == MESS)
        .map_or(no_mess, |(_, v)| v.as_slice());
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
}

/// The bucket's other files: each belonging to a known message (right,
/// or moved to its split directory), or a stray candidate.
#[allow(clippy::too_many_arguments)]
fn plan_other_files<'b>(
    bucket: &'b Bucket,
    layout: &Layout,
    ids: &Ids,
    index: &dyn MessIndex,
    plan: &mut Plan,
    strays: &mut Vec<StrayCandidate>,
    messages: &HashMap<&'b OsStr, MessState>,
    by_name: &mut Option<ByName<'b>>,
) {
    let s = bucket.sub;
    let sub = s.to_string();
    let split = layout.split;
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
    use crate::fix::plan::tests::{file, IDS};
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
