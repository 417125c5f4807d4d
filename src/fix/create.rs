//! Creating a queue: its root, made below a parent that must exist, then
//! everything else through the check, which finds it all missing.

use super::apply::{Applier, RunMode};
use super::options::{fatal, Options, Outcome};
use super::plan::{self, plan_entry, want_of, wanted, Plan};
use crate::fsx::dir::stat_at;
use crate::queue::layout::QUARANTINE;
use crate::queue::users::Ids;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What [`create_root`] did.
pub enum Created {
    /// The root is there: the normal check makes the rest, finding
    /// everything missing (one more problem: the root was one).
    Root,
    /// Nothing more to do: shown (`-N`), refused (`-i`), or failed.
    Done(Outcome),
}

/// A queue from nothing: the root first (its parent must exist); the rest
/// is the normal check's, which finds everything missing.
pub fn create_root(queue: &Path, opts: &Options, ids: &Ids) -> Created {
    let parent = match queue.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(name) = queue.file_name().map(OsString::from) else {
        return Created::Done(fatal(queue, "cannot create the queue", "no directory name"));
    };
    let parent_fd = match crate::fsx::trusted::open_dir_trusted(&parent) {
        Ok(Some(fd)) => fd,
        Ok(None) => {
            return Created::Done(fatal(
                &parent,
                "cannot create the queue in it",
                "no such directory",
            ))
        }
        Err(e) => return Created::Done(fatal(&parent, "cannot open", e)),
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
        return Created::Done(Outcome {
            problems: plan.problems() as u64,
            ..Outcome::default()
        });
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
        return Created::Done(Outcome {
            fatal: true,
            ..Outcome::default()
        });
    }
    if stat_at(&parent_fd, &name).ok().flatten().is_none() {
        // -i and the answer was no.
        return Created::Done(Outcome {
            problems: 1,
            left: 1,
            ..Outcome::default()
        });
    }
    Created::Root
}
