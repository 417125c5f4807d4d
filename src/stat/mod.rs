//! queue-stat: every queue at a glance, read-only.
//!
//! The queues come from qmail-multi's own configuration (its environment
//! and `control/queue_base`) or the command line; each is judged by
//! qmail-multi's health probe, [`live`] tells whether qmail-send runs on
//! it, [`scan`] reads its directories with queue-fix's walking, and the
//! orphans are queue-fix's. What was found is a plain [`model::Snapshot`];
//! [`table`], [`prom`] and [`check`] turn it into text.

pub mod check;
pub mod live;
pub mod model;
pub mod prom;
pub mod scan;
pub mod table;

use crate::fsx::dir::open_named_dir;
use crate::queue::config::{queue_path, Base, Config, Target as MultiTarget};
use crate::queue::health::Health;
use crate::queue::layout::{parse_big_todo, Layout};
use crate::queue::name::DEFAULT_SPLIT;
use crate::queue::orphans::find_orphans;
use crate::queue::scheduler::QueueFigures;
use crate::queue::served::served_range;
use crate::queue::settings::Settings;
use model::{Orphan, QueueStat, Snapshot, Space};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Exit statuses outside `--check` (also in `queue-stat --help`).
pub mod status {
    pub const USAGE: i32 = 100;
    /// The configuration is wrong, or a queue (or the orphan search) could
    /// not be read: the output is incomplete.
    pub const FATAL: i32 = 111;
}

/// Which queues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// Each unset: from the environment as qmail-multi reads it.
    pub base: Option<PathBuf>,
    pub count: Option<u32>,
    pub start: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Range(Range),
    /// Exactly these queue directories, no orphan search.
    Queues(Vec<PathBuf>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Prometheus,
    Check(check::Thresholds),
}

#[derive(Clone, Debug)]
pub struct Options {
    pub target: Target,
    pub output: Output,
    pub threads: usize,
    /// Classic qmail's queues ([`Layout::classic`]): `todo`/`intd` flat,
    /// `BIGTODO` (which classic qmail never reads) ignored.
    pub classic: bool,
}

/// The queues to read, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub title: String,
    /// (label, path)
    pub queues: Vec<(String, PathBuf)>,
    /// Where to look for orphans and special queues, and the range in
    /// service that orphans are outside of.
    pub orphans_of: Option<(PathBuf, std::ops::Range<u64>)>,
    /// The number of the first queue of `queues` when they are a base's
    /// `queueN` in order: qscheduler's segment 1 describes it.
    pub first: Option<u64>,
    pub min_free: Option<u64>,
    /// The shape of the queues (`BIGTODO`; the split is found on disk).
    pub layout: Layout,
    /// `BIGTODO` was set: otherwise each queue's todo is read as it is
    /// laid out (queue::found), as queue-fix then keeps it.
    pub big_todo_set: bool,
}

/// Resolves the queues as qmail-multi would: the command line first, then
/// `QUEUEDIR`, `QUEUE_BASE`/`QUEUE_COUNT`/`QUEUE_START`, `control/queue_base`.
/// `in_use` is qscheduler's count of queues in use: the range is extended
/// to it by the one rule of [`crate::queue::served`].
pub fn plan<F>(target: &Target, var: F, in_use: Option<u32>) -> Result<Plan, String>
where
    F: Fn(&str) -> Option<OsString>,
{
    let config = Config::from_env(&var).map_err(|e| e.to_string())?;
    // As the services get it (unset or empty = 1); the split of each
    // queue is whatever its directories hold.
    let big_todo_set = var("BIGTODO").is_some_and(|v| !v.is_empty());
    let big_todo = match var("BIGTODO") {
        Some(v) => parse_big_todo(&v.to_string_lossy())?,
        None => true,
    };
    let layout = Layout {
        big_todo,
        ..Layout::new(DEFAULT_SPLIT)
    };
    let (base, start, count) = match (target, &config.target) {
        (Target::Queues(qs), _) => {
            return Ok(Plan {
                title: "queues".into(),
                queues: qs
                    .iter()
                    .map(|q| (crate::fsx::escape::path(q), q.clone()))
                    .collect(),
                orphans_of: None,
                first: None,
                min_free: config.min_free,
                layout,
                big_todo_set,
            })
        }
        (Target::Range(r), MultiTarget::Fixed(dir)) if *r == Range::default() => {
            return Ok(Plan {
                title: format!("QUEUEDIR={}", crate::fsx::escape::path(dir)),
                queues: vec![(crate::fsx::escape::path(dir), dir.clone())],
                orphans_of: None,
                first: None,
                min_free: config.min_free,
                layout,
                big_todo_set,
            })
        }
        (Target::Range(r), MultiTarget::Select { base, start, count }) => (
            r.base.clone().map_or_else(|| resolve(base), Ok)?,
            r.start.unwrap_or(*start),
            r.count.unwrap_or(*count),
        ),
        // The command line chose a range: QUEUEDIR does not apply.
        (Target::Range(r), MultiTarget::Fixed(_)) => range_over_queuedir(r, &var, &config)?,
    };
    range_plan(
        &base,
        start,
        count,
        in_use,
        config.min_free,
        layout,
        big_todo_set,
    )
}

/// The range the command line chose where `QUEUEDIR` is set: the base from
/// the control files, the defaults for what the command line left out.
fn range_over_queuedir<F>(
    r: &Range,
    var: &F,
    config: &Config,
) -> Result<(PathBuf, u64, u32), String>
where
    F: Fn(&str) -> Option<OsString>,
{
    let controldir = var("CONTROLDIR").filter(|v| !v.is_empty()).map_or_else(
        || crate::queue::config::DEFAULT_CONTROLDIR.into(),
        PathBuf::from,
    );
    let fallback = Base::Fallback {
        controldir,
        qmailhome: config.qmail_home.clone(),
    };
    Ok((
        r.base.clone().map_or_else(|| resolve(&fallback), Ok)?,
        r.start.unwrap_or(crate::queue::config::DEFAULT_START),
        r.count.unwrap_or(crate::queue::config::DEFAULT_COUNT),
    ))
}

/// The plan for `count` queues from `start` under `base`, extended to
/// what qscheduler serves.
fn range_plan(
    base: &Path,
    start: u64,
    count: u32,
    in_use: Option<u32>,
    min_free: Option<u64>,
    layout: Layout,
    big_todo_set: bool,
) -> Result<Plan, String> {
    let end = start
        .checked_add(u64::from(count))
        .ok_or_else(|| format!("queue{start} + {count} queues is past the largest queue number"))?;
    // Queue numbers beyond u32 are none qscheduler could have grown.
    let served_end = match u32::try_from(start) {
        Ok(s) => u64::from(served_range(s, count, in_use).end).max(end),
        Err(_) => end,
    };
    let mut title = format!(
        "{}: queue{start}..queue{}",
        crate::fsx::escape::path(base),
        end - 1
    );
    if served_end > end {
        title.push_str(&format!(
            " and queue{end}..queue{} (grown by qscheduler)",
            served_end - 1
        ));
    }
    Ok(Plan {
        title,
        queues: (start..served_end)
            .map(|n| (format!("queue{n}"), queue_path(base, n)))
            .collect(),
        orphans_of: Some((base.to_owned(), start..served_end)),
        first: Some(start),
        min_free,
        layout,
        big_todo_set,
    })
}

fn resolve(base: &Base) -> Result<PathBuf, String> {
    crate::queue::config::resolve_base(base)
}

/// Reads every queue of the plan, the special queues beside them, and
/// the orphans; `sched` is qscheduler's segments when they could be read.
pub fn gather(plan: &Plan, threads: usize, sched: Result<Vec<QueueFigures>, String>) -> Snapshot {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // The lock table is read while the first queue is scanned: see
    // `live::PendingLocks`.
    let locks = live::PendingLocks::start();
    let mut rows = plan.queues.clone();
    if let Some((base, _)) = &plan.orphans_of {
        // IndiMail 3.x's special queues: rows like the others, when they
        // exist, never orphans.
        for special in crate::queue::special::SPECIAL {
            let path = base.join(special.name);
            // Often a link to another disk, as a queueN may be.
            if path.is_dir() {
                rows.push((special.name.to_owned(), path));
            }
        }
    }
    let mut queues: Vec<QueueStat> = rows
        .iter()
        .map(|(label, path)| one(label, path, plan, now, threads, &locks))
        .collect();
    let mut sched_note = None;
    match (plan.first, sched) {
        // The rows of the range are queue first, first+1, ...
        (Some(first), Ok(figures)) => {
            for f in figures {
                let row = f
                    .queue
                    .checked_sub(first)
                    .and_then(|k| usize::try_from(k).ok());
                if let Some(q) = row
                    .filter(|&k| k < plan.queues.len())
                    .map(|k| &mut queues[k])
                {
                    q.sched = Some(f.load);
                }
            }
        }
        (Some(_), Err(why)) => sched_note = Some(why),
        (None, _) => {}
    }
    let (orphans, orphan_error) = match &plan.orphans_of {
        Some((base, range)) if base.is_dir() => orphans(base, range),
        _ => (Vec::new(), None),
    };
    Snapshot {
        title: plan.title.clone(),
        queues,
        orphans,
        orphan_error,
        big_todo: plan.layout.big_todo,
        classic: plan.layout.flavour == crate::queue::layout::Flavour::Classic,
        sched_note,
    }
}

fn one(
    label: &str,
    path: &std::path::Path,
    plan: &Plan,
    now: i64,
    threads: usize,
    locks: &live::PendingLocks,
) -> QueueStat {
    // qmail-multi's own judgement, so the two never disagree.
    let health = crate::queue::health::probe(path, plan.min_free);
    let mut q = QueueStat {
        label: label.to_owned(),
        path: path.to_owned(),
        health,
        live: None,
        space: None,
        counts: None,
        error: None,
        sched: None,
    };
    match health {
        Health::Missing | Health::NotADirectory => return q,
        Health::Unreachable(e) => {
            q.error = Some(e.desc().to_owned());
            return q;
        }
        _ => {}
    }
    // By path, like the probe: it needs no permission inside the queue.
    if let Ok(vfs) = nix::sys::statvfs::statvfs(path) {
        q.space = Some(Space {
            free_bytes: vfs.blocks_available().saturating_mul(vfs.fragment_size()),
            free_inodes: (vfs.files() != 0).then(|| vfs.files_available()),
        });
    }
    let root = match open_named_dir(nix::fcntl::AT_FDCWD, path) {
        Ok(Some(fd)) => fd,
        Ok(None) => {
            q.health = Health::Missing;
            return q;
        }
        Err(e) => {
            q.error = Some(e.to_string());
            return q;
        }
    };
    let layout = if plan.big_todo_set {
        plan.layout
    } else {
        let unset = crate::queue::found::AsFound {
            split: false,
            big_todo: true,
        };
        // A todo half split, half flat: read as the default says, which
        // counts the flat part as misplaced.
        match crate::queue::found::layout_of(&root, plan.layout, unset) {
            Ok(Ok(l)) => l,
            _ => plan.layout,
        }
    };
    match scan::scan(&root, &layout, now, threads) {
        Ok(c) => q.counts = Some(c),
        Err(e) => q.error = Some(e.to_string()),
    }
    // After the scan, so the first queue's scan hides the wait for the
    // lock table.
    q.live = live::is_live(&root, locks.table());
    q
}

fn orphans(base: &std::path::Path, range: &std::ops::Range<u64>) -> (Vec<Orphan>, Option<String>) {
    // Queue numbers are u32 in queue-fix; a range beyond that has no
    // orphans it could name.
    let (Ok(start), Ok(end)) = (u32::try_from(range.start), u32::try_from(range.end)) else {
        return (Vec::new(), None);
    };
    match find_orphans(base, &(start..end)) {
        Ok(found) => (
            found
                .into_iter()
                .map(|(n, messages)| Orphan {
                    label: format!("queue{n}"),
                    messages,
                })
                .collect(),
            None,
        ),
        Err(e) => (
            Vec::new(),
            Some(format!("{}: {e}", crate::fsx::escape::path(base))),
        ),
    }
}

/// qscheduler's segments: empty when there are none (no qscheduler, no
/// `DYNAMIC_QUEUE`), the reason when they exist but cannot be used.
fn sched_figures(first: u64) -> Result<Vec<QueueFigures>, String> {
    use crate::queue::scheduler::{read_queues, Fallback};
    match read_queues(first) {
        Ok(figures) => Ok(figures),
        Err(Fallback::Absent(s)) if s.is_empty() || s == crate::queue::scheduler::SCHEDULER => {
            Ok(Vec::new())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs queue-stat and returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let checking = matches!(opts.output, Output::Check(_));
    // Only a range of a base can have queues qscheduler grew.
    let in_use = match opts.target {
        Target::Range(_) => crate::queue::served::running_scheduler_in_use(),
        Target::Queues(_) => None,
    };
    // BIGTODO and QUEUE_BASE/COUNT/START as queue-fix resolves them
    // (queue::settings); qmail-multi itself reads only its environment.
    // Classic qmail has none of IndiMail's settings files and no BIGTODO:
    // its todo is flat (Layout::classic).
    let settings = if opts.classic {
        None
    } else {
        match Settings::of_host(&[]) {
            Ok(s) => Some(s),
            Err(e) => return fatal(checking, &format!("reading the queue settings: {e}")),
        }
    };
    let var = |v: &str| match (&settings, v) {
        (None, "BIGTODO") => None,
        (None, _) => std::env::var_os(v),
        (Some(s), _) => s.var(v, |v| std::env::var_os(v)),
    };
    let plan = match plan(&opts.target, var, in_use) {
        Ok(p) if opts.classic => Plan {
            layout: Layout::classic(),
            big_todo_set: true,
            ..p
        },
        Ok(p) => p,
        Err(e) => return fatal(checking, &e),
    };
    let sched = match plan.first {
        Some(first) => sched_figures(first),
        None => Ok(Vec::new()),
    };
    let snap = gather(&plan, opts.threads, sched);
    let base_used = matches!(&opts.target, Target::Range(r) if r.base.is_none());
    let said = settings_line(&settings, &plan, base_used);
    let text = match &opts.output {
        // The status line is all a monitoring system reads on stdout.
        Output::Check(t) => {
            let (st, line) = check::check(&snap, t);
            println!("{line}");
            eprintln!("queue-stat: {said}");
            return st.code();
        }
        // Under the title, a line for the people reading the table.
        Output::Table => {
            let table = table::render(&snap);
            let (title, rest) = table.split_once('\n').unwrap_or((&table, ""));
            format!("{title}\n{said}\n{rest}")
        }
        // A comment, which the text format's parsers skip.
        Output::Prometheus => format!("# {said}\n{}", prom::render(&snap)),
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("queue-stat: fatal: writing the output: {e}");
        return status::FATAL;
    }
    if snap.incomplete() {
        report_incomplete(&snap);
        return status::FATAL;
    }
    0
}

/// A failure before anything was read: for `--check` the UNKNOWN line a
/// monitoring system reads, else a fatal message.
fn fatal(checking: bool, e: &str) -> i32 {
    if checking {
        println!("QMAIL-QUEUE UNKNOWN - {}", check::no_pipe(e));
        return check::Status::Unknown.code();
    }
    eprintln!("queue-stat: fatal: {e}");
    status::FATAL
}

/// What could not be read, after the output.
fn report_incomplete(snap: &Snapshot) {
    for q in snap.queues.iter().filter(|q| q.error.is_some()) {
        eprintln!(
            "queue-stat: {}: cannot read: {}",
            crate::fsx::escape::path(&q.path),
            q.error.as_deref().unwrap_or_default()
        );
    }
    if let Some(e) = &snap.orphan_error {
        eprintln!("queue-stat: orphans: cannot search: {e}");
    }
}

/// Which BIGTODO and split this run reads with, and where each came from;
/// under 80 columns unless a path makes it longer. `base_used`: the
/// queues are QUEUE_BASE's (no --base, no QUEUE list).
fn settings_line(settings: &Option<Settings>, plan: &Plan, base_used: bool) -> String {
    use crate::queue::settings::{Source, BIGTODO, QUEUE_BASE};
    let Some(settings) = settings else {
        return "settings: classic qmail: todo flat, split as on disk".into();
    };
    let big_todo = if plan.big_todo_set {
        settings.describe(BIGTODO)
    } else {
        "BIGTODO not set: each todo read as laid out".into()
    };
    let base = settings.get(QUEUE_BASE);
    // Only the host's files are news: the title names the base.
    let base = match (&base.source, base_used) {
        (Source::File { .. }, true) => format!("; {}", settings.describe(QUEUE_BASE)),
        _ => String::new(),
    };
    format!("settings: {big_todo}; split as on disk{base}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn plan_with(target: Target, vars: &[(&str, &str)]) -> Result<Plan, String> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        plan(&target, |n| map.get(n).cloned(), None)
    }

    #[test]
    fn the_range_comes_from_qmail_multis_environment_then_the_command_line() {
        let p = plan_with(
            Target::Range(Range::default()),
            &[
                ("QUEUE_BASE", "/q"),
                ("QUEUE_COUNT", "3"),
                ("QUEUE_START", "0"),
                ("MIN_FREE", "5"),
            ],
        )
        .unwrap();
        assert_eq!(
            p.queues,
            [
                ("queue0".to_string(), PathBuf::from("/q/queue0")),
                ("queue1".to_string(), PathBuf::from("/q/queue1")),
                ("queue2".to_string(), PathBuf::from("/q/queue2"))
            ]
        );
        assert_eq!(p.orphans_of, Some((PathBuf::from("/q"), 0..3)));
        assert_eq!(p.min_free, Some(5));
        let r = Range {
            base: Some("/b".into()),
            count: Some(2),
            start: Some(7),
        };
        let p = plan_with(
            Target::Range(r),
            &[("QUEUE_BASE", "/q"), ("QUEUEDIR", "/x")],
        )
        .unwrap();
        assert_eq!(
            p.queues[1],
            ("queue8".to_string(), PathBuf::from("/b/queue8"))
        );
        assert_eq!(p.queues.len(), 2);
    }

    #[test]
    fn queuedir_alone_means_that_queue() {
        let p = plan_with(Target::Range(Range::default()), &[("QUEUEDIR", "/x/q")]).unwrap();
        assert_eq!(p.queues, [("/x/q".to_string(), PathBuf::from("/x/q"))]);
        assert_eq!(p.orphans_of, None);
        // A range on the command line wins; the base still comes from
        // CONTROLDIR's queue_base.
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("queue_base"), "/cq\n").unwrap();
        let r = Range {
            count: Some(2),
            ..Range::default()
        };
        let p = plan_with(
            Target::Range(r),
            &[
                ("QUEUEDIR", "/x/q"),
                ("CONTROLDIR", t.path().to_str().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(p.queues[1].1, PathBuf::from("/cq/queue2"));
    }

    #[test]
    fn defaults_and_errors_are_qmail_multis() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().to_str().unwrap();
        let p = plan_with(
            Target::Range(Range::default()),
            &[("QMAILHOME", home), ("CONTROLDIR", home)],
        )
        .unwrap();
        assert_eq!(p.queues.len(), 10);
        assert_eq!(p.queues[0].1, t.path().join("queue/queue1"));
        std::fs::write(t.path().join("queue_base"), "/elsewhere\n").unwrap();
        let p = plan_with(Target::Range(Range::default()), &[("CONTROLDIR", home)]).unwrap();
        assert_eq!(p.queues[9].1, PathBuf::from("/elsewhere/queue10"));
        let e = plan_with(Target::Range(Range::default()), &[("QUEUE_COUNT", "0")]).unwrap_err();
        assert!(e.starts_with("QUEUE_COUNT="), "{e}");
        let r = Range {
            start: Some(u64::MAX),
            count: Some(2),
            base: Some("/q".into()),
        };
        assert!(plan_with(Target::Range(r), &[]).is_err());
    }
}
