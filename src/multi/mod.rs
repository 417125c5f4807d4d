//! qmail-multi: a drop-in `qmail-queue` that spreads injections over the
//! queues `QUEUE_BASE/queue<START> .. queue<START+COUNT-1>`.
//!
//! One straight line per injection: environment → [`queue::config::Config`] →
//! (optional [`filter`]) → [`select::choose`] asks the probe about
//! candidates → `exec` the queue program with `QUEUEDIR` set. Nothing is
//! ever written to descriptor 1 (the envelope input); descriptor 2 carries
//! only a filter's exit-88 text unless [`diag::DEBUG_VARIABLE`] is set.

pub mod diag;
pub mod dynamic;
pub mod fatal;
pub mod filter;
pub mod guard;
pub mod select;

use crate::exit::QueueExit;
use crate::queue;
pub use crate::queue::config::PASSES_VARIABLE;
use crate::queue::config::{Base, Config, Target, MAX_PASSES};
pub use fatal::Fatal;
use select::{FsProbe, SplitMix};
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Runs one injection. Returns only on failure or a blackholed message;
/// on success the queue program has replaced this process.
pub fn inject(args: Vec<OsString>) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(f) => {
            crate::diag!(
                error,
                "{} ({}): {}",
                f.exit.meaning(),
                f.exit.code(),
                f.what
            );
            f.exit.code()
        }
    }
}

/// Where the message will go, known before the filter runs.
enum Destination {
    Fixed(PathBuf),
    Select {
        probe: FsProbe,
        start: u64,
        count: u32,
        dynamic: bool,
    },
}

fn run(args: Vec<OsString>) -> Result<(), Fatal> {
    let config = Config::from_env(|name| std::env::var_os(name))
        .map_err(|e| Fatal::new(QueueExit::CannotReadConfig, e.to_string()))?;
    // `qmail-multi QQF ARGS…`: argv[1] is the queue program, QUEUEPROG unused.
    let mut args = args.into_iter();
    let (program, args) = match args.next() {
        Some(qqf) => (PathBuf::from(qqf), args.collect()),
        None => (config.queue_prog.clone(), Vec::new()),
    };
    if config.passes >= MAX_PASSES {
        return Err(Fatal::new(
            QueueExit::CannotReadConfig,
            format!(
                "loop: this injection has passed through qmail-multi {} times \
                 ({PASSES_VARIABLE}); the queue program {} leads back to qmail-multi",
                config.passes,
                crate::fsx::escape::path(&program)
            ),
        ));
    }
    enter_home(&config.qmail_home)?;
    // Resolved before any filter runs, so a configuration error costs nothing.
    let destination = match &config.target {
        Target::Fixed(dir) => Destination::Fixed(dir.clone()),
        Target::Select { base, start, count } => Destination::Select {
            probe: FsProbe {
                base: resolve_base(base)?,
                min_free: config.min_free,
            },
            start: *start,
            count: *count,
            dynamic: config.dynamic,
        },
    };
    if let Some(command) = &config.filter {
        if !run_filter(command, &config)? {
            return Ok(());
        }
    }
    let queue = match destination {
        Destination::Fixed(dir) => dir,
        Destination::Select {
            probe,
            start,
            count,
            dynamic,
        } => select_queue(probe, start, count, dynamic)?,
    };
    if diag::on_stderr() {
        crate::diag!(
            debug,
            "queue {} via {}",
            crate::fsx::escape::path(&queue),
            crate::fsx::escape::path(&program)
        );
    }
    Err(exec_queue(&program, args, &queue, config.passes + 1))
}

/// Runs the filter; `false` when it dropped the message (then the
/// injection succeeds with nothing queued).
fn run_filter(command: &std::ffi::OsStr, config: &Config) -> Result<bool, Fatal> {
    match filter::run(command, config.make_seekable, &config.tmpdir)? {
        filter::Verdict::Pass => Ok(true),
        filter::Verdict::Blackhole => {
            queue::deposit::read_envelope_from_fd1().map_err(|e| Fatal::new(e.exit, e.what))?;
            crate::diag!(
                info,
                "the filter {command:?} dropped the message (status 2 or 99)"
            );
            Ok(false)
        }
        filter::Verdict::Refuse(exit) => Err(Fatal::new(
            exit,
            format!("the filter {command:?} refused the message"),
        )),
    }
}

/// The queue for this injection: least loaded by qscheduler's figures
/// (`DYNAMIC_QUEUE`), else at random, the health probe having the last word.
fn select_queue(
    mut probe: FsProbe,
    start: u64,
    count: u32,
    dynamic: bool,
) -> Result<PathBuf, Fatal> {
    let mut rng = SplitMix::from_os();
    let least_loaded = if dynamic {
        match queue::scheduler::read() {
            Ok(loads) => Some(dynamic::choose(start, &loads, &mut probe, &mut rng)),
            Err(why) => {
                crate::diag!(warn, "DYNAMIC_QUEUE: {why}; choosing a queue at random");
                None
            }
        }
    } else {
        None
    };
    let choice = least_loaded
        .unwrap_or_else(|| {
            let count = if dynamic {
                random_count(start, count)
            } else {
                count
            };
            select::choose(start, count, &mut probe, &mut rng)
        })
        .map_err(|none| no_queue(&none, &probe))?;
    for s in &choice.skipped {
        crate::diag!(
            warn,
            "skipped {}: {}",
            crate::fsx::escape::path(&probe.path(s.queue)),
            s.health
        );
    }
    Ok(probe.path(choice.queue))
}

/// Why no queue would do, naming each one skipped.
fn no_queue(none: &select::NoQueue, probe: &FsProbe) -> Fatal {
    let why: Vec<String> = none
        .skipped
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                crate::fsx::escape::path(&probe.path(s.queue)),
                s.health
            )
        })
        .collect();
    let all_disabled = none
        .skipped
        .iter()
        .all(|s| s.health == select::Health::Disabled);
    Fatal::new(
        none.exit(),
        if all_disabled {
            format!(
                "no usable queue: every queue is disabled (queue-fix --enable QUEUE, or qscheduler): {}",
                why.join("; ")
            )
        } else {
            format!("no usable queue: {}", why.join("; "))
        },
    )
}

/// Changes into `QMAILHOME` when it exists, else into `/`, as upstream's
/// qmail-multi (which always changes into `/`: `indimail-mta-x/qmulti.c`,
/// commit 9964037f58eb8e3cff7f85e51e4926e82ae7e2ac, `qmulti`): the queue
/// program needs a working directory that stays, not QMAILHOME itself, so
/// a host without one (a relay with its queues elsewhere) still queues.
fn enter_home(home: &std::path::Path) -> Result<(), Fatal> {
    match std::env::set_current_dir(home) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => crate::diag!(
            warn,
            "cannot change into QMAILHOME {}: {e}; using /",
            crate::fsx::escape::path(home)
        ),
    }
    std::env::set_current_dir("/")
        .map_err(|e| Fatal::new(QueueExit::QmailHome, format!("cannot change into /: {e}")))
}

/// How many queues a random choice spans under `DYNAMIC_QUEUE` when the
/// segments could not be used: the queues in service by THE rule
/// ([`queue::served`]), so a queue qscheduler grew still gets its share
/// when its `/qscheduler` count is readable and trusted.
fn random_count(start: u64, count: u32) -> u32 {
    let Ok(start32) = u32::try_from(start) else {
        return count;
    };
    let served = queue::served::served_range(start32, count, queue::served::scheduler_in_use());
    (served.end - served.start).max(count)
}

/// [`queue::config::resolve_base`]; a file that cannot be read is fatal.
pub fn resolve_base(base: &Base) -> Result<PathBuf, Fatal> {
    queue::config::resolve_base(base).map_err(|what| Fatal::new(QueueExit::CannotReadConfig, what))
}

/// Replaces this process by the queue program; returns only on failure.
fn exec_queue(
    program: &std::path::Path,
    args: Vec<OsString>,
    queue: &std::path::Path,
    passes: u32,
) -> Fatal {
    let cstring = |bytes: &[u8]| CString::new(bytes).ok();
    let prog = cstring(program.as_os_str().as_bytes());
    let argv: Option<Vec<CString>> = std::iter::once(program.as_os_str().to_owned())
        .chain(args)
        .map(|a| cstring(a.as_bytes()))
        .collect();
    let (Some(prog), Some(argv)) = (prog, argv) else {
        return Fatal::new(
            QueueExit::CannotExec,
            "the queue program or an argument contains a NUL byte",
        );
    };
    // Single-threaded here; the queue program inherits our environment.
    std::env::set_var("QUEUEDIR", queue);
    std::env::set_var(PASSES_VARIABLE, passes.to_string());
    let e = nix::unistd::execv(&prog, &argv).unwrap_err();
    Fatal::new(
        QueueExit::CannotExec,
        format!(
            "cannot run the queue program {}: {}",
            crate::fsx::escape::path(program),
            e.desc()
        ),
    )
}
