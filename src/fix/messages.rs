//! The message check: first the conversion of a `todo`/`intd` laid out
//! otherwise than `BIGTODO` says; then every numeric subdirectory of every
//! split directory, one bucket (subdirectory number) at a time, split
//! between worker threads; then the flat directories (`bounce`, and `todo`
//! and `intd` under `BIGTODO=0`); then the strays, looked at a second time.
//!
//! Memory holds one bucket per worker, never the queue's list of messages.
//!
//! What counts as a stray: a file in info, local, remote, todo, intd or
//! bounce (split or flat) whose `mess` file exists in no numeric subdirectory (looked up in
//! the expected one first, then in every other), or an entry that is not a
//! regular file or not a message name. A message is its `mess` file, so:
//! - `intd` without `todo` but with its `mess` is an injection in progress
//!   (or one that died): never a stray. qmail-send's own cleanup removes
//!   such a message once its `mess` is 36 hours old, exactly as upstream.
//! - `mess` alone (no intd/todo/info) is the first step of an injection:
//!   left alone for the same reason.
//! - every candidate gets a second look after all buckets are done (a
//!   worker may have moved its message meanwhile, or qmail-clean may have
//!   finished deleting a message), and in a live queue (checked, or changed
//!   with --force) candidates younger than 36 hours are left for qmail-send.

use super::apply::{Applier, RunMode};
use super::bucket::{plan_bucket, plan_flat_file, Bucket, MessIndex, StrayCandidate};
use super::convert::{mismatch_cause, Mismatch};
use super::index::RealIndex;
use super::plan::{Action, ActionKind, MessageMove, Plan};
use crate::fsx::dir::{open_dir_at, stat_at};
use crate::queue::found::{classify_top, split_subdirs, Top};
use crate::queue::layout::{is_todo_or_intd, Layout, MESS};
use crate::queue::name::parse_subdir;
use crate::queue::users::Ids;
use std::ffi::OsStr;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// qmail-send's own limit for leftovers of an interrupted injection
/// (`OSSIFIED`): younger files without a `mess` in a live queue may be
/// qmail-send's work in progress and are left alone.
pub const OSSIFIED_SECS: i64 = 36 * 3600;

/// Stray candidates held for the second look; beyond, found again.
const STRAYS_HELD: usize = 4096;

/// What the message check needs to know.
pub struct MessageCheck<'a> {
    pub root: &'a OwnedFd,
    pub layout: &'a Layout,
    pub ids: &'a Ids,
    pub threads: usize,
    /// The queue is live (and forced): young strays are left alone.
    pub live: bool,
    /// `todo`/`intd` in the other layout than `BIGTODO` says, from
    /// [`super::convert::layout_mismatch`]: converted first, counted as
    /// one problem.
    pub mismatch: &'a [Mismatch],
    /// Names of one directory of a bucket planned at once: [`part_names`].
    pub part_names: usize,
}

impl MessageCheck<'_> {
    /// The plan for the files of `bucket`, and its stray candidates.
    fn plan(&self, bucket: &Bucket, index: &RealIndex) -> (Plan, Vec<StrayCandidate>) {
        let mut plan = Plan::default();
        let mut strays = Vec::new();
        plan_bucket(bucket, self.layout, self.ids, index, &mut plan, &mut strays);
        (plan, strays)
    }
}

/// Runs the check, applying through `applier`; returns the number of
/// problems found, or the first error that stopped reading.
pub fn check(c: &MessageCheck, applier: &Applier) -> io::Result<usize> {
    let problems = AtomicUsize::new(0);
    problems.fetch_add(convert_first(c, applier)?, Ordering::Relaxed);
    let (dir_fds, buckets, top) = open_split_dirs(c)?;
    // The buckets' stray candidates, held up to STRAYS_HELD; beyond, the
    // flag says they are found again by a second pass.
    let strays = Mutex::new((Vec::<StrayCandidate>::new(), false));
    let index = RealIndex::open(c.root, c.layout).map_err(|e| named(MESS, e))?;
    let first_error = check_buckets(c, applier, &dir_fds, &buckets, &index, &problems, &strays);
    // The parallel pass's moves made durable and their old names removed
    // before anything looks at the queue again.
    applier.flush();
    if let Some(e) = first_error {
        return Err(e);
    }
    let (held, overflowed) = strays.into_inner().unwrap();
    let mut strays = top;
    strays.extend(held);
    let mut plan = Plan::default();
    for dir in c.layout.flat_message_dirs() {
        check_flat_dir(c, dir, &index, &mut plan, &mut strays).map_err(|e| named(dir, e))?;
    }
    for w in &plan.warnings {
        applier.warn(&w.path, &w.cause);
    }
    // -N changes nothing, so nothing can have moved since the first look.
    let second_look = applier.mode != RunMode::DryRun;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Moves that had to wait for another message's name, before the
    // second look at hard links (a halfway move splits a todo/intd pair).
    applier.finish_moves(&|mess: &Path| plan_one(c, &index, mess), &|each| {
        index.each_misnamed(each)
    });
    let settle = |s: StrayCandidate| -> Option<Action> {
        if s.linked && !still_too_many_links(c.root, &s) {
            return None;
        }
        // A second look: the file is still the one seen, and no worker
        // moved its message into place meanwhile.
        if second_look {
            let still = matches!(stat_at(c.root, &s.path), Ok(Some(st)) if st.ino == s.stat.ino);
            let owned = !s.regardless && s.name.is_some_and(|n| index.has_mess(n));
            if !still || owned {
                return None;
            }
        }
        if c.live && now - s.stat.mtime < OSSIFIED_SECS {
            return None;
        }
        Some(Action::SetAside {
            path: s.path,
            cause: s.cause,
            // Delete only plain strays: a directory may hold anything, and
            // a hard-linked file's other name may be someone's file.
            keep: s.regardless,
        })
    };
    plan.actions.extend(strays.into_iter().filter_map(settle));
    // Too many strays to hold: every bucket read again, after every move,
    // and each stray found there looked at and set aside at once.
    let mut again = 0;
    if overflowed {
        for &sub in &buckets {
            check_bucket(c, &dir_fds, &index, sub, &mut |_, found| {
                for a in found.into_iter().filter_map(settle) {
                    applier.run(&a);
                    again += 1;
                }
            })?;
        }
    }
    for a in &plan.actions {
        applier.run(a);
    }
    Ok(problems.into_inner() + plan.problems() + again)
}

/// The conversion of a `todo`/`intd` in the other layout, first: one
/// problem, repaired now or reported.
fn convert_first(c: &MessageCheck, applier: &Applier) -> io::Result<usize> {
    if c.mismatch.is_empty() {
        return Ok(0);
    }
    let converting = matches!(applier.mode, RunMode::Apply | RunMode::Ask)
        && applier.allowed(ActionKind::Rename);
    let cause = mismatch_cause(c.mismatch, converting);
    if converting {
        // Said, not left: this run repairs it.
        applier.say(Path::new("."), &cause);
        super::convert::convert(c.root, c.layout, c.ids, c.mismatch, applier)?;
    } else {
        applier.warn(Path::new("."), &cause);
    }
    Ok(1)
}

/// The split message directories opened, the bucket numbers found in any
/// of them, and what sits at their tops that does not belong there.
#[allow(clippy::type_complexity)]
fn open_split_dirs(
    c: &MessageCheck,
) -> io::Result<(Vec<(&'static str, OwnedFd)>, Vec<u32>, Vec<StrayCandidate>)> {
    // Entries at the top of a split directory, held for the second look.
    let mut top = Vec::<StrayCandidate>::new();
    let mut dir_fds: Vec<(&'static str, OwnedFd)> = Vec::new();
    let mut buckets: Vec<u32> = Vec::new();
    for dir in c.layout.split_message_dirs() {
        let Some(fd) = open_dir_at(c.root, dir).map_err(|e| named(dir, e))? else {
            continue;
        };
        let (subs, others) = split_subdirs(&fd).map_err(|e| named(dir, e))?;
        for name in others {
            // Wrong-typed subdirectories below the split are the layout's.
            if parse_subdir(name.as_bytes()).is_some_and(|n| n < c.layout.split) {
                continue;
            }
            if let Some(st) = stat_at(&fd, &name).map_err(|e| named(dir, e))? {
                // A flat todo/intd message file is the conversion's (done
                // above, or reported as the one mismatch): never a stray.
                if is_todo_or_intd(dir)
                    && matches!(
                        classify_top(name.as_bytes(), st.kind),
                        Top::MessageFile | Top::Parked
                    )
                {
                    continue;
                }
                top.push(StrayCandidate {
                    path: Path::new(dir).join(&name),
                    name: None,
                    stat: st,
                    cause: "does not belong at the top of a split directory".into(),
                    regardless: true,
                    linked: false,
                });
            }
        }
        buckets.extend(subs);
        dir_fds.push((dir, fd));
    }
    buckets.sort_unstable();
    buckets.dedup();
    Ok((dir_fds, buckets, top))
}

/// Every bucket checked, split between worker threads; the first error
/// that stopped a worker.
fn check_buckets(
    c: &MessageCheck,
    applier: &Applier,
    dir_fds: &[(&'static str, OwnedFd)],
    buckets: &[u32],
    index: &RealIndex,
    problems: &AtomicUsize,
    strays: &Mutex<(Vec<StrayCandidate>, bool)>,
) -> Option<io::Error> {
    let first_error = Mutex::new(None::<io::Error>);
    let threads = if applier.mode == RunMode::Ask {
        1
    } else {
        c.threads.max(1)
    };
    std::thread::scope(|scope| {
        for worker in 0..threads {
            let first_error = &first_error;
            scope.spawn(move || {
                for &sub in buckets.iter().skip(worker).step_by(threads) {
                    let result = check_bucket(c, dir_fds, index, sub, &mut |plan, mut found| {
                        for w in &plan.warnings {
                            applier.warn(&w.path, &w.cause);
                        }
                        for a in &plan.actions {
                            applier.run(a);
                        }
                        problems.fetch_add(plan.problems(), Ordering::Relaxed);
                        if !found.is_empty() {
                            let mut held = strays.lock().unwrap();
                            let (list, over) = &mut *held;
                            if *over || list.len() + found.len() > STRAYS_HELD {
                                // Memory stays bounded: every stray is
                                // found again by a second pass.
                                *list = Vec::new();
                                *over = true;
                            } else {
                                list.append(&mut found);
                            }
                        }
                    });
                    match result {
                        Ok(()) => {}
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    first_error.into_inner().unwrap()
}

/// Every file of a flat message directory (`bounce`; `todo` and `intd`
/// without `BIGTODO`), streamed: a flat `todo` file whose `mess` exists is
/// a message waiting for qmail-send, never a stray.
fn check_flat_dir(
    c: &MessageCheck,
    dir: &'static str,
    index: &RealIndex,
    plan: &mut Plan,
    strays: &mut Vec<StrayCandidate>,
) -> io::Result<()> {
    let Some(fd) = open_dir_at(c.root, dir)? else {
        return Ok(());
    };
    let partner = super::bucket::partner(dir);
    crate::fsx::dir::for_each_name(&fd, |name| {
        let Some(st) = stat_at(&fd, name)? else {
            return Ok(());
        };
        // A numbered subdirectory or a parked file of a flat todo/intd:
        // the conversion's.
        if partner.is_some()
            && matches!(
                classify_top(name.as_bytes(), st.kind),
                Top::Subdir | Top::Parked
            )
        {
            return Ok(());
        }
        let paired = st.nlink > 1
            && partner.is_some_and(|p| {
                matches!(stat_at(c.root, &Path::new(p).join(name)),
                    Ok(Some(o)) if (o.dev, o.ino) == (st.dev, st.ino))
            });
        plan_flat_file(dir, name, &st, paired, c.ids, c.layout, index, plan, strays);
        Ok(())
    })
}

/// A file seen with more links than allowed, looked at again: its link
/// count now, and whether its `todo`/`intd` partner shares it now.
fn still_too_many_links(root: &OwnedFd, s: &StrayCandidate) -> bool {
    let Ok(Some(st)) = stat_at(root, &s.path) else {
        return false;
    };
    if st.ino != s.stat.ino {
        return false;
    }
    let mut parts = s.path.iter();
    let allowed = match parts
        .next()
        .and_then(|d| super::bucket::partner(&d.to_string_lossy()))
    {
        Some(p) => {
            let other: PathBuf = Path::new(p).join(parts.as_path());
            match stat_at(root, &other) {
                Ok(Some(o)) if (o.dev, o.ino) == (st.dev, st.ino) => {
                    super::plan::MAX_LINKS_TODO_INTD_PAIR
                }
                _ => super::plan::MAX_LINKS,
            }
        }
        None => super::plan::MAX_LINKS,
    };
    st.nlink > allowed
}

fn named(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// Entries of one directory of a bucket stat'ed and planned at once by a
/// repair: a bucket holds about a queue's messages divided by the split,
/// so a big queue's buckets are taken in parts (by a keyed hash of the
/// name, so every file of one message is in the same part and no name can
/// be chosen to crowd one part). At 4,096 a queue of 1,000,000 messages
/// split 151 is repaired in two parts (peak RSS 12 MB).
const PART_NAMES: usize = 4096;

/// The same for a check that changes nothing (`-N`): it holds a part's
/// stats and no plan to carry out (the moves with both their paths, as
/// much again per name), so its parts are twice as big for the same
/// memory, and a queue of up to some 1,200,000 messages split 151 is
/// checked in one part, every name stat'ed as the listing gives it. In
/// two parts the second part's names are stat'ed long after the listing
/// and cost about a third more. `queue-fix --as-invoker -N` over queues of
/// 200,000 and 1,000,000 messages split 151 filled by
/// `examples/stat-bench-fill`, both on one tmpfs: 5.7 times the 200,000
/// time at 4,096, 5.2 times at 8,192; peak RSS 7.1 and 9.7 MB at
/// 1,000,000 (`BIG=1000000 bench/queue-fix.sh`, each size alone: 5.68
/// times, 9.1 MB).
const CHECK_PART_NAMES: usize = 8192;

/// The part size of a run in `mode`.
pub fn part_names(mode: RunMode) -> usize {
    if mode == RunMode::DryRun {
        CHECK_PART_NAMES
    } else {
        PART_NAMES
    }
}

/// The names of one directory of a bucket are read once and kept, packed
/// (a length byte and the name), up to this many bytes (about 90,000
/// ten-digit names: a queue of some 13,000,000 messages split 151); a
/// bigger directory is read again for each part instead, so memory stays
/// bounded whatever the queue's size, and a queue of a realistic size is
/// read once (on tmpfs a second reading of a directory costs about as
/// much as the first: it is the cost of a check).
const NAMES_HELD: usize = 1 << 20;

/// [`NAMES_HELD`], or `QUEUE_FIX_NAMES_HELD` from the environment (a test
/// hook, undocumented: the tests read a directory again in parts without
/// filling a queue of millions).
fn names_held() -> usize {
    static HELD: OnceLock<usize> = OnceLock::new();
    *HELD.get_or_init(|| {
        std::env::var("QUEUE_FIX_NAMES_HELD")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(NAMES_HELD)
    })
}

/// Bytes a directory's size grows by per entry, about (tmpfs adds 20 per
/// entry; ext4 and XFS a little more for a queue's ten-digit names): the
/// number of parts of a directory read again is guessed from it, never
/// relied on.
const DIRENT_BYTES: u64 = 20;

/// One directory of a bucket: its names read once, or too many to keep.
enum Names {
    Held(Packed),
    Reread,
}

/// Names packed one after another, each after its length byte.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    count: usize,
}

impl Packed {
    fn iter(&self) -> impl Iterator<Item = &OsStr> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = *self.bytes.get(at)? as usize;
            let name = &self.bytes[at + 1..at + 1 + len];
            at += 1 + len;
            Some(OsStr::from_bytes(name))
        })
    }
}

/// One directory's entries with their stats, as the plan reads them.
type Listing = Vec<(std::ffi::OsString, crate::fsx::dir::Stat)>;

/// Reads the names of `fd` once into a [`Packed`] (or says it is too big
/// to keep), and stats the names `first` picks as the listing gives them
/// (while the kernel's entry is fresh: a stat long after the listing costs
/// about a third more on a big tmpfs queue); `None` for those when more
/// than twice `part` (the part size).
fn read_names(
    fd: &OwnedFd,
    first: &dyn Fn(&OsStr) -> bool,
    part: usize,
) -> io::Result<(Names, Option<Listing>)> {
    let mut packed = Some(Packed::default());
    let mut listing = Some(Vec::new());
    crate::fsx::dir::for_each_name(fd, |name| {
        if let Some(l) = &mut listing {
            if first(name) {
                if l.len() >= 2 * part {
                    listing = None;
                } else if let Some(st) = stat_at(fd, name)? {
                    // An entry gone between readdir and fstatat (a live
                    // queue) is simply not there.
                    l.push((name.to_owned(), st));
                }
            }
        }
        if let Some(p) = &mut packed {
            let name = name.as_bytes();
            // A file name is at most 255 bytes (NAME_MAX): it fits the byte.
            if p.bytes.len() + 1 + name.len() > names_held() || name.len() > 255 {
                packed = None;
            } else {
                p.bytes.push(name.len() as u8);
                p.bytes.extend_from_slice(name);
                p.count += 1;
            }
        }
        if packed.is_none() && listing.is_none() {
            return Err(io::Error::other("nothing more to keep"));
        }
        Ok(())
    })
    .or_else(|e| match (&packed, &listing) {
        (None, None) => Ok(()),
        _ => Err(e),
    })?;
    let names = match packed {
        Some(mut p) => {
            p.bytes.shrink_to_fit();
            Names::Held(p)
        }
        None => Names::Reread,
    };
    Ok((names, listing))
}

fn check_bucket(
    c: &MessageCheck,
    dir_fds: &[(&'static str, OwnedFd)],
    index: &RealIndex,
    sub: u32,
    done: &mut Done,
) -> io::Result<()> {
    let name = sub.to_string();
    let shown = |dir: &str| format!("{dir}/{name}");
    // The number of parts guessed from the directories' sizes, so the
    // first part is stat'ed during the one listing.
    let mut opened = Vec::with_capacity(dir_fds.len());
    let mut guess = 0u64;
    for (dir, fd) in dir_fds {
        let sfd = open_dir_at(fd, &name).map_err(|e| named(&shown(dir), e))?;
        if let Some(sfd) = &sfd {
            let size = nix::sys::stat::fstat(sfd).map_or(0, |st| st.st_size.max(0) as u64);
            guess = guess.max(size / DIRENT_BYTES);
        }
        opened.push((*dir, sfd));
    }
    let guessed = guess.div_ceil(c.part_names as u64).max(1);
    let hasher = std::collections::hash_map::RandomState::new();
    let first = |n: &OsStr| guessed == 1 || hasher.hash_one(n.as_bytes()) % guessed == 0;
    let mut subs = Vec::with_capacity(opened.len());
    let mut firsts = Some(Vec::with_capacity(opened.len()));
    let mut most = 0usize;
    for (dir, sfd) in opened {
        let Some(sfd) = sfd else {
            subs.push((dir, None));
            if let Some(f) = &mut firsts {
                f.push(Vec::new());
            }
            continue;
        };
        let (names, listing) =
            read_names(&sfd, &first, c.part_names).map_err(|e| named(&shown(dir), e))?;
        most = most.max(match &names {
            Names::Held(p) => p.count,
            Names::Reread => guess as usize,
        });
        match listing {
            Some(l) => {
                if let Some(f) = &mut firsts {
                    f.push(l);
                }
            }
            None => firsts = None,
        }
        subs.push((dir, Some((sfd, names))));
    }
    match firsts {
        // The guess held: part 0 is read already.
        Some(firsts) => {
            let (plan, found) = c.plan(
                &Bucket {
                    sub,
                    dirs: subs.iter().map(|(d, _)| *d).zip(firsts).collect(),
                },
                index,
            );
            done(plan, found);
            for part in 1..guessed {
                check_part(c, &subs, &hasher, index, sub, (guessed, part), done)?;
            }
        }
        None => {
            let parts = most.div_ceil(c.part_names).max(1) as u64;
            for part in 0..parts {
                check_part(c, &subs, &hasher, index, sub, (parts, part), done)?;
            }
        }
    }
    Ok(())
}

/// What is done with one part's plan and stray candidates.
type Done<'a> = dyn FnMut(Plan, Vec<StrayCandidate>) + 'a;

/// One directory of a bucket, opened, with its names if kept.
type SubDir = (&'static str, Option<(OwnedFd, Names)>);

/// One part of a bucket: the names whose hash is `part.1` modulo
/// `part.0`, stat'ed, planned and handed to `done`; halved when too big.
fn check_part(
    c: &MessageCheck,
    subs: &[SubDir],
    hasher: &std::collections::hash_map::RandomState,
    index: &RealIndex,
    sub: u32,
    (parts, part): (u64, u64),
    done: &mut Done,
) -> io::Result<()> {
    let mut bucket = Bucket {
        sub,
        dirs: Vec::with_capacity(subs.len()),
    };
    let mine = |name: &OsStr| parts == 1 || hasher.hash_one(name.as_bytes()) % parts == part;
    for (dir, opened) in subs {
        let listing = match opened {
            Some((sfd, names)) => {
                let shown = || format!("{dir}/{sub}");
                let picked = match names {
                    Names::Held(packed) => {
                        let picked: Vec<&OsStr> = packed.iter().filter(|n| mine(n)).collect();
                        (picked.len() <= 2 * c.part_names)
                            .then(|| picked.into_iter().map(OsStr::to_owned).collect())
                    }
                    Names::Reread => {
                        reread_part(sfd, &mine, c.part_names).map_err(|e| named(&shown(), e))?
                    }
                };
                let Some(picked) = picked else {
                    drop(bucket);
                    for half in [part, part + parts] {
                        check_part(c, subs, hasher, index, sub, (parts * 2, half), done)?;
                    }
                    return Ok(());
                };
                let mut listing = Vec::with_capacity(picked.len());
                for name in picked {
                    // An entry gone between readdir and fstatat (a live
                    // queue) is simply not there.
                    if let Some(st) = stat_at(sfd, &name).map_err(|e| named(&shown(), e))? {
                        listing.push((name, st));
                    }
                }
                listing
            }
            None => Vec::new(),
        };
        bucket.dirs.push((dir, listing));
    }
    let (plan, found) = c.plan(&bucket, index);
    drop(bucket);
    done(plan, found);
    Ok(())
}

/// The names of `fd` that `mine` picks, read from the start of the
/// listing again; `None` when they are more than twice `part` (nothing
/// kept: memory stays bounded whatever the directory's size said).
fn reread_part(
    fd: &OwnedFd,
    mine: &dyn Fn(&OsStr) -> bool,
    part: usize,
) -> io::Result<Option<Vec<std::ffi::OsString>>> {
    nix::unistd::lseek(fd, 0, nix::unistd::Whence::SeekSet).map_err(crate::fsx::dir::io_err)?;
    let mut names = Vec::new();
    let mut over = false;
    let listed = crate::fsx::dir::for_each_name(fd, |name| {
        if mine(name) {
            if names.len() >= 2 * part {
                over = true;
                return Err(io::Error::other("part too big"));
            }
            names.push(name.to_owned());
        }
        Ok(())
    });
    if over {
        return Ok(None);
    }
    listed?;
    Ok(Some(names))
}

/// The move of the one message whose `mess` file is at `mess` (`mess/S/N`),
/// planned from a fresh look at its files; `None` when it needs none.
fn plan_one(c: &MessageCheck, index: &RealIndex, mess: &Path) -> Option<MessageMove> {
    let sub_name = mess.parent()?.file_name()?;
    let sub = parse_subdir(sub_name.as_bytes())?;
    let name = mess.file_name()?;
    let mut bucket = Bucket {
        sub,
        dirs: Vec::new(),
    };
    for dir in c.layout.split_message_dirs() {
        let p: PathBuf = Path::new(dir).join(sub_name).join(name);
        let files = match stat_at(c.root, &p) {
            Ok(Some(st)) => vec![(name.to_owned(), st)],
            _ => Vec::new(),
        };
        bucket.dirs.push((dir, files));
    }
    let (plan, _) = c.plan(&bucket, index);
    plan.actions.into_iter().find_map(|a| match a {
        Action::MoveMessage(m) if m.from == mess => Some(m),
        _ => None,
    })
}
