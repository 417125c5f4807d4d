//! A whole run: one queue, or a base's range with the queues qscheduler
//! serves beyond it, the special queues, and the orphans (and retiring them).

use super::apply::RunMode;
use super::check::fix_queue;
use super::options::{fatal, status, Options, Outcome, Target};
use super::retire;
use crate::queue::found;
use crate::queue::users::{self, Ids};
use std::io;
use std::path::Path;

/// Runs queue-fix as the options say and returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let ids = match users::resolve(opts.owners) {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!(
                "queue-fix: fatal: {e} (create the qmail users and group, or use --as-invoker)"
            );
            return status::FATAL;
        }
    };
    let outcome = match &opts.target {
        Target::Queue(q) => fix_queue(q, opts, &ids),
        Target::Base {
            base,
            count,
            start,
            retire,
        } => fix_base(base, *start, *count, *retire, opts, &ids),
    };
    outcome.status(opts.mode)
}

/// Every queue of the range, the queues qscheduler serves beyond it, the
/// special queues, then the orphans (and their retirement).
fn fix_base(
    base: &Path,
    start: u32,
    count: u32,
    retire: bool,
    opts: &Options,
    ids: &Ids,
) -> Outcome {
    let mut total = Outcome::default();
    match std::fs::metadata(base) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return fatal(base, "cannot use as the queue base", "not a directory"),
        Err(e) => return fatal(base, "cannot use as the queue base", e),
    }
    let range = start..start.saturating_add(count);
    for n in range.clone() {
        total.add(fix_queue(&base.join(format!("queue{n}")), opts, ids));
    }
    let in_use = crate::queue::served::running_scheduler_in_use();
    let served = crate::queue::served::served_range(start, count, in_use);
    total.add(fix_served_beyond(base, &range, &served, in_use, opts, ids));
    total.add(fix_special(base, opts, ids));
    // A retirement moves mail between queues in one layout: with a setting
    // unset, the range's first queue's (queue::found).
    let found_opts;
    let opts = match found::layout_at(
        &base.join(format!("queue{start}")),
        opts.layout,
        opts.as_found,
    ) {
        Ok(layout) if layout != opts.layout => {
            found_opts = Options {
                layout,
                ..opts.clone()
            };
            &found_opts
        }
        Ok(_) => opts,
        Err(e) => {
            total.add(fatal(base, "cannot tell the layout of the range", e));
            return total;
        }
    };
    let orphans = match crate::queue::orphans::find_orphans(base, &served) {
        Ok(o) => o,
        Err(e) => return fatal(base, "cannot read", e),
    };
    for (n, held) in &orphans {
        let q = base.join(format!("queue{n}"));
        if !(retire && opts.mode != RunMode::DryRun) {
            report_orphan(&q, *held, &served, retire);
        }
        if retire {
            // With -N: the plan of the retirement, nothing moved. Mail
            // goes into the configured range only: qscheduler may shrink
            // back below what it serves now.
            total.add(retire::retire_queue(&q, base, &range, opts, ids));
        } else {
            // Found, and not something this run repairs.
            total.problems += 1;
            total.left += 1;
        }
    }
    if retire && opts.mode != RunMode::DryRun {
        // Markers of moves that finished just before a crash.
        if let Err(e) = retire::finish_markers(base, &range, &opts.layout) {
            total.add(fatal(base, "cannot clear retire markers", e));
        }
    }
    total
}

/// One orphan and what it holds (with `--retire` only under `-N`).
fn report_orphan(q: &Path, held: u64, served: &std::ops::Range<u32>, retire: bool) {
    eprintln!(
        "queue-fix: {}: orphan: holds {held} message{} outside queue{}..queue{}{}",
        crate::fsx::escape::path(q),
        if held == 1 { "" } else { "s" },
        served.start,
        served.end.saturating_sub(1),
        if retire {
            ""
        } else {
            " (move them with --retire)"
        }
    );
}

/// The queues beyond the configured range that qscheduler says it has in
/// use (see [`crate::queue::served`]): a qmail-send delivers from each and
/// qmail-multi injects into each, so a broken one loses mail exactly as a
/// range queue would. They are checked and repaired like the range (and
/// refused like it while live, without `--force`), but never created
/// (qscheduler runs queue-fix itself before it starts a qmail-send on a
/// new queue; a missing one means its count is stale) and never retired.
fn fix_served_beyond(
    base: &Path,
    range: &std::ops::Range<u32>,
    served: &std::ops::Range<u32>,
    in_use: Option<u32>,
    opts: &Options,
    ids: &Ids,
) -> Outcome {
    let mut total = Outcome::default();
    for n in served.clone().filter(|n| !range.contains(n)) {
        let q = base.join(format!("queue{n}"));
        let shown = crate::fsx::escape::path(&q);
        let why = format!(
            "served by qscheduler ({} queues in use, configured queue{}..queue{})",
            in_use.unwrap_or(0),
            range.start,
            range.end.saturating_sub(1)
        );
        match std::fs::symlink_metadata(&q) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!(
                    "{shown}: {why}: does not exist; not created (qscheduler creates its queues)"
                );
            }
            _ => {
                println!("{shown}: {why}: checked like the range, not an orphan");
                total.add(fix_queue(&q, opts, ids));
            }
        }
    }
    total
}

/// IndiMail 3.x's special queues under the base, each with its own layout
/// (slowq with `ratelimit`, qmta in qmta mode), checked when present and
/// never created (svctool makes them for the setups that use them).
fn fix_special(base: &Path, opts: &Options, ids: &Ids) -> Outcome {
    let mut total = Outcome::default();
    for sq in crate::queue::special::SPECIAL {
        let q = base.join(sq.name);
        if matches!(std::fs::symlink_metadata(&q), Err(e) if e.kind() == io::ErrorKind::NotFound) {
            continue;
        }
        if opts.verbose {
            println!(
                "{}: special queue ({}{}{})",
                crate::fsx::escape::path(&q),
                sq.purpose,
                if sq.option.is_empty() {
                    ""
                } else {
                    ", checked as with "
                },
                sq.option
            );
        }
        let special = Options {
            layout: sq.layout(opts.layout),
            ..opts.clone()
        };
        total.add(fix_queue(&q, &special, ids));
    }
    total
}
