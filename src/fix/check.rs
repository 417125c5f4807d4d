//! Checking and repairing one queue: its directories and files against the
//! layout table, then its messages (observe, plan, apply).

use super::apply::{Applier, RunMode};
use super::convert::Mismatch;
use super::create::{self, Created};
use super::options::{fatal, Options, Outcome};
use super::plan::{self, plan_entry, want_of, wanted, Plan, Want, TEMP_SUFFIX};
use super::{convert, lock, messages};
use crate::fsx::dir::{self, open_dir_at, stat_at, Found};
use crate::queue::found;
use crate::queue::layout::{Kind, Layout, PID, QUARANTINE, SENDMUTEX};
use crate::queue::users::Ids;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Creates, checks or repairs one queue.
pub fn fix_queue(queue: &Path, opts: &Options, ids: &Ids) -> Outcome {
    let root = match open_or_create(queue, opts, ids) {
        Ok(fd) => fd,
        Err(o) => return o,
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
        Err(e) => return fatal(&queue.join(SENDMUTEX), "cannot probe the lock", e),
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
    let mismatch = match convert::layout_mismatch(&root, &opts.layout) {
        Ok(m) => m,
        Err(e) => return fatal(queue, "cannot read", e),
    };
    let (plan, conversion, bad_quarantine) =
        match plan_layout(&root, queue, opts, ids, &wants, &mismatch, mode) {
            Ok(planned) => planned,
            Err(o) => return o,
        };
    warn(queue, &plan.warnings);
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
    outcome.add(check_messages(&check, queue, applier));
    if applier.errors() > 0 {
        outcome.fatal = true;
    }
    // The layout's own warnings were printed above, not by the applier.
    outcome.left = applier.left() + plan.warnings.len() as u64;
    if refuse && outcome.problems > 0 {
        refused(queue, &mut outcome);
    }
    outcome
}

/// The layout's own warnings (the applier says the rest).
fn warn(queue: &Path, warnings: &[plan::Warning]) {
    for w in warnings {
        eprintln!(
            "queue-fix: {}: {}",
            crate::fsx::escape::path(&queue.join(&w.path)),
            w.cause
        );
    }
}

/// The queue's directory, opened; created first when it does not exist
/// (then checked by a run of its own, which finds everything missing).
fn open_or_create(queue: &Path, opts: &Options, ids: &Ids) -> Result<OwnedFd, Outcome> {
    match open_queue(queue) {
        Ok(Some(fd)) => Ok(fd),
        Ok(None) => Err(match create::create_root(queue, opts, ids) {
            Created::Done(o) => o,
            Created::Root => {
                let mut o = fix_queue(queue, opts, ids);
                o.problems += 1;
                o
            }
        }),
        Err(e) => Err(fatal(queue, "cannot open the queue", e)),
    }
}

/// The message check's problems, or the error that stopped it.
fn check_messages(check: &messages::MessageCheck, queue: &Path, applier: &Applier) -> Outcome {
    let mut outcome = Outcome::default();
    match messages::check(check, applier) {
        Ok(n) => outcome.problems += n as u64,
        Err(e) => {
            outcome.add(fatal(queue, "cannot check the messages", e));
        }
    }
    outcome
}

/// Says why a live queue's problems were left, and marks the refusal.
fn refused(queue: &Path, outcome: &mut Outcome) {
    eprintln!(
        "queue-fix: {}: live: {} is locked by another process (qmail-send running); \
         {} problem{} left unchanged (use --force to change a live queue)",
        crate::fsx::escape::path(queue),
        SENDMUTEX,
        outcome.problems,
        if outcome.problems == 1 { "" } else { "s" }
    );
    outcome.live_refused = true;
}

/// The plan for the layout's own entries (`plan`), the subdirectories a
/// conversion makes (`conversion`), and whether the quarantine's name
/// holds something else than its directory.
fn plan_layout(
    root: &OwnedFd,
    queue: &Path,
    opts: &Options,
    ids: &Ids,
    wants: &[(PathBuf, Want)],
    mismatch: &[Mismatch],
    mode: RunMode,
) -> Result<(Plan, Plan, bool), Outcome> {
    let mut plan = Plan::default();
    // The numbered subdirectories a flat todo/intd lacks are made as part
    // of its conversion: counted (and, with -N, shown) as its one problem.
    let mut conversion = Plan::default();
    for (path, want) in wants {
        let converting = path.parent().is_some_and(|p| {
            mismatch
                .iter()
                .any(|m| !m.on_disk_split && p == Path::new(m.dir))
        });
        if converting {
            match stat_at(root, path) {
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
            match stat_at(root, ".") {
                Ok(st) => st,
                Err(e) => return Err(fatal(queue, "cannot stat", e)),
            }
        } else {
            match stat_at(root, path) {
                Ok(st) => st,
                Err(e) => return Err(fatal(&queue.join(path), "cannot stat", e)),
            }
        };
        let leftover = match want.kind {
            Kind::File { size } if size > 0 => {
                let mut t = path.as_os_str().to_owned();
                t.push(TEMP_SUFFIX);
                matches!(stat_at(root, &t), Ok(Some(_)))
            }
            _ => false,
        };
        plan_entry(path, want, have.as_ref(), leftover, &mut plan);
    }
    // The quarantine directory, when there is one, is checked too;
    // anything else under its name would make every set-aside fail.
    let mut bad_quarantine = false;
    if let Ok(Some(st)) = stat_at(root, QUARANTINE.path) {
        let want = want_of(&QUARANTINE, ids, &opts.layout);
        if st.kind == Found::Dir {
            plan::plan_permissions(Path::new(QUARANTINE.path), &want, &st, &mut plan);
        } else {
            bad_quarantine = true;
        }
    }
    // Only a regular file is the disabled marker, for every tool.
    if let Some(cause) = crate::queue::disable::stray_marker(root) {
        plan.actions.push(plan::Action::SetAside {
            path: crate::queue::layout::DISABLED_NAME.into(),
            cause,
            keep: true,
        });
    }
    if opts.layout.ratelimit {
        if let Err(e) = plan_ratelimit_files(root, ids, &opts.layout, &mut plan) {
            return Err(fatal(&queue.join("ratelimit"), "cannot read", e));
        }
    }
    Ok((plan, conversion, bad_quarantine))
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

/// Files in `pid/` belong to injections in progress or interrupted ones;
/// qmail-send removes old ones itself. Reported, never touched, not
/// counted (a live queue has them for a moment at every injection).
fn warn_pid_leftovers(root: &OwnedFd, queue: &Path) {
    let Ok(Some(fd)) = open_dir_at(root, PID) else {
        return;
    };
    let _ = dir::for_each_name(&fd, |name| {
        let why = if name
            .to_string_lossy()
            .starts_with(plan::RETIRE_MARKER_PREFIX)
        {
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
