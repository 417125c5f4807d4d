//! Retiring queues outside the configured range: every message, with all
//! its files, moves into the queues of the range.

//!
//! On one filesystem a message keeps its inode: `mess` is hard-linked into
//! the destination, the other files are renamed there (todo last), then the
//! old `mess` name goes. Across filesystems a new `mess` file is written
//! under a marker name in the destination's `pid/` (`retire.<queue>.<inode>`)
//! and linked into `mess/` under its new inode; the other files are copied
//! under temporary names in `pid/` and renamed into place; only then are
//! the source files deleted (`mess` last) and the marker removed. The
//! marker records which new message a source message became, so a rerun
//! after a crash at any point continues instead of copying twice.
//! Both ways work in batches: many messages are moved or copied, then made
//! durable together (on one filesystem an fsync of every directory that
//! got a name; across filesystems one `syncfs` per destination filesystem,
//! which puts the new files and their names on disk at once), and only
//! then are the source names removed, their directories synced, and the
//! markers cleared. No source name is ever removed before
//! its copy and the copy's names are on disk.
//! Destinations are chosen by a hash of the inode among the enabled
//! queues of the range, after looking for a destination the message
//! already went to. A disabled queue gets retired mail only when every
//! queue of the range is disabled: qmail-send still delivers a disabled
//! queue, so the mail is safe there, and retiring must not strand it.

use super::apply::RunMode;
use super::check::fix_queue;
use super::lock;
use super::mover::{markers_of, rel, Dest, Mover};
use super::ops::step;
use super::options::{fatal, Options, Outcome};
use crate::fsx::beneath;
use crate::fsx::dir::{io_err, open_dir_at, stat_at};
use crate::queue::layout::{self, Layout, MESS, PID};
use crate::queue::users::Ids;
use nix::errno::Errno;
use std::ffi::OsString;
use std::io;
use std::ops::Range;
use std::path::Path;

pub use super::plan::{RETIRE_MARKER_PREFIX as MARKER_PREFIX, RETIRE_TEMP_PREFIX as TEMP_PREFIX};

/// Moves every message of `queue` into the queues of `range`.
pub fn retire_queue(
    queue: &Path,
    base: &Path,
    range: &Range<u32>,
    opts: &Options,
    ids: &Ids,
) -> Outcome {
    let qname = queue.file_name().map(OsString::from).unwrap_or_default();
    let qname = qname.to_string_lossy().into_owned();
    let dests = match open_dests(queue, base, range, opts) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let targets = targets(&dests);
    say_disabled(queue, &dests, &targets);
    let src = match crate::fsx::dir::open_named_dir(nix::fcntl::AT_FDCWD, queue) {
        Ok(Some(fd)) => fd,
        Ok(None) => return Outcome::default(),
        Err(e) => return fatal(queue, "cannot open", e),
    };
    match lock::is_live(&src) {
        Ok(true) if !opts.force && opts.mode != RunMode::DryRun => return refuse(queue, queue),
        Ok(_) => {}
        Err(e) => return fatal(queue, "cannot probe the lock", e),
    }
    // Canonical names first: the source is repaired like any queue.
    let mut outcome = fix_queue(queue, opts, ids);
    if outcome.fatal || outcome.live_refused {
        return outcome;
    }
    outcome.problems += 1;
    if opts.mode == RunMode::Ask && !super::apply::ask(super::plan::ActionKind::Retire) {
        return outcome;
    }
    let markers = match markers_of(&qname, &dests) {
        Ok(m) => m,
        Err(e) => return fatal(base, "cannot read the retire markers", e),
    };
    let mover = Mover {
        src: &src,
        markers,
        qname: &qname,
        dests: &dests,
        targets: &targets,
        layout: &opts.layout,
        ids,
        verbose: opts.verbose,
        dry: opts.mode == RunMode::DryRun,
        shown: queue,
        base,
        pending: Default::default(),
        dirs: Default::default(),
    };
    if let Err((p, what, e)) = mover.all() {
        eprintln!(
            "queue-fix: fatal: {}: {what}: {e}",
            crate::fsx::escape::path(&p)
        );
        outcome.fatal = true;
    }
    if opts.mode != RunMode::DryRun {
        if let Err(e) = clear_finished_markers(base, &dests, &opts.layout) {
            outcome.add(fatal(base, "cannot clear retire markers", e));
        }
    }
    outcome
}

/// The queues of the range, open, each to retire into; refused when one
/// is live (without `--force`) or missing.
fn open_dests(
    queue: &Path,
    base: &Path,
    range: &Range<u32>,
    opts: &Options,
) -> Result<Vec<Dest>, Outcome> {
    let mut dests = Vec::new();
    for n in range.clone() {
        let path = base.join(format!("queue{n}"));
        let root = match crate::fsx::dir::open_named_dir(nix::fcntl::AT_FDCWD, &path) {
            Ok(Some(fd)) => fd,
            Ok(None) => return Err(fatal(&path, "cannot retire into it", "no such queue")),
            Err(e) => return Err(fatal(&path, "cannot open", e)),
        };
        match lock::is_live(&root) {
            Ok(true) if !opts.force && opts.mode != RunMode::DryRun => {
                return Err(refuse(&path, queue))
            }
            Ok(_) => {}
            Err(e) => return Err(fatal(&path, "cannot probe the lock", e)),
        }
        let dev = match stat_at(&root, MESS) {
            Ok(Some(st)) => st.dev,
            _ => return Err(fatal(&path.join(MESS), "cannot retire into it", "missing")),
        };
        let disabled = matches!(crate::queue::disable::marker_at(&root), Ok(Some(true)));
        dests.push(Dest {
            n,
            root,
            dev,
            disabled,
        });
    }
    Ok(dests)
}

/// Says where mail goes when some queues of the range are disabled.
fn say_disabled(queue: &Path, dests: &[Dest], targets: &[usize]) {
    if !dests.iter().any(|d| d.disabled) {
        return;
    }
    let shown = crate::fsx::escape::path(queue);
    if targets.iter().all(|&i| dests[i].disabled) {
        println!(
            "{shown}: every queue of the range is disabled: retiring into them anyway \
             (qmail-send still delivers a disabled queue)"
        );
    } else {
        let skipped: Vec<String> = dests
            .iter()
            .filter(|d| d.disabled)
            .map(|d| format!("queue{}", d.n))
            .collect();
        println!(
            "{shown}: retiring into enabled queues only, not into disabled {}",
            skipped.join(" ")
        );
    }
}

/// The indexes of the destinations new mail goes to: the enabled ones, or
/// all when every one is disabled.
fn targets(dests: &[Dest]) -> Vec<usize> {
    let enabled: Vec<usize> = (0..dests.len()).filter(|&i| !dests[i].disabled).collect();
    if enabled.is_empty() {
        (0..dests.len()).collect()
    } else {
        enabled
    }
}

fn refuse(live: &Path, queue: &Path) -> Outcome {
    eprintln!(
        "queue-fix: {}: live: {} is locked by another process (qmail-send running); \
         not retiring {} (use --force)",
        crate::fsx::escape::path(live),
        layout::SENDMUTEX,
        crate::fsx::escape::path(queue)
    );
    Outcome {
        live_refused: true,
        problems: 1,
        ..Outcome::default()
    }
}

/// Clears finished markers in every queue of the range.
pub fn finish_markers(base: &Path, range: &Range<u32>, layout: &Layout) -> io::Result<()> {
    let mut dests = Vec::new();
    for n in range.clone() {
        if let Some(root) =
            crate::fsx::dir::open_named_dir(nix::fcntl::AT_FDCWD, &base.join(format!("queue{n}")))?
        {
            dests.push(Dest {
                n,
                root,
                dev: 0,
                disabled: false,
            });
        }
    }
    clear_finished_markers(base, &dests, layout)
}

/// Markers whose source message is gone belong to finished moves; temporary
/// copies belong to interrupted ones. Both go.
fn clear_finished_markers(base: &Path, dests: &[Dest], layout: &Layout) -> io::Result<()> {
    for d in dests {
        let Some(pid) = open_dir_at(&d.root, PID)? else {
            continue;
        };
        let mut names = Vec::new();
        crate::fsx::dir::for_each_name(&pid, |n| {
            names.push(n.to_owned());
            Ok(())
        })?;
        for name in names {
            let text = name.to_string_lossy();
            let finished = if text.starts_with(TEMP_PREFIX) {
                true
            } else if let Some(rest) = text.strip_prefix(MARKER_PREFIX) {
                match rest
                    .rsplit_once('.')
                    .and_then(|(q, i)| Some((q, i.parse::<u64>().ok()?)))
                {
                    Some((q, ino)) => !base.join(q).join(rel(MESS, ino, layout)).exists(),
                    None => false,
                }
            } else {
                false
            };
            if finished {
                step();
                match beneath::unlink(&pid, Path::new(&name)) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
        }
    }
    Ok(())
}
