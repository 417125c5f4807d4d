//! The layout a queue already has, for what no setting chose: a repair
//! never re-splits a queue or converts its `todo` because `CONFSPLIT` or
//! `BIGTODO` was merely absent (see [`crate::queue::settings`]). A setting
//! that is given, and differs from the disk, still changes the layout.

use crate::fsx::dir::{for_each_name, for_each_typed, open_dir_at, stat_at, Found};
use crate::queue::layout::{Layout, INTD, MESS, TODO};
use crate::queue::name::{parse_inode, parse_subdir, split_index, MAX_SPLIT};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

/// Which parts of the layout no setting chose, so each queue keeps what
/// it has on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsFound {
    /// `CONFSPLIT` (or `-s`) not set anywhere.
    pub split: bool,
    /// `BIGTODO` (or `-b`) not set anywhere.
    pub big_todo: bool,
}

/// The directories split whatever `BIGTODO` says.
const SPLIT_DIRS: [&str; 4] = [MESS, "info", "local", "remote"];

/// `wanted` with the parts `as_found` leaves to the disk taken from the
/// queue at `root`, and `trash` belonging to it when it has one (a queue
/// without one is complete, as IndiMail 3.x's queue-fix makes it without
/// `-t`; one that exists is still checked). `Err`: the disk does not say
/// (an interrupted conversion of `todo`/`intd` with `BIGTODO` unset).
pub fn layout_of(
    root: &OwnedFd,
    wanted: Layout,
    as_found: AsFound,
) -> io::Result<Result<Layout, String>> {
    let mut layout = wanted;
    if !layout.trash && stat_at(root, "trash")?.is_some() {
        layout.trash = true;
    }
    if as_found.split {
        if let Some(split) = split_on_disk(root)? {
            layout.split = split;
        }
    }
    if as_found.big_todo {
        match big_todo_on_disk(root)? {
            Ok(Some(b)) => layout.big_todo = b,
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(layout))
}

/// The split the queue's directories were made with. Each of `mess`,
/// `info`, `local` and `remote` proposes one more than its highest
/// numbered subdirectory (qmail-send and queue-fix make all four with
/// every bucket). When they disagree — a bucket missing from one of them,
/// or one more made by hand or by an account that can write there — the
/// names alone are not trusted: the proposal under which most `mess` files
/// already sit in their bucket (`inode % split`) wins, then the one most
/// directories make, then the larger. So neither a lost top bucket nor a
/// planted `mess/150` re-splits a queue whose mail says otherwise.
/// `None`: no numbered subdirectory anywhere (a queue being created).
fn split_on_disk(root: &OwnedFd) -> io::Result<Option<u32>> {
    let mut proposals: Vec<u32> = Vec::new();
    let mut mess_buckets: Vec<u32> = Vec::new();
    for dir in SPLIT_DIRS {
        let Some(fd) = open_dir_at(root, dir)? else {
            continue;
        };
        let mut highest = None::<u32>;
        for_each_typed(&fd, |name, kind| {
            if kind == Found::Dir {
                if let Some(n) = parse_subdir(name.as_encoded_bytes()).filter(|&n| n < MAX_SPLIT) {
                    highest = Some(highest.map_or(n, |h| h.max(n)));
                    if dir == MESS {
                        mess_buckets.push(n);
                    }
                }
            }
            Ok(())
        })?;
        proposals.extend(highest.map(|h| h + 1));
    }
    let mut candidates = proposals.clone();
    candidates.sort_unstable();
    candidates.dedup();
    if candidates.len() <= 1 {
        return Ok(candidates.first().copied());
    }
    let placed = placed_under(root, &mess_buckets, &candidates)?;
    let votes = |n: u32| proposals.iter().filter(|&&p| p == n).count();
    Ok(candidates
        .iter()
        .zip(placed)
        .max_by_key(|&(&n, placed)| (placed, votes(n), n))
        .map(|(&n, _)| n))
}

/// For each candidate split, how many `mess` files sit in the bucket it
/// gives them (`mess/<inode % split>/<inode>`).
fn placed_under(root: &OwnedFd, buckets: &[u32], candidates: &[u32]) -> io::Result<Vec<u64>> {
    let mut placed = vec![0u64; candidates.len()];
    let Some(mess) = open_dir_at(root, MESS)? else {
        return Ok(placed);
    };
    for &bucket in buckets {
        let Some(fd) = open_dir_at(&mess, &bucket.to_string())? else {
            continue;
        };
        for_each_typed(&fd, |name, _| {
            if let Some(inode) = parse_inode(name.as_encoded_bytes()) {
                for (count, &split) in placed.iter_mut().zip(candidates) {
                    *count += u64::from(split_index(inode, split) == bucket);
                }
            }
            Ok(())
        })?;
    }
    Ok(placed)
}

/// `todo`/`intd` split (numbered subdirectories at the top) or flat
/// (anything else, an empty directory included: IndiMail 3.x's fresh
/// queue); `Ok(None)`: neither directory exists.
fn big_todo_on_disk(root: &OwnedFd) -> io::Result<Result<Option<bool>, String>> {
    let mut seen = TopSeen::default();
    let mut any = false;
    for dir in [TODO, INTD] {
        let Some(fd) = open_dir_at(root, dir)? else {
            continue;
        };
        any = true;
        for_each_typed(&fd, |name, kind| {
            seen.add(classify_top(name.as_encoded_bytes(), kind));
            Ok(())
        })?;
    }
    if seen.parked || (seen.subdir && seen.message_file) {
        return Ok(Err(
            "todo/intd hold both numbered subdirectories and message files (an interrupted \
             conversion) and BIGTODO is not set: give -b 0|1 or set BIGTODO"
                .into(),
        ));
    }
    Ok(Ok(any.then_some(seen.subdir)))
}

/// [`layout_of`] for the queue directory at `queue` (followed as queue-fix
/// follows one, [`crate::fsx::trusted`]); `wanted` when it does not exist.
pub fn layout_at(
    queue: &std::path::Path,
    wanted: Layout,
    as_found: AsFound,
) -> Result<Layout, String> {
    if as_found == AsFound::default() {
        return Ok(wanted);
    }
    match crate::fsx::trusted::open_dir_trusted(queue) {
        Ok(Some(fd)) => layout_of(&fd, wanted, as_found)
            .map_err(|e| format!("{}: {e}", crate::fsx::escape::path(queue)))?,
        Ok(None) => Ok(wanted),
        Err(e) => Err(format!("{}: {e}", crate::fsx::escape::path(queue))),
    }
}

/// The numeric subdirectories of a split directory, sorted, and every other
/// entry found at its top level (which does not belong there).
pub fn split_subdirs(fd: &OwnedFd) -> io::Result<(Vec<u32>, Vec<OsString>)> {
    let mut subs = Vec::new();
    let mut other = Vec::new();
    for_each_name(fd, |name| {
        match parse_subdir(name.as_bytes()) {
            Some(n) if stat_at(fd, name)?.is_some_and(|s| s.kind == Found::Dir) => subs.push(n),
            _ => other.push(name.to_owned()),
        }
        Ok(())
    })?;
    subs.sort_unstable();
    Ok((subs, other))
}

/// What an entry at the top of `todo` or `intd` says about its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Top {
    /// A numbered subdirectory: the split layout.
    Subdir,
    /// A regular file with a message name: the flat layout.
    MessageFile,
    /// A message file parked under [`PARKED_SUFFIX`] by an unfinished
    /// conversion.
    Parked,
    /// Neither: the message check's business.
    Other,
}

/// A message file whose name is also a subdirectory's name (`todo/5` and
/// `todo/5/5`, a message of inode 5) waits under this suffix at the top
/// while the conversion swaps the file and the directory; a rerun after a
/// crash finds it there and finishes.
pub const PARKED_SUFFIX: &str = ".queue-fix-convert";

/// The message a parked name (`5.queue-fix-convert`) belongs to.
pub fn parked(name: &[u8]) -> Option<u64> {
    parse_inode(name.strip_suffix(PARKED_SUFFIX.as_bytes())?)
}

pub fn classify_top(name: &[u8], kind: Found) -> Top {
    match kind {
        Found::Dir if parse_subdir(name).is_some() => Top::Subdir,
        Found::File if parse_inode(name).is_some() => Top::MessageFile,
        Found::File if parked(name).is_some() => Top::Parked,
        _ => Top::Other,
    }
}

/// What the top of one `todo` or `intd` holds, as far as its layout goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopSeen {
    pub subdir: bool,
    pub message_file: bool,
    pub parked: bool,
}

impl TopSeen {
    pub fn add(&mut self, t: Top) {
        match t {
            Top::Subdir => self.subdir = true,
            Top::MessageFile => self.message_file = true,
            Top::Parked => self.parked = true,
            Top::Other => {}
        }
    }
}
