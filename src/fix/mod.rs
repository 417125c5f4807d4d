//! queue-fix: observe a queue, plan the repairs, apply them.
//!
//! [`observe`] reads (fstatat relative to directory descriptors),
//! [`plan`] turns findings into actions (pure), [`apply`] prints, asks or
//! runs them, [`messages`] streams the message check bucket by bucket over
//! two threads, [`retire`] empties queues outside the configured range,
//! [`lock`] tells a live queue.

pub mod apply;
pub mod lock;
pub mod messages;
pub mod plan;
pub mod retire;

use crate::queue::found;
use crate::queue::layout::{Kind, Layout, PID, QUARANTINE};
use crate::queue::users::{self, Ids, Owners};
use apply::{Applier, RunMode};
use crate::fsx::dir::{self, open_dir_at, stat_at, Found};
use plan::{plan_entry, want_of, wanted, Plan, TEMP_SUFFIX};
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Exit statuses (also in `queue-fix --help`, queue-fix(8) and the
/// README).
///
/// One rule: the status is the number of problems the queue still has
/// when queue-fix ends. With `-N` nothing changes, so that is every
/// problem found; a repair that left the queue correct exits 0, which is
/// what IndiMail 3.x's callers require (qscheduler grows the queue count
/// by running `queue-fix -s SPLIT BASE/queue<N+1>` and stops every
/// qmail-send it supervises on any other status: qscheduler.c,
/// `queue_fix()`, indimail/indimail-mta). Upstream's own repair returns 0
/// even when it only warned (`return (flag_doit ? 0 : queueError)`,
/// indimail-mta-x/queue-fix.c revision 1.32 of 2024-02-08, commit
/// fcca1020fc8d934896bcc4b5080aea2e1267b5b7); here what a repair saw but did not change
/// (a file with foreign hard links, a `lock/tcpto` of the wrong size, an
/// answer "no" to `-i`) still counts, so 0 always means a correct queue.
pub mod status {
    /// Usage error.
    pub const USAGE: i32 = 100;
    /// Cannot read a queue, cannot change it, or the qmail users are missing.
    pub const FATAL: i32 = 111;
    /// A live queue needed changes and `--force` was not given.
    pub const LIVE: i32 = 112;
    /// Problem counts are capped here so they never reach 100 (nor wrap
    /// to 0 modulo 256, as upstream's do).
    pub const MAX_PROBLEMS: i32 = 99;
}

/// The parsed command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: RunMode,
    pub verbose: bool,
    /// The shape every queue of the run must have.
    pub layout: Layout,
    pub force: bool,
    pub delete_strays: bool,
    pub owners: Owners,
    pub target: Target,
    /// The parts of `layout` no setting chose: each queue keeps its own.
    pub as_found: found::AsFound,
    /// Worker threads for the message check.
    pub threads: usize,
}

#[derive(Clone, Debug)]
pub enum Target {
    Queue(PathBuf),
    Base {
        base: PathBuf,
        count: u32,
        start: u32,
        retire: bool,
    },
}

/// What happened to one queue or a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Problems found.
    pub problems: u64,
    /// Of those, the ones this run did not change (reported only, or
    /// declined at `-i`); with `-N` every problem stays, and this is not
    /// used.
    pub left: u64,
    pub fatal: bool,
    pub live_refused: bool,
}

impl Outcome {
    pub fn add(&mut self, o: Outcome) {
        self.problems += o.problems;
        self.left += o.left;
        self.fatal |= o.fatal;
        self.live_refused |= o.live_refused;
    }

    /// The exit status (see [`status`]): fatal beats live beats the count
    /// of problems the queue still has, capped — all of them when nothing
    /// was changed (`-N`), those left unrepaired otherwise.
    pub fn status(&self, mode: RunMode) -> i32 {
        let remaining = match mode {
            RunMode::DryRun | RunMode::CountOnly => self.problems,
            RunMode::Apply | RunMode::Ask => self.left.min(self.problems),
        };
        if self.fatal {
            status::FATAL
        } else if self.live_refused {
            status::LIVE
        } else {
            remaining.min(status::MAX_PROBLEMS as u64) as i32
        }
    }
}

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

pub(crate) fn fatal(path: &Path, what: &str, e: impl std::fmt::Display) -> Outcome {
    eprintln!(
        "queue-fix: fatal: {}: {what}: {e}",
        crate::fsx::escape::path(path)
    );
    Outcome {
        fatal: true,
        ..Outcome::default()
    }
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
    // unset, the range's first queue's (fix::found).
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
            eprintln!(
                "queue-fix: {}: orphan: holds {held} message{} outside queue{}..queue{}{}",
                crate::fsx::escape::path(&q),
                if *held == 1 { "" } else { "s" },
                served.start,
                served.end.saturating_sub(1),
                if retire {
                    ""
                } else {
                    " (move them with --retire)"
                }
            );
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

/// Creates, checks or repairs one queue.
pub fn fix_queue(queue: &Path, opts: &Options, ids: &Ids) -> Outcome {
    let root = match open_queue(queue) {
        Ok(Some(fd)) => fd,
        Ok(None) => return create_queue(queue, opts, ids),
        Err(e) => return fatal(queue, "cannot open the queue", e),
    };
    let opts = &match queue_layout(&root, queue, opts) {
        Ok(layout) => Options {
            layout,
            ..opts.clone()
        },
        Err(o) => return o,
    };
    let mut wants = wanted(ids, &opts.layout);
    if crate::queue::disable::note_disabled(&root, queue) {
        wants[0].1.mode = crate::queue::layout::root_mode(true);
    }
    let live = match lock::is_live(&root) {
        Ok(l) => l,
        Err(e) => {
            return fatal(
                &queue.join(crate::queue::layout::SENDMUTEX),
                "cannot probe the lock",
                e,
            )
        }
    };
    let refuse = live && !opts.force && opts.mode != RunMode::DryRun;
    // A refused live queue is only counted: the refusal below says what to
    // do, and nothing runs.
    let (mode, verbose) = if refuse {
        (RunMode::CountOnly, false)
    } else {
        (opts.mode, opts.verbose)
    };
    let applier = &Applier::new(
        Some(&root),
        queue,
        mode,
        verbose,
        opts.delete_strays,
        want_of(&QUARANTINE, ids, &opts.layout),
    );
    let mismatch = match messages::layout_mismatch(&root, &opts.layout) {
        Ok(m) => m,
        Err(e) => return fatal(queue, "cannot read", e),
    };
    let mut plan = Plan::default();
    // The numbered subdirectories a flat todo/intd lacks are made as part
    // of its conversion: counted (and, with -N, shown) as its one problem.
    let mut conversion = Plan::default();
    for (path, want) in &wants {
        let converting = path.parent().is_some_and(|p| {
            mismatch
                .iter()
                .any(|m| !m.on_disk_split && p == Path::new(m.dir))
        });
        if converting {
            match stat_at(&root, path) {
                Ok(None) => {
                    if matches!(mode, RunMode::Apply | RunMode::Ask) {
                        plan_entry(path, want, None, false, &mut conversion);
                    }
                    continue;
                }
                // A flat message file named like the subdirectory (an
                // inode below the split): the conversion parks it and
                // makes the directory.
                Ok(Some(st)) if st.kind == Found::File => continue,
                _ => {}
            }
        }
        let have = if path == Path::new(".") {
            match stat_at(&root, ".") {
                Ok(st) => st,
                Err(e) => return fatal(queue, "cannot stat", e),
            }
        } else {
            match stat_at(&root, path) {
                Ok(st) => st,
                Err(e) => return fatal(&queue.join(path), "cannot stat", e),
            }
        };
        let leftover = match want.kind {
            Kind::File { size } if size > 0 => {
                let mut t = path.as_os_str().to_owned();
                t.push(TEMP_SUFFIX);
                matches!(stat_at(&root, &t), Ok(Some(_)))
            }
            _ => false,
        };
        plan_entry(path, want, have.as_ref(), leftover, &mut plan);
    }
    // The quarantine directory, when there is one, is checked too;
    // anything else under its name would make every set-aside fail.
    let mut bad_quarantine = false;
    if let Ok(Some(st)) = stat_at(&root, QUARANTINE.path) {
        let want = want_of(&QUARANTINE, ids, &opts.layout);
        if st.kind == Found::Dir {
            plan::plan_permissions(Path::new(QUARANTINE.path), &want, &st, &mut plan);
        } else {
            bad_quarantine = true;
        }
    }
    // Only a regular file is the disabled marker, for every tool.
    if let Some(cause) = crate::queue::disable::stray_marker(&root) {
        plan.actions.push(plan::Action::SetAside {
            path: crate::queue::layout::DISABLED_NAME.into(),
            cause,
            keep: true,
        });
    }
    if opts.layout.ratelimit {
        if let Err(e) = plan_ratelimit_files(&root, ids, &opts.layout, &mut plan) {
            return fatal(&queue.join("ratelimit"), "cannot read", e);
        }
    }
    for w in &plan.warnings {
        eprintln!(
            "queue-fix: {}: {}",
            crate::fsx::escape::path(&queue.join(&w.path)),
            w.cause
        );
    }
    for a in plan.actions.iter().chain(&conversion.actions) {
        applier.run(a);
    }
    if bad_quarantine {
        applier.fix_quarantine();
    }
    let mut outcome = Outcome {
        problems: plan.problems() as u64 + u64::from(bad_quarantine),
        ..Outcome::default()
    };
    warn_pid_leftovers(&root, queue);
    let check = messages::MessageCheck {
        root: &root,
        layout: &opts.layout,
        ids,
        threads: opts.threads,
        live,
        mismatch: &mismatch,
        part_names: messages::part_names(opts.mode),
    };
    match messages::check(&check, applier) {
        Ok(n) => outcome.problems += n as u64,
        Err(e) => {
            outcome.add(fatal(queue, "cannot check the messages", e));
        }
    }
    if applier.errors() > 0 {
        outcome.fatal = true;
    }
    // The layout's own warnings were printed above, not by the applier.
    outcome.left = applier.left() + plan.warnings.len() as u64;
    if refuse && outcome.problems > 0 {
        eprintln!(
            "queue-fix: {}: live: {} is locked by another process (qmail-send running); \
             {} problem{} left unchanged (use --force to change a live queue)",
            crate::fsx::escape::path(queue),
            crate::queue::layout::SENDMUTEX,
            outcome.problems,
            if outcome.problems == 1 { "" } else { "s" }
        );
        outcome.live_refused = true;
    }
    outcome
}

/// The layout this queue is checked in: the options', with what no setting
/// chose taken from the disk (see [`found`]), said when it differs.
fn queue_layout(root: &OwnedFd, queue: &Path, opts: &Options) -> Result<Layout, Outcome> {
    let layout = match found::layout_of(root, opts.layout, opts.as_found) {
        Ok(Ok(l)) => l,
        Ok(Err(why)) => return Err(fatal(queue, "cannot tell its layout", why)),
        Err(e) => return Err(fatal(queue, "cannot read", e)),
    };
    let mut kept = Vec::new();
    if layout.split != opts.layout.split {
        kept.push(format!("split {}", layout.split));
    }
    if layout.big_todo != opts.layout.big_todo {
        kept.push(format!("BIGTODO={}", u8::from(layout.big_todo)));
    }
    if !kept.is_empty() {
        println!(
            "{}: {}, as found (not set)",
            crate::fsx::escape::path(queue),
            kept.join(", ")
        );
    }
    Ok(layout)
}

/// With `-r`: owner, group and mode of every file in `ratelimit`.
fn plan_ratelimit_files(
    root: &OwnedFd,
    ids: &Ids,
    layout: &Layout,
    plan: &mut Plan,
) -> io::Result<()> {
    let entry = crate::queue::layout::entry("ratelimit");
    let Some(fd) = open_dir_at(root, entry.path)? else {
        return Ok(());
    };
    let want = plan::want_file(entry, ids, layout);
    dir::for_each_name(&fd, |name| {
        if let Some(st) = stat_at(&fd, name)? {
            if st.kind == Found::File {
                plan::plan_permissions(&Path::new(entry.path).join(name), &want, &st, plan);
            }
        }
        Ok(())
    })
}

/// Opens the queue directory (following only a symlink root or the
/// invoking user owns: see [`crate::fsx::trusted`]); `None` when it
/// does not exist.
fn open_queue(queue: &Path) -> io::Result<Option<OwnedFd>> {
    crate::fsx::trusted::open_dir_trusted(queue)
}

/// A queue from nothing: the root first (its parent must exist), then the
/// rest through the normal check, which finds everything missing.
fn create_queue(queue: &Path, opts: &Options, ids: &Ids) -> Outcome {
    let parent = match queue.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = queue.file_name().map(OsString::from) else {
        return fatal(queue, "cannot create the queue", "no directory name");
    };
    let parent_fd = match crate::fsx::trusted::open_dir_trusted(&parent) {
        Ok(Some(fd)) => fd,
        Ok(None) => {
            return fatal(
                &parent,
                "cannot create the queue in it",
                "no such directory",
            )
        }
        Err(e) => return fatal(&parent, "cannot open", e),
    };
    let wants = wanted(ids, &opts.layout);
    if opts.mode == RunMode::DryRun {
        let applier = Applier::new(
            None,
            queue,
            RunMode::DryRun,
            true,
            false,
            want_of(&QUARANTINE, ids, &opts.layout),
        );
        let mut plan = Plan::default();
        for (path, want) in &wants {
            plan_entry(path, want, None, false, &mut plan);
        }
        for a in &plan.actions {
            applier.run(a);
        }
        return Outcome {
            problems: plan.problems() as u64,
            ..Outcome::default()
        };
    }
    let root_want = wants[0].1;
    let applier = Applier::new(
        Some(&parent_fd),
        &parent,
        opts.mode,
        opts.verbose,
        false,
        root_want,
    );
    applier.run(&plan::Action::CreateDir {
        path: PathBuf::from(&name),
        want: root_want,
    });
    if applier.errors() > 0 {
        return Outcome {
            fatal: true,
            ..Outcome::default()
        };
    }
    if stat_at(&parent_fd, &name).ok().flatten().is_none() {
        // -i and the answer was no.
        return Outcome {
            problems: 1,
            left: 1,
            ..Outcome::default()
        };
    }
    let mut o = fix_queue(queue, opts, ids);
    o.problems += 1;
    o
}

/// Files in `pid/` belong to injections in progress or interrupted ones;
/// qmail-send removes old ones itself. Reported, never touched, not
/// counted (a live queue has them for a moment at every injection).
fn warn_pid_leftovers(root: &OwnedFd, queue: &Path) {
    let Ok(Some(fd)) = open_dir_at(root, PID) else {
        return;
    };
    let _ = dir::for_each_name(&fd, |name| {
        let why = if name.to_string_lossy().starts_with(retire::MARKER_PREFIX) {
            "left by an interrupted queue-fix --retire (rerun it to finish)"
        } else {
            "left in pid/ (an injection in progress or interrupted; qmail-send removes it after 36 hours)"
        };
        eprintln!(
            "queue-fix: warning: {}: {why}",
            crate::fsx::escape::path(&queue.join(PID).join(name))
        );
        Ok(())
    });
}
